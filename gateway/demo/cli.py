"""``case-gateway demo``: the click command."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import click

from gateway.errors import UsageError


@click.command("demo")
@click.option("--folder", type=click.Path(file_okay=False, path_type=Path), default=Path("gateway-demo"),
              show_default=True, help="Where the demo keeps its database, settings, logs and filed mail.")
@click.option("--keep", is_flag=True,
              help="Continue with the database of the last run instead of starting fresh.")
def demo(folder: Path, keep: bool) -> None:
    """Watch the gateway work: local IMAP and SMTP servers, a SQLite database and the daemon,
    all on 127.0.0.1, with a narrated story. Needs no mail server, database or config.

    Runs until Ctrl-C. Starts fresh every time (the folder's earlier demo database and mail are
    deleted) unless --keep is given.
    """
    missing = [name for name in ("pymap", "aiosmtpd") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"the demo needs {' and '.join(missing)}: pip install 'case-gateway[demo]'")
    from gateway.demo.run import Demo

    sys.exit(asyncio.run(Demo(folder, keep, click.echo).run()))
