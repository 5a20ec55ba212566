"""Email addresses as the gateway compares them: by ASCII case-folding only. Unicode's rules
would fold letters such as the Kelvin sign into ASCII ones and make one address pass for another."""

from __future__ import annotations

ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """``text`` with A-Z lower-cased and every other character as it is."""
    return text.translate(ASCII_LOWER)
