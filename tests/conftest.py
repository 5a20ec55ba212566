"""Fixtures shared by every test live in ``tests/plugins/``: one module per real server."""

pytest_plugins = [
    "tests.plugins.database",
    "tests.plugins.dovecot",
    "tests.plugins.smtp",
]
