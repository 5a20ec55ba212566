"""Settings: TOML plus environment, each error one line naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import DEFAULT_DATABASE_URL, load_settings
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def test_defaults_without_any_config() -> None:
    settings = load_settings(environ={})
    assert settings.database.url == DEFAULT_DATABASE_URL
    assert settings.mailboxes == []
    assert settings.smtp.tls == "starttls"
    assert settings.limits.max_message_bytes == 25 * 1024 * 1024
    assert settings.limits.auto_replies_per_sender_per_day == 5


def test_example_config_loads_with_secrets_from_environment() -> None:
    settings = load_settings(
        ROOT / "gateway.example.toml",
        environ={"GATEWAY_MAILBOXES__CARE__PASSWORD": "pw", "GATEWAY_REFERENCE__SECRET": "s" * 32},
    )
    assert settings.mailboxes[0].password.get_secret_value() == "pw"
    assert settings.mailboxes[0].processed_folder == "Processed"
    settings.require_reference_secret()
    assert settings.secrets() == [b"s" * 32]
    assert settings.mail.id_domain == "example.com"


def test_environment_overrides_every_level(tmp_path: Path) -> None:
    path = write(tmp_path, '[smtp]\nhost = "relay"\n[[mailboxes]]\nname = "care"\nhost = "imap"\n'
                           '[[mailboxes]]\nname = "billing"\nhost = "imap2"\n')
    settings = load_settings(path, environ={
        "GATEWAY_SMTP__PORT": "2525",
        "GATEWAY_DATABASE__URL": "postgresql+asyncpg://db/gw",
        "GATEWAY_MAILBOXES__1__USERNAME": "bill",
        "GATEWAY_MAILBOXES__CARE__PASSWORD": "hunter2",
        "GATEWAY_REFERENCE__OLD_SECRETS": '["old-key-aaaaaaaaaaaa"]',
        "GATEWAY_UNRELATED": "ignored",
    })
    assert settings.smtp.port == 2525 and settings.smtp.host == "relay"
    assert settings.database.url == "postgresql+asyncpg://db/gw"
    assert settings.mailboxes[1].username == "bill"
    assert settings.mailboxes[0].password.get_secret_value() == "hunter2"
    assert [s.get_secret_value() for s in settings.reference.old_secrets] == ["old-key-aaaaaaaaaaaa"]
    assert "hunter2" not in repr(settings)


def test_config_file_from_environment_variable(tmp_path: Path) -> None:
    path = write(tmp_path, '[mail]\nfrom_address = "help@vendor.example"\n')
    settings = load_settings(environ={"GATEWAY_CONFIG": str(path)})
    assert settings.mail.from_address == "help@vendor.example"


@pytest.mark.parametrize(
    ("toml", "env", "key", "reason"),
    [
        ("[smtp]\nport = 70000\n", {}, "smtp.port", "less than or equal to 65535"),
        ("[smtp]\ntls = \"maybe\"\n", {}, "smtp.tls", "'starttls', 'tls' or 'none'"),
        ("[smtp]\nhost = \"relay.example\"\ntls = \"none\"\n", {}, "smtp", "allow_plaintext"),
        ("[smtp]\nhots = \"x\"\n", {}, "smtp.hots", "unknown key"),
        ("[[mailboxes]]\nname = \"care\"\n", {}, "mailboxes.0.host", "Field required"),
        ("", {"GATEWAY_LIMITS__MAX_MIME_DEPTH": "zero"}, "limits.max_mime_depth", "valid integer"),
        ("", {"GATEWAY_MAILBOXES__SALES__PASSWORD": "x"}, "GATEWAY_MAILBOXES__SALES__PASSWORD",
         "no mailbox named or numbered 'sales'"),
        ("[[mailboxes]]\nname = \"a\"\nhost = \"h\"\n[[mailboxes]]\nname = \"a\"\nhost = \"h\"\n", {},
         "config", "mailbox names must be unique"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, toml: str, env: dict[str, str], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, toml), environ=env)
    assert info.value.key == key
    assert reason in info.value.reason


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[smtp\nport = 1"), environ={})


def test_reference_secret_required_where_used() -> None:
    with pytest.raises(ConfigError, match=r"reference\.secret"):
        load_settings(environ={"GATEWAY_REFERENCE__SECRET": "short"}).require_reference_secret()


def test_cli_config_error_is_one_line_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, "[smtp]\nport = \"many\"\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(path), "org", "list"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "config error: smtp.port: Input should be a valid integer, unable to parse string as an integer"
    ]
    assert proc.stdout == ""
