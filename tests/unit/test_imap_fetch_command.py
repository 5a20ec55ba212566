"""Our FETCH command answers "is a message still incomplete?" exactly as aioimaplib's does,
line after line, without rescanning the whole response each time; our protocol reads any
stream of responses, however it is cut into chunks, as the library's does."""

from __future__ import annotations

import asyncio
import itertools
import logging

import aioimaplib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.inbound.imap.protocol import FetchCommand, LeanProtocol

PIECES = [
    b"* 1 FETCH (UID 10 BODY[] {12}",
    b"* 22 FETCH (UID 11 RFC822.SIZE 42)",
    b"2 FETCH (UID 12 BODY[] {3}",  # issue #51: a line split across reads loses its "* "
    b" FLAGS (\\Seen))",
    b")",
    b"(",
    b"Subject: Re: (case 42 urgent",
    b"x FETCH (",
    b"",
    bytearray(b"literal ) ( data"),
    bytearray(b"(((("),
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40))
def test_same_answer_as_the_library_after_every_line(lines: list[bytes]) -> None:
    async def compare() -> None:
        ours = FetchCommand("A1", "1:*", "(UID BODY.PEEK[])", prefix="UID")
        theirs = aioimaplib.FetchCommand("A1", "1:*", "(UID BODY.PEEK[])", prefix="UID")
        assert ours.wait_data() == theirs.wait_data()
        for line in lines:
            ours.append_to_resp(line)
            theirs.append_to_resp(line)
            assert ours.wait_data() == theirs.wait_data(), lines
            assert ours.wait_data() == theirs.wait_data()  # asking twice changes nothing

    asyncio.run(compare())


def test_a_message_split_over_many_lines_is_complete_once_its_parentheses_close() -> None:
    async def check() -> None:
        command = FetchCommand("A1", "1:*", "(UID BODY.PEEK[])", prefix="UID")
        command.append_to_resp(b"* 1 FETCH (UID 10 BODY[] {3}")
        command.append_to_resp(bytearray(b"a)("))
        assert command.wait_data()
        command.append_to_resp(b" FLAGS (\\Seen))")
        assert not command.wait_data()
        command.append_to_resp(b"* 2 FETCH (UID 11 BODY[] {1}")
        assert command.wait_data()

    asyncio.run(check())


def test_the_timeout_counts_from_the_last_line_with_one_timer() -> None:
    async def check() -> None:
        loop = asyncio.get_running_loop()
        command = FetchCommand("A1", "1:*", "(UID BODY.PEEK[])", prefix="UID", timeout=30)
        timer = command._timer
        command.append_to_resp(b"* 1 FETCH (UID 10 BODY[] {3}")
        command.append_literal_data(b"abc")
        assert command._timer is timer  # no new timer per line
        assert command._deadline >= loop.time() + 29

        command._check_deadline()  # the timer fires before the deadline: data came since
        assert command._exception is None and not command._event.is_set()
        assert command._timer is not timer  # waiting on, until the new deadline

        command._deadline = loop.time() - 1  # no data for the whole timeout
        command._check_deadline()
        assert isinstance(command._exception, aioimaplib.CommandTimeout)
        assert command._event.is_set()

    asyncio.run(check())


# -- the protocol: responses read as the library reads them, for any split into chunks ---------

TRICKY = [b"x", b"(", b")", b"\r\n", b"{3}", b"{3}\r\n", b"* 1 FETCH (", b"A1 OK "]
PAYLOAD = st.lists(st.sampled_from(TRICKY), max_size=30).map(b"".join)
RESPONSE = st.one_of(
    st.builds(lambda seq, uid, body: b"* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n"
              % (seq, uid, len(body), body), st.integers(1, 99), st.integers(1, 999), PAYLOAD),
    st.builds(lambda seq, uid: b"* %d FETCH (UID %d RFC822.SIZE 12)\r\n" % (seq, uid),
              st.integers(1, 99), st.integers(1, 999)),
    st.sampled_from([b"* 4 EXISTS\r\n", b"* 2 EXPUNGE\r\n", b"* OK still here\r\n"]),
)


class _Transport(asyncio.Transport):
    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass


def _read(protocol_class: type[aioimaplib.IMAP4ClientProtocol], chunks: list[bytes]) -> tuple[object, ...]:
    """Feed ``chunks`` to a protocol with a UID FETCH pending; what every party ended up with."""

    async def run() -> tuple[object, ...]:
        protocol = protocol_class(asyncio.get_running_loop(), None)
        protocol.connection_made(_Transport())
        protocol.state = aioimaplib.SELECTED
        command = FetchCommand("A1", "1:*", "(UID BODY.PEEK[])", prefix="UID")
        protocol.pending_async_commands["FETCH"] = command
        for chunk in chunks:
            protocol.data_received(chunk)
        current = protocol.current_command
        lines = command.response.lines
        return (command.response.result, [bytes(line) for line in lines], [type(line) for line in lines],
                protocol.incomplete_line,
                None if current is None else (current.name, current.wait_literal_data()))

    return asyncio.run(run())


def _split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(stream), *(cut % (len(stream) + 1) for cut in cuts)})
    return [stream[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=300, deadline=None)
@given(st.lists(RESPONSE, max_size=12), st.booleans(), st.lists(st.integers(0, 10_000), max_size=12))
def test_protocol_reads_any_chunking_as_the_library_does(responses: list[bytes], done: bool,
                                                         cuts: list[int]) -> None:
    stream = b"".join(responses) + (b"A1 OK Fetch completed.\r\n" if done else b"")
    chunks = _split(stream, cuts)
    ours = _read(LeanProtocol, chunks)
    assert ours == _read(aioimaplib.IMAP4ClientProtocol, chunks)
    assert ours == _read(LeanProtocol, [stream])  # the split changes nothing
    if done:
        assert ours[0] == "OK"


def test_pushes_during_idle_reach_the_queue_as_with_the_library() -> None:
    async def run(protocol_class: type[aioimaplib.IMAP4ClientProtocol]) -> list[list[bytes]]:
        protocol = protocol_class(asyncio.get_running_loop(), None)
        protocol.connection_made(_Transport())
        protocol.state = aioimaplib.SELECTED
        protocol.pending_sync_command = aioimaplib.IdleCommand("A2", protocol.idle_queue)
        for chunk in (b"+ idling\r\n* 3 EXI", b"STS\r\n* 1 RECENT\r\n", b"* 2 EXPUNGE\r\n"):
            protocol.data_received(chunk)
        pushed = []
        while not protocol.idle_queue.empty():
            pushed.append(protocol.idle_queue.get_nowait())
        return pushed

    ours = asyncio.run(run(LeanProtocol))
    assert ours == asyncio.run(run(aioimaplib.IMAP4ClientProtocol))
    assert ours == [[b"3 EXISTS", b"1 RECENT"], [b"2 EXPUNGE"]]


def test_protocol_formats_nothing_it_receives(caplog: pytest.LogCaptureFixture) -> None:
    """The library logs (and first formats) each chunk it receives at debug level."""
    caplog.set_level(logging.DEBUG, logger="aioimaplib.aioimaplib")
    _read(LeanProtocol, [b"* 1 FETCH (UID 7 BODY[] {5}\r\nhello)\r\n", b"A1 OK done\r\n"])
    assert not [r for r in caplog.records if "Received" in r.getMessage()]
    _read(aioimaplib.IMAP4ClientProtocol, [b"* 1 FETCH (UID 7 BODY[] {5}\r\nhello)\r\n"])
    assert [r for r in caplog.records if "Received" in r.getMessage()]  # what this test looks for
