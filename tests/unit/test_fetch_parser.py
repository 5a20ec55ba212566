"""The FETCH response parser: literals, odd parentheses, aioimaplib's piece format (#51)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.inbound.imap import wire
from gateway.inbound.imap.wire import (
    MAX_UID_SET_CHARS,
    FolderState,
    chunks,
    encode_folder,
    join_pieces,
    parse_fetch,
    parse_pieces,
    parse_search,
    parse_select,
    uid_set,
    uid_sets,
)


def literal_response(seq: int, uid: int, body: bytes, star: bool = True) -> bytes:
    prefix = b"* " if star else b""
    return prefix + b"%d FETCH (UID %d BODY[] {%d}\r\n" % (seq, uid, len(body)) + body + b")\r\n"


def test_one_message_with_a_literal() -> None:
    parsed = parse_fetch(literal_response(1, 7, b"Subject: hi\r\n\r\nbody\r\n"))
    assert parsed.errors == []
    [record] = parsed.records
    assert (record.seq, record.uid, record.section("")) == (1, 7, b"Subject: hi\r\n\r\nbody\r\n")


def test_literal_may_contain_anything() -> None:
    evil = b")\r\n* 2 FETCH (UID 99 BODY[] {3}\r\nabc)\r\nA1 OK done\r\n((( {5}\r\n\xff\xfe"
    data = literal_response(1, 10, evil) + literal_response(2, 11, b"x")
    parsed = parse_fetch(data)
    assert [(r.uid, r.section("")) for r in parsed.records] == [(10, evil), (11, b"x")]
    assert parsed.errors == []


def test_items_after_the_literal_and_flags_and_sizes() -> None:
    data = b"* 3 FETCH (BODY[HEADER] {4}\r\nH: v UID 12 RFC822.SIZE 300 FLAGS (\\Seen $Junk))\r\n"
    [record] = parse_fetch(data).records
    assert record.uid == 12 and record.size == 300
    assert record.section("header") == b"H: v"
    assert record.attributes["FLAGS"] == [b"\\Seen", b"$Junk"]


def test_quoted_strings_with_parentheses_and_escapes() -> None:
    data = b'* 1 FETCH (UID 5 ENVELOPE (NIL "Re: (unbalanced \\"q\\"" NIL) BODY[] "ab)c")\r\n'
    [record] = parse_fetch(data).records
    assert record.attributes["ENVELOPE"] == [None, b'Re: (unbalanced "q"', None]
    assert record.section("") == b"ab)c"


def test_section_with_spaces_and_partial_origin() -> None:
    data = b"* 1 FETCH (UID 5 BODY[HEADER.FIELDS (SUBJECT FROM)] {3}\r\nabc BODY[]<0> {2}\r\nxy)\r\n"
    [record] = parse_fetch(data).records
    assert record.section("HEADER.FIELDS (SUBJECT FROM)") == b"abc"
    assert record.section("") == b"xy"


def test_nil_body_and_other_untagged_lines_are_skipped_quietly() -> None:
    data = b"* 4 EXISTS\r\n* 1 FETCH (UID 5 BODY[] NIL)\r\n* 2 EXPUNGE\r\nFetch completed.\r\n"
    parsed = parse_fetch(data)
    assert parsed.errors == []
    assert parsed.records[0].uid == 5 and parsed.records[0].section("") is None


def test_empty_literal() -> None:
    [record] = parse_fetch(literal_response(1, 3, b"")).records
    assert record.section("") == b""


def test_aioimaplib_pieces_with_and_without_star_prefix() -> None:
    """Issue #51: after a line with an unmatched "(", later lines keep their "* " prefix."""
    pieces: list[bytes | bytearray] = [
        b'1 FETCH (UID 1 ENVELOPE ("Re: (oops") BODY[] {2}',
        bytearray(b"ab"),
        b")",
        b"* 2 FETCH (UID 2 BODY[] {3}",
        bytearray(b"((("),
        b")",
        b"3 FETCH (UID 3 BODY[] {1}",
        bytearray(b")"),
        b" FLAGS ())",
    ]
    parsed = parse_pieces(pieces)
    assert parsed.errors == []
    assert [(r.uid, r.section("")) for r in parsed.records] == [(1, b"ab"), (2, b"((("), (3, b")")]


def test_a_broken_response_is_reported_and_the_next_one_still_parsed() -> None:
    data = (
        b"* 1 FETCH (UID 1 BODY[] {50}\r\ntruncated)\r\n"  # literal longer than what follows
        + b'* 2 FETCH (UID 2 BODY[] "unterminated)\r\n'
        + literal_response(3, 3, b"ok")
    )
    parsed = parse_fetch(data)
    assert [r.uid for r in parsed.records] == [3]
    assert len(parsed.errors) == 2 and "truncated" in parsed.errors[0]


@pytest.mark.parametrize(
    "data",
    [
        b"* 1 FETCH (UID 1 BODY[] {3}\r\nab",  # response ends inside the literal
        b"* 1 FETCH (UID 1 BODY[ {3}\r\nabc)\r\n",  # unclosed section
        b"* 1 FETCH (UID 1 BODY[] {x}\r\nabc)\r\n",
        b"* 1 FETCH (UID 1 RFC822.SIZE 3",  # no closing parenthesis
        b"* 1 FETCH (UID 1) trailing\r\n",
    ],
)
def test_malformed_responses_give_errors_not_records(data: bytes) -> None:
    parsed = parse_fetch(data)
    assert parsed.records == [] and len(parsed.errors) == 1


