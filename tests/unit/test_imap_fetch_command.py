"""Our FETCH command answers "is a message still incomplete?" exactly as aioimaplib's does,
line after line, without rescanning the whole response each time."""

from __future__ import annotations

import asyncio

import aioimaplib
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.inbound.imap_fetch import FetchCommand

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
