"""aioimaplib's FETCH command and response reading without their per-line and per-read costs
(used by :mod:`gateway.inbound.imap.client`, the same behaviour as the library's)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aioimaplib
from aioimaplib.aioimaplib import CRLF, Command, IncompleteRead, literal_data_re

LineHandler = Callable[[bytes, Any], Any]


class LeanProtocol(aioimaplib.IMAP4ClientProtocol):  # type: ignore[misc]
    """aioimaplib's protocol, reading responses at a fraction of the cost:

    - the library formats every chunk it receives into a debug message (``repr`` of up to
      256 KB), whether debug logging is on or not: much of its time on a FETCH of whole
      messages. Here nothing is formatted;
    - it walks a chunk line by line recursively, copying the rest of the chunk at each line
      and each literal (quadratic in the messages per chunk). Here one loop walks it with an
      offset; a literal is copied once, into the command.

    Lines, literals, the commands they go to and the incomplete tail kept for the next chunk
    are the library's (test: the same responses for any split of a stream into chunks).
    """

    incomplete_line: bytes
    current_command: Any

    def data_received(self, d: bytes) -> None:
        data = self.incomplete_line + d if self.incomplete_line else d
        try:
            self._handle_responses(data, self._handle_line, self.current_command)
            self.incomplete_line = b""
            self.current_command = None
        except IncompleteRead as incomplete_read:
            self.current_command = incomplete_read.cmd
            self.incomplete_line = incomplete_read.data

    def _handle_responses(self, data: bytes, line_handler: LineHandler, current_cmd: Any = None) -> None:
        view = memoryview(data)
        pos, end = 0, len(data)
        while True:
            if pos >= end:
                if self.pending_sync_command is not None:
                    self.pending_sync_command.flush()
                if current_cmd is not None and current_cmd.wait_data():
                    raise IncompleteRead(current_cmd)
                return
            if current_cmd is not None and current_cmd.wait_literal_data():
                missing = current_cmd._expected_size - len(current_cmd._resp_literal_data)
                current_cmd.append_literal_data(view[pos : pos + missing])
                pos = min(end, pos + missing)
                if current_cmd.wait_literal_data():
                    raise IncompleteRead(current_cmd)
            eol = data.find(CRLF, pos)
            if eol < 0:
                raise IncompleteRead(current_cmd, data[pos:])
            line = data[pos:eol]
            pos = eol + 2
            cmd = line_handler(line, current_cmd)
            begin_literal = literal_data_re.match(line)
            if begin_literal:
                if cmd is None:
                    cmd = Command("NIL", "unused")
                cmd.begin_literal_data(int(begin_literal.group("size")))
                current_cmd = cmd
            elif cmd is not None and cmd.wait_data():
                current_cmd = cmd
            else:
                current_cmd = None


class LeanIMAP4(aioimaplib.IMAP4):  # type: ignore[misc]
    """aioimaplib's client on our :class:`LeanProtocol`."""

    def create_client(self, host: str, port: int, loop: Any, conn_lost_cb: Any = None,
                      ssl_context: Any = None) -> None:
        local_loop = loop if loop is not None else asyncio.get_running_loop()
        self.protocol = LeanProtocol(local_loop, conn_lost_cb)
        self._client_task = local_loop.create_task(
            local_loop.create_connection(lambda: self.protocol, host, port, ssl=ssl_context))


class FetchCommand(aioimaplib.FetchCommand):  # type: ignore[misc]
    """aioimaplib's FETCH, with two of its per-line costs removed and the same behaviour:

    - "is a message still incomplete?" (the parentheses of the lines since the last
      ``n FETCH (`` line do not balance) is worked out incrementally; the library rescans
      every line of the response each time a line arrives: quadratic in the messages of one
      FETCH, about a tenth of the event loop's time at 150 messages per batch;
    - the inactivity timeout (``timeout`` seconds without data) moves a deadline on each
      line, which one timer checks when it fires; the library cancels its timer and makes a
      new one on every line.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lines_seen = 0
        self._open_parentheses = 0

    def _set_timer(self) -> None:
        if self._timeout is not None:
            self._deadline = self._loop.time() + self._timeout
            self._timer = self._loop.call_at(self._deadline, self._check_deadline)

    def _reset_timer(self) -> None:
        if self._timeout is not None:
            self._deadline = self._loop.time() + self._timeout

    def _check_deadline(self) -> None:
        if self._loop.time() < self._deadline:  # data came meanwhile: wait on
            self._timer = self._loop.call_at(self._deadline, self._check_deadline)
        else:
            self._timeout_callback()

    def wait_data(self) -> bool:
        lines = self._resp_lines
        for index in range(self._lines_seen, len(lines)):
            line = lines[index]
            if isinstance(line, bytes):  # a literal is a bytearray: not counted, as there
                if self.FETCH_MESSAGE_DATA_RE.match(line):
                    self._open_parentheses = 0
                self._open_parentheses += line.count(b"(") - line.count(b")")
        self._lines_seen = len(lines)
        return bool(self._open_parentheses)