def test_join_pieces_restores_the_wire_format() -> None:
    assert (
        join_pieces([b"1 FETCH (BODY[] {2}", bytearray(b"\r\n"), b")"]) == b"1 FETCH (BODY[] {2}\r\n\r\n)\r\n"
    )


@given(st.lists(st.binary(max_size=200), min_size=1, max_size=8))
def test_any_bodies_round_trip(bodies: list[bytes]) -> None:
    data = b"".join(literal_response(i + 1, 100 + i, body, star=i % 2 == 0) for i, body in enumerate(bodies))
    parsed = parse_fetch(data)
    assert parsed.errors == []
    assert [(r.uid, r.section("")) for r in parsed.records] == [(100 + i, b) for i, b in enumerate(bodies)]


_PARTS = st.sampled_from([
    b"UID ", b"RFC822.SIZE ", b"BODY[] ", b"BODY[HEADER] ", b"FLAGS (\\Seen) ", b"17", b" ", b")",
    b"{3}\r\n", b"{0}\r\n", b"abc", b"\r\n", b"(", b"NIL", b'"q"', b"~{2}\r\n",
])


_NUMBERS = st.integers(min_value=0, max_value=10**12)
_STARTS = st.one_of(
    st.just(b"UID 5 "),
    st.builds(lambda uid, size: b"UID %d RFC822.SIZE %d" % (uid, size), _NUMBERS, _NUMBERS),
    st.builds(lambda uid, size: b"UID %d RFC822.SIZE %d)" % (uid, size), _NUMBERS, _NUMBERS),
    st.builds(lambda uid, body: b"UID %d BODY[] {%d}\r\n" % (uid, len(body)) + body, _NUMBERS,
              st.binary(max_size=40)),
    st.builds(lambda uid, size, body: b"UID %d BODY[] {%d}\r\n" % (uid, size) + body, _NUMBERS,
              st.integers(min_value=0, max_value=50), st.binary(max_size=40)),  # counts that lie
)


@given(_STARTS, st.lists(_PARTS, max_size=12), st.binary(max_size=20))
def test_the_common_responses_read_as_the_reader_reads_them(
    start: bytes, parts: list[bytes], tail: bytes
) -> None:
    """Whatever follows ``n FETCH (``: the fast path for the gateway's two responses gives
    what the general reader gives, or leaves the response to it."""
    data = start + b"".join(parts) + tail
    found = wire._common(data, 0)
    if found is None:
        return
    assert found == wire._Reader(data, 0).attribute_list()


@pytest.mark.parametrize("data", [
    b"UID 7 RFC822.SIZE 1234)\r\n", b"UID 7 BODY[] {3}\r\nabc)\r\n", b"UID 7 BODY[] {0}\r\n)",
])
def test_the_common_responses_take_the_fast_path(data: bytes) -> None:
    found = wire._common(data, 0)
    assert found is not None and found == wire._Reader(data, 0).attribute_list()


@given(st.binary(max_size=300))
def test_garbage_never_raises(data: bytes) -> None:
    parsed = parse_fetch(b"* 1 FETCH (" + data)
    assert all(isinstance(error, str) for error in parsed.errors)


def test_parse_select() -> None:
    lines = [
        b"FLAGS (\\Answered \\Seen)",
        b"OK [PERMANENTFLAGS (\\Seen \\*)] Flags permitted.",
        b"3 EXISTS",
        b"OK [UIDVALIDITY 1795642292] UIDs valid",
        b"OK [UIDNEXT 4] Predicted next UID",
        b"[READ-WRITE] Select completed.",
    ]
    assert parse_select("INBOX", lines) == FolderState("INBOX", 1795642292, 4, 3)
    with pytest.raises(ValueError, match="UIDVALIDITY"):
        parse_select("INBOX", [b"3 EXISTS"])


def test_parse_search_filters_below_min_uid() -> None:
    assert parse_search([b"7 3 5", b"Search completed."], 1) == [3, 5, 7]
    assert parse_search([b"* SEARCH 9", b"SEARCH 10"], 11) == []  # "11:*" still returns the last UID
    assert parse_search([b"", b"Search completed (0.001 secs)."]) == []


def test_uid_sets_and_chunks() -> None:
    assert uid_set([9, 1, 2, 3, 7, 10, 3]) == "1:3,7,9:10"
    assert uid_set([5]) == "5"
    with pytest.raises(ValueError):
        uid_set([])
    assert chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]


def test_uid_sets_keep_each_set_under_the_length_asked() -> None:
    assert uid_sets([9, 1, 2, 3, 7, 10]) == ["1:3,7,9:10"]
    assert uid_sets([9, 1, 2, 3, 7, 10], max_chars=5) == ["1:3,7", "9:10"]
    assert uid_sets([1, 2, 3, 100000], max_chars=2) == ["1:3", "100000"]  # a range alone may be longer
    assert uid_sets([]) == []
    uids = list(range(1, 40001, 2))  # 20,000 UIDs, none adjacent
    sets = uid_sets(uids)
    assert all(len(one) <= MAX_UID_SET_CHARS for one in sets) and len(sets) > 1
    assert [int(uid) for one in sets for uid in one.split(",")] == uids


def test_encode_folder_quotes_and_uses_modified_utf7() -> None:
    assert encode_folder("Processed") == '"Processed"'
    assert encode_folder('a "b" \\c') == '"a \\"b\\" \\\\c"'
    assert encode_folder("Ärger & Co") == '"&AMQ-rger &- Co"'
    assert encode_folder("日本語") == '"&ZeVnLIqe-"'
