"""``case-gateway demo``: the whole product on one machine, for someone who has never seen it.

Everything runs on 127.0.0.1 on free ports and lives in one folder (``./gateway-demo/`` by
default): an IMAP server (pymap, in-memory, a child process in its own process group), an SMTP
server that files every mail the gateway sends as an ``.eml`` (aiosmtpd, in-process), a SQLite
database migrated like any other, and the real :class:`~gateway.daemon.Daemon`. A short story
is narrated while the daemon does its job; then the daemon keeps running until Ctrl-C.

Needs the ``demo`` extra (``pip install 'case-gateway[demo]'``). Nothing here is imported by the
daemon or the other commands.
"""
