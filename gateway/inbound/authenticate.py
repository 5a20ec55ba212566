"""Authentication-Results (RFC 8601) from servers we trust: a DMARC fail there refuses the mail.

Only headers whose authserv-id is in ``inbound.trusted_authserv_ids`` count; anybody can write
an Authentication-Results header, so the others are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence

_DMARC = re.compile(r"(?:^|[;\s])dmarc\s*=\s*([a-z]+)", re.IGNORECASE)


def dmarc_failed(headers: Mapping[str, Sequence[str]], trusted: Collection[str]) -> bool:
    if not trusted:
        return False
    wanted = {t.lower() for t in trusted}
    for value in headers.get("authentication-results", ()):
        authserv = value.split(";", 1)[0].strip().split()[0].lower() if value.strip() else ""
        if authserv not in wanted:
            continue
        found = _DMARC.search(value.split(";", 1)[1] if ";" in value else "")
        if found and found.group(1).lower() == "fail":
            return True
    return False
