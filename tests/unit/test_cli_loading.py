"""The command line loads a command's module only when that command runs: importing it (as
the parse workers' fork server does with the main script) does not load the program."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from gateway.cli import COMMANDS, cli


def test_importing_the_command_line_does_not_load_the_program() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, gateway.cli; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    libraries = ("sqlalchemy", "jinja2", "aioimaplib", "aiosmtplib", "pydantic")
    heavy = [m for m in loaded if m.split(".")[0] in libraries
             or m in ("gateway.app", "gateway.daemon", "gateway.models", "gateway.config")]
    assert "gateway.cli" in loaded and heavy == []


def test_the_parse_workers_load_neither_the_settings_nor_the_database() -> None:
    """Their fork server imports the main module (the command line) and the parsing module;
    the limits reach them as plain data, so pydantic is not loaded for them either."""
    loaded = subprocess.run(
        [sys.executable, "-c",
         "import sys, gateway.cli, gateway.inbound.mail.analysis; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    heavy = [m for m in loaded if m.split(".")[0] in ("sqlalchemy", "jinja2", "aioimaplib", "pydantic")
             or m in ("gateway.config", "gateway.models")]
    assert "gateway.inbound.mail.analysis" in loaded and heavy == []


def test_every_command_is_listed_and_loads() -> None:
    help_text = CliRunner().invoke(cli, ["--help"]).output
    for name in COMMANDS:
        assert f"\n  {name} " in help_text
        command = cli.get_command(click.Context(cli), name)
        assert isinstance(command, click.Command) and command.name == name


def test_an_unknown_command_is_refused() -> None:
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2 and "No such command 'frobnicate'" in result.output
