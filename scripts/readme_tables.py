"""The README against the program: its configuration reference is made from the settings,
and every command and option must be shown.

``python scripts/readme_tables.py`` rewrites the configuration reference between its markers
in README.md; ``--check`` exits 1, one line per problem, when the reference is out of date or
a command or option of the program is nowhere in the README (the tests run it).
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
from gateway.config import Settings  # noqa: E402
from gateway.environment import ENV_PREFIX  # noqa: E402

README = ROOT / "README.md"
EXAMPLE = ROOT / "gateway.example.toml"
_SECTION = re.compile(r"^\[\[?(\w+)\]\]?")
_KEY = re.compile(r"^#?\s*(\w+)\s*=\s*[^#]*?(?:#\s*(.*))?$")
MARKERS = {
    "config": ("<!-- config: made by scripts/readme_tables.py -->", "<!-- config end -->"),
}


def commands() -> list[tuple[str, click.Command]]:
    """Every command the program has, as ``(path, command)``: ``("case list", ...)``."""
    found = []
    for name in sorted(COMMANDS):
        module, _, attribute = COMMANDS[name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", command.commands[sub]) for sub in sorted(command.commands)]
        else:
            found.append((name, command))
    return found


def undocumented(readme: str) -> list[str]:
    """Commands and options the README never shows: a command must appear as ``case-gateway
    PATH`` (or as `` `PATH`` in a table of one command group) and each of its options
    (``--json`` aside: every list and show command has it) on a line that shows the command."""
    missing = []
    joined = readme.replace("\\\n", " ").splitlines()  # a shell line continued with a backslash is one
    for path, command in commands():
        pattern = re.compile(rf"(?:case-gateway |`){re.escape(path)}(?![\w-])")
        lines = [line for line in joined if pattern.search(line)]
        if not lines:
            missing.append(f"command: case-gateway {path}")
            continue
        shown = " ".join(lines)
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden and param.opts[0] != "--json":
                flags = [*param.opts, *param.secondary_opts]
                if not any(re.search(rf"{re.escape(f)}(?![\w-])", shown) for f in flags):
                    missing.append(f"option: case-gateway {path} {param.opts[0]}")
    return missing


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
    for name, made in (("config", config_table()),):
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
        problems = undocumented(current)
        if current != wanted:
            problems.append("the configuration reference differs from the settings: "
                            "run scripts/readme_tables.py")
        for problem in problems:
            print(f"README.md: {problem}", file=sys.stderr)
        sys.exit(1 if problems else 0)
    README.write_text(wanted, encoding="utf-8")


if __name__ == "__main__":
    main()
