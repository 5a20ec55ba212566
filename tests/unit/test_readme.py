"""The README against the program: every command and option shown, the configuration
reference current, and every setting in the example configuration."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from pydantic import BaseModel

from gateway.config import MailboxSettings, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def readme_tables():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("readme_tables", module)
    spec.loader.exec_module(module)
    return module


def test_every_command_and_option_is_in_the_readme() -> None:
    tables = readme_tables()
    assert tables.undocumented((ROOT / "README.md").read_text(encoding="utf-8")) == []
    assert len(tables.commands()) > 40  # the check saw the whole command line


def test_the_configuration_reference_is_current() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_tables().rewritten(readme) == readme, "run scripts/readme_tables.py"


def test_every_setting_is_in_the_example_configuration_and_explained() -> None:
    tables = readme_tables()
    said = tables.example_comments()
    for section, field in Settings.model_fields.items():
        model = MailboxSettings if section == "mailboxes" else field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        for key, sub in model.model_fields.items():
            assert f"{section}.{sub.alias or key}" in said, f"{section}.{sub.alias or key}"
    rows = tables.config_table().splitlines()[2:]
    assert [row for row in rows if row.endswith("|  |")] == []  # each key has a meaning
    load_settings(ROOT / "gateway.example.toml", environ={"GATEWAY_REFERENCE__SECRET": "s" * 32})
