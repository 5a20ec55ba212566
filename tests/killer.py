"""A parse function for worker processes that dies on a marked message, as a worker does when
the kernel kills it (out of memory) or a C extension crashes on hostile input. Importable by
the workers (they unpickle the function by its module and name)."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

from gateway.config import LimitSettings
from gateway.inbound.processor import Parsed, parse_chunk

MARKER = b"X-Test-Kill-Parse-Worker: yes"


def parse_chunk_or_die(raws: Sequence[bytes], limits: LimitSettings, keys: Sequence[bytes]) -> list[Parsed]:
    if any(MARKER in raw for raw in raws):
        os.kill(os.getpid(), signal.SIGKILL)
    return parse_chunk(raws, limits, keys)
