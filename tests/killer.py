"""Parse functions for worker processes that die, or hang, on a marked message, as a worker
does when the kernel kills it (out of memory) or a C extension crashes on hostile input, or
when a regular expression meets its pathological input. Importable by the workers (they
unpickle the function by its module and name)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Sequence

from gateway.config import LimitSettings
from gateway.inbound.mail.analysis import Parsed, parse_chunk

MARKER = b"X-Test-Kill-Parse-Worker: yes"
HANG_MARKER = b"X-Test-Hang-Parse-Worker: yes"


def parse_chunk_or_die(raws: Sequence[bytes], limits: LimitSettings, keys: Sequence[bytes]) -> list[Parsed]:
    if any(MARKER in raw for raw in raws):
        os.kill(os.getpid(), signal.SIGKILL)
    return parse_chunk(raws, limits, keys)


def parse_chunk_or_hang(raws: Sequence[bytes], limits: LimitSettings, keys: Sequence[bytes]) -> list[Parsed]:
    if any(HANG_MARKER in raw for raw in raws):
        threading.Event().wait()  # forever: only killing the process ends it
    return parse_chunk(raws, limits, keys)
