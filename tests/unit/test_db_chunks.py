"""``gateway.db.chunks``: the keys of an ``IN`` list in lists of few distinct lengths."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.db import IN_LIST_MAX, chunks


@given(st.lists(st.integers(min_value=0, max_value=3000), max_size=1500))
def test_chunks_hold_each_distinct_key_once_in_order_padded_with_the_last(keys: list[int]) -> None:
    lists = list(chunks(keys))
    distinct = list(dict.fromkeys(keys))
    assert [k for chunk in lists for k in dict.fromkeys(chunk)] == distinct
    for chunk in lists:
        size = len(chunk)
        assert size == IN_LIST_MAX or size & (size - 1) == 0  # a power of two
        unique = list(dict.fromkeys(chunk))
        assert chunk == unique + unique[-1:] * (size - len(unique))
        assert len(unique) > size // 2 or size == 1  # padding never doubles a list


def test_any_number_of_keys_makes_at_most_ten_list_lengths() -> None:
    lengths = {len(chunk) for n in range(1, 2001) for chunk in chunks(range(n))}
    assert len(lengths) <= 10
    assert list(chunks([])) == []
