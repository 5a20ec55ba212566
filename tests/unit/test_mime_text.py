"""The address fast path answers as the standard library's parser does, or leaves it to it."""

from __future__ import annotations

from email.utils import getaddresses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.inbound.mail.mime_text import _plain_addresses, addresses

SAMPLES = [
    "Ana Silva <ana@customer.example>",
    "ana@customer.example",
    "  Ana   Silva\t<Ana@Customer.Example>  ",
    "<ana@customer.example>",
    "=?utf-8?q?Ana_S=C3=A1?= <ana@customer.example>",
    "Ana O'Neil-Smith <ana.o+cases@mail.customer.example>",
    "J. Smith <j@customer.example>",
    '"Smith, J" <j@customer.example>',
    "ana@customer.example, bo@customer.example",
    "Ana <ana..x@customer.example>",
    "ana@",
    "@customer.example",
    "x <ana@customer.example> y",
    "Ana (work) <ana@customer.example>",
    "ana@customer.example (Ana Silva)",
    "Ana <ana@customer.example",
    "Ana <<ana@customer.example>>",
    "ana@[192.0.2.1]",
    "undisclosed-recipients:;",
    "",
]


@pytest.mark.parametrize("value", SAMPLES)
def test_the_fast_path_gives_what_getaddresses_gives_or_declines(value: str) -> None:
    fast = _plain_addresses([value])
    assert fast is None or fast == getaddresses([value])


def test_the_commonest_forms_take_the_fast_path() -> None:
    assert _plain_addresses(["Ana  Silva <ana@customer.example>"]) == [("Ana Silva", "ana@customer.example")]
    assert _plain_addresses(["ana@customer.example"]) == [("", "ana@customer.example")]
    assert _plain_addresses(["a@x.example", "b@x.example"]) is None  # several headers: the stdlib's


def test_addresses_decodes_names_and_lowers_addresses_on_either_path() -> None:
    encoded = "=?utf-8?q?Ana_S=C3=A1?= <Ana@Customer.Example>"
    assert addresses([encoded]) == [("Ana Sá", "ana@customer.example")]
    assert addresses(['"Sá, Ana" <Ana@Customer.Example>']) == [("Sá, Ana", "ana@customer.example")]


ADDRESS_CHARACTERS = st.sampled_from([*"aZ09 .\t<>@\",;:()[]\\=?_-+'", "=?utf-8?q?", "\udce9"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(ADDRESS_CHARACTERS, max_size=30).map("".join))
def test_on_any_header_the_fast_path_agrees_with_getaddresses(value: str) -> None:
    fast = _plain_addresses([value])
    assert fast is None or fast == getaddresses([value])


WORD = st.text(alphabet=st.sampled_from(list("aZ09.'=?_-+\"(),\\")), min_size=1, max_size=6)
SPACE = st.sampled_from([" ", "  ", "\t", ""])


@settings(max_examples=3000, deadline=None)
@given(st.lists(WORD, max_size=3), SPACE, WORD, WORD, WORD, st.booleans())
def test_on_address_shaped_headers_too(
    name: list[str], space: str, local: str, host: str, tld: str, bracketed: bool
) -> None:
    addr = f"{local}@{host}.{tld}"
    value = f"{space}{' '.join(name)}{space}<{addr}>{space}" if bracketed else f"{space}{addr}{space}"
    fast = _plain_addresses([value])
    assert fast is None or fast == getaddresses([value])
