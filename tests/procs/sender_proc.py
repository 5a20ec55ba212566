"""A real sender process for the crash and concurrency tests.

``python -m tests.procs.sender_proc DB_URL SMTP_PORT [--hang-after-claim]``: sends everything
due, then exits 0. With ``--hang-after-claim`` it claims rows, prints ``claimed N`` and hangs
before sending, to be killed with SIGKILL. With ``--wait-for-go`` it prints ``ready`` and
starts when a line arrives on standard input (so two processes start together).
"""

from __future__ import annotations

import asyncio
import sys

from gateway.clock import SystemClock
from gateway.config import OutboxSettings, SmtpSettings
from gateway.db import create_engine
from gateway.outbound.sender import Sender
from gateway.outbound.transport import SmtpTransport


async def main(db_url: str, port: int, hang: bool, wait_for_go: bool) -> None:
    engine = create_engine(db_url)
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=port, tls="none", pool_size=2))
    sender = Sender(engine, transport, OutboxSettings(batch_size=10), SystemClock(), concurrency=2)
    try:
        if hang:
            claimed = await sender.claim(100)
            print(f"claimed {len(claimed)}", flush=True)
            await asyncio.Event().wait()
        if wait_for_go:
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
        stats = await sender.run_until_empty()
        print(f"sent {stats.sent}", flush=True)
    finally:
        await transport.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1], int(sys.argv[2]), "--hang-after-claim" in sys.argv, "--wait-for-go" in sys.argv)
    )
