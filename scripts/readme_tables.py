"""The README's command table and configuration reference, made from the program itself.

``python scripts/readme_tables.py`` rewrites the two tables between their markers in
README.md; ``--check`` exits 1 when the README differs from what the program says (the
tests run it, so a new command, option or setting cannot go undocumented).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.cli import COMMANDS  # noqa: E402
from gateway.config import ENV_PREFIX, Settings  # noqa: E402

README = ROOT / "README.md"
EXAMPLE = ROOT / "gateway.example.toml"
_SECTION = re.compile(r"^\[\[?(\w+)\]\]?")
_KEY = re.compile(r"^#?\s*(\w+)\s*=\s*[^#]*?(?:#\s*(.*))?$")
MARKERS = {
    "commands": ("<!-- commands: made by scripts/readme_tables.py -->", "<!-- commands end -->"),
    "config": ("<!-- config: made by scripts/readme_tables.py -->", "<!-- config end -->"),
}


def _option(param: click.Parameter) -> str:
    if isinstance(param, click.Argument):
        return (param.metavar or param.name or "").upper()
    assert isinstance(param, click.Option)
    if param.is_flag and param.secondary_opts:
        text = f"{param.opts[0]}/{param.secondary_opts[0]}"
    elif param.is_flag:
        text = param.opts[0]
    elif isinstance(param.type, click.Choice):
        text = f"{param.opts[0]} {'|'.join(str(c) for c in param.type.choices)}"
    else:
        text = f"{param.opts[0]} {param.metavar or (param.name or '').upper()}"
    return text if param.required else f"[{text}]"


def _usage(path: list[str], command: click.Command) -> str:
    params = [p for p in command.params if not (isinstance(p, click.Option) and p.hidden)]
    return " ".join(["case-gateway", *path, *(_option(p) for p in params)])


def _help(command: click.Command) -> str:
    text = (command.help or "").split("\n\n")[0]
    return " ".join(text.split())


def commands_table() -> str:
    rows = ["| command | what it does |", "| --- | --- |"]
    for name in sorted(COMMANDS):
        module, _, attribute = COMMANDS[name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        subcommands = (
            [([name, sub], command.commands[sub]) for sub in sorted(command.commands)]
            if isinstance(command, click.Group) else [([name], command)]
        )
        for path, sub in subcommands:
            usage, meaning = (text.replace("|", "\\|") for text in (_usage(path, sub), _help(sub)))
            rows.append(f"| `{usage}` | {meaning} |")
    return "\n".join(rows)


def example_comments() -> dict[str, str]:
    """``section.key`` -> what gateway.example.toml says of it (its comment, continued on the
    lines below; a key without one gets the comment block above it)."""
    found: dict[str, str] = {}
    section, last, block = "", "", []
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if match := _SECTION.match(line):
            section, last, block = match.group(1), "", []
        elif line.startswith(" ") and line.strip().startswith("#") and last:
            found[last] += " " + line.strip().lstrip("# ")
        elif (match := _KEY.match(line)) and not line.startswith("#  "):
            last = f"{section}.{match.group(1)}"
            found[last] = (match.group(2) or " ".join(block)).strip()
            block = []
        elif line.startswith("#"):
            block.append(line.lstrip("# ").strip())
            last = ""
    return found


def _default(value: Any) -> str:
    if isinstance(value, SecretStr):
        return '`""` (secret)' if not value.get_secret_value() else "(secret)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if value is None:
        return "(none)"
    if isinstance(value, BaseModel | list):
        dumped = value.model_dump(mode="json") if isinstance(value, BaseModel) else [
            v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
        return f"`{json.dumps(dumped)}`"
    return f"`{value}`"


def config_table() -> str:
    rows = ["| key | default | environment | meaning |", "| --- | --- | --- | --- |"]
    comments = example_comments()
    for section, field in Settings.model_fields.items():
        model = field.annotation
        many = section == "mailboxes"
        if many:
            from gateway.config import MailboxSettings

            model = MailboxSettings
        assert isinstance(model, type) and issubclass(model, BaseModel), section
        instance = None if many else getattr(Settings(), section)
        for key, sub in model.model_fields.items():
            name = sub.alias or key
            dotted = f"mailboxes[].{name}" if many else f"{section}.{name}"
            env = (f"{ENV_PREFIX}MAILBOXES__<NAME>__{name.upper()}" if many
                   else f"{ENV_PREFIX}{section.upper()}__{name.upper()}")
            if many:
                default = "(required)" if sub.is_required() else _default(sub.default)
            else:
                default = _default(getattr(instance, key))
            said = sub.description or comments.get(f"{section}.{name}", "")
            meaning = " ".join(said.split()).replace("``", "`").replace("|", "\\|")
            rows.append(f"| `{dotted}` | {default} | `{env}` | {meaning} |")
    return "\n".join(rows)


def rewritten(readme: str) -> str:
    for name, made in (("commands", commands_table()), ("config", config_table())):
        start, end = MARKERS[name]
        head, found, rest = readme.partition(start)
        if not found:
            raise SystemExit(f"README.md has no {start!r}")
        _, found, tail = rest.partition(end)
        if not found:
            raise SystemExit(f"README.md has no {end!r}")
        readme = f"{head}{start}\n{made}\n{end}{tail}"
    return readme


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    args = parser.parse_args()
    current = README.read_text(encoding="utf-8")
    wanted = rewritten(current)
    if args.check:
        if current != wanted:
            print("README.md's tables differ from the program: run scripts/readme_tables.py", file=sys.stderr)
            sys.exit(1)
        return
    README.write_text(wanted, encoding="utf-8")


if __name__ == "__main__":
    main()
