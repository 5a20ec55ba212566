"""Authentication-Results (RFC 8601) from servers we trust: a DMARC fail there refuses the
mail; with ``inbound.require_dmarc_pass``, so does the lack of a DMARC pass.

Only headers whose authserv-id is in ``inbound.trusted_authserv_ids`` count; anybody can write
an Authentication-Results header, so the others are ignored. The receiving server must remove
such headers that arrive with its own authserv-id (RFC 8601, section 5); it adds its own on
top, so the first trusted header is the one a pass is read from.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence

_DMARC = re.compile(r"(?:^|[;\s])dmarc\s*=\s*([a-z]+)([^;]*)", re.IGNORECASE)
_HEADER_FROM = re.compile(r"header\.from\s*=\s*\"?([^\s;\"]+)", re.IGNORECASE)


def _trusted_results(headers: Mapping[str, Sequence[str]], trusted: Collection[str]) -> Iterator[str]:
    """The result part of each Authentication-Results header from a trusted authserv-id."""
    wanted = {t.lower() for t in trusted}
    for value in headers.get("authentication-results", ()):
        authserv = value.split(";", 1)[0].strip().split()[0].lower() if value.strip() else ""
        if authserv in wanted:
            yield value.split(";", 1)[1] if ";" in value else ""


def dmarc_failed(headers: Mapping[str, Sequence[str]], trusted: Collection[str]) -> bool:
    """Whether a trusted server says DMARC failed."""
    for results in _trusted_results(headers, trusted):
        found = _DMARC.search(results)
        if found and found.group(1).lower() == "fail":
            return True
    return False


def dmarc_passed(headers: Mapping[str, Sequence[str]], trusted: Collection[str], sender: str) -> bool:
    """Whether the first trusted server's header says DMARC passed for the domain of ``sender``."""
    for results in _trusted_results(headers, trusted):
        found = _DMARC.search(results)
        if not found or found.group(1).lower() != "pass":
            return False
        domain = _HEADER_FROM.search(found.group(2))
        return domain is None or domain.group(1).lower() == sender.rpartition("@")[2].lower()
    return False
