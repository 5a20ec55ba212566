"""The reference token: a case number plus a MAC, so replies find their case and nobody else's.

Format: ``REF:<number>.<mac>``, e.g. ``REF:00012345.k3j9x2m7q4w8a``, and ``[REF:...]`` in
subjects. ``<number>`` is the case number (8 digits, zero-padded; up to 12 once numbers
grow). ``<mac>`` is HMAC-SHA256 over ``b"case-ref:v1:" + number`` under the reference key,
truncated to 65 bits and written as 13 lower-case Crockford base32 characters.

Why this shape:

* 65 bits of MAC: guessing a token for a case takes ~2**64 tries; the MAC covers the
  number, so a token cannot be moved to another case; the ``case-ref:v1:`` prefix keeps
  these MACs apart from anything else the same key might ever sign.
* The text survives what mail does to it: no spaces (wrappers break at spaces), no hyphen
  (some wrappers break after one), no ``= < > & " '`` (quoted-printable and HTML escape
  those), one case-insensitive alphabet (subjects get upper-cased), and a distinctive
  ``REF:`` prefix that is easy to find among brackets and ``RE:``/``AW:`` decorations.
* Tokens are matched case-insensitively but only over ASCII, so look-alike characters
  (the Kelvin sign for ``k``, Arabic-Indic digits, ...) never form a token.

Old keys keep verifying after a rotation: :func:`verify` takes every accepted key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.errors import InvalidValue

PREFIX = "REF"
MAC_CHARS = 13
"""13 base32 characters carry 65 bits of MAC."""
_DOMAIN = b"case-ref:v1:"
_NUMBER = r"[0-9]{8,12}"
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_RFC4648 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_TO_CROCKFORD = str.maketrans(_RFC4648, _CROCKFORD)

_TOKEN_RE = re.compile(
    rf"{PREFIX}:({_NUMBER})\.([{_CROCKFORD}]{{{MAC_CHARS}}})(?![0-9a-z])",
    re.IGNORECASE | re.ASCII,
)
_NUMBER_RE = re.compile(_NUMBER, re.ASCII)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A token-shaped string found in text; not trusted until :func:`verify` says so."""

    number: str
    mac: str
    """Lower-cased, as :func:`make_token` writes it."""

    def __str__(self) -> str:
        return f"{PREFIX}:{self.number}.{self.mac}"


def _mac(case_number: str, key: bytes) -> str:
    digest = hmac.new(key, _DOMAIN + case_number.encode("ascii"), hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode("ascii").translate(_TO_CROCKFORD)[:MAC_CHARS]


def make_token(case_number: str, key: bytes) -> str:
    """The bare token for ``case_number`` under ``key``, e.g. ``REF:00012345.k3j9x2m7q4w8a``.

    Raises :class:`~gateway.errors.InvalidValue` for a malformed number or an empty key:
    a token made with an empty key would be forgeable by anyone.
    """
    if not _NUMBER_RE.fullmatch(case_number):
        raise InvalidValue(f"not a case number: {case_number!r}")
    if not key:
        raise InvalidValue("the reference key is empty")
    return f"{PREFIX}:{case_number}.{_mac(case_number, key)}"


def subject_tag(token: str) -> str:
    """The token as it appears in subjects: ``[REF:00012345.k3j9x2m7q4w8a]``."""
    return f"[{token}]"


def find_candidates(text: str) -> list[Candidate]:
    """Every token-shaped string in ``text``, in order of first appearance, without repeats.

    Tolerates any letter case and any surrounding punctuation or brackets (``[``, ``(``,
    ``&lt;``, ``> `` quoting, ...); a MAC followed directly by another letter or digit is
    not a token. Runs in time linear in ``len(text)``.
    """
    seen: dict[tuple[str, str], Candidate] = {}
    for m in _TOKEN_RE.finditer(text):
        number, mac = m.group(1), m.group(2).lower()
        seen.setdefault((number, mac), Candidate(number, mac))
    return list(seen.values())


def verify(candidate: Candidate, keys: Sequence[bytes]) -> str | None:
    """The candidate's case number if its MAC matches under any of ``keys``, else ``None``.

    Empty keys are skipped (they never verify anything). Comparison is constant-time.
    """
    mac = candidate.mac.lower()
    for key in keys:
        if key and hmac.compare_digest(_mac(candidate.number, key), mac):
            return candidate.number
    return None


def verified_case_numbers(text: str, keys: Sequence[bytes]) -> tuple[set[str], list[Candidate]]:
    """The case numbers of valid tokens in ``text``, and the candidates whose MAC failed.

    A failed candidate counts as no token; the caller records it as a security event.
    """
    numbers: set[str] = set()
    forged: list[Candidate] = []
    for candidate in find_candidates(text):
        number = verify(candidate, keys)
        if number is None:
            forged.append(candidate)
        else:
            numbers.add(number)
    return numbers, forged
