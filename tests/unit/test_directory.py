"""Contacts' addresses are compared normalised: lower case, no whitespace anywhere."""

from __future__ import annotations

import sys

import pytest

from gateway import directory
from gateway.directory import normalise_email
from gateway.errors import InvalidValue


def test_whitespace_is_what_str_isspace_says_over_every_code_point() -> None:
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        assert (directory._SPACE.search(char) is not None) == char.isspace(), hex(code)


@pytest.mark.parametrize(
    "address", ["", "ana", "@x.example", "ana@", "an a@x.example", "ana@x\u2003y.example"])
def test_what_is_not_an_address_is_refused(address: str) -> None:
    with pytest.raises(InvalidValue):
        normalise_email(address)


def test_an_address_is_trimmed_and_lower_cased() -> None:
    assert normalise_email("  Ana@ACME.Example\n") == "ana@acme.example"
