"""Settings: one TOML file plus ``GATEWAY_<SECTION>__<KEY>`` environment overrides.

Loaded and validated once at start-up (:func:`load_settings`), then passed down; there is
no global settings object. A missing or bad value raises :class:`~gateway.errors.ConfigError`
naming the key, which the CLI prints as one line before exiting with status 2.
Environment overrides reach every key (:mod:`gateway.environment`).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.environment import CONFIG_ENV, apply_environment
from gateway.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///gateway.db"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
"""The database drivers the gateway runs on."""
MIN_SECRET_CHARS = 16


class DatabaseSettings(_Section):
    url: str = DEFAULT_DATABASE_URL
    echo: bool = False
    """Log every statement (never its parameters: they hold mail and keys)."""

    @field_validator("url")
    @classmethod
    def _known_driver(cls, url: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            driver = make_url(url).drivername
        except (ArgumentError, ValueError):
            raise ValueError("not a database URL (e.g. sqlite+aiosqlite:///gateway.db or "
                             "postgresql+asyncpg://user@host/db)") from None
        if driver not in DRIVERS:
            raise ValueError(f"unknown driver {driver!r}: use {' or '.join(DRIVERS)}")
        return url


class SmtpSettings(_Section):
    host: str = "localhost"
    port: int = Field(587, ge=1, le=65535)
    tls: Literal["starttls", "tls", "none"] = "starttls"
    verify_certificates: bool = True
    allow_plaintext: bool = False
    username: str | None = None
    password: SecretStr | None = None
    timeout_seconds: float = Field(30.0, gt=0)
    pool_size: int = Field(4, ge=1, le=64)

    @model_validator(mode="after")
    def _plaintext_is_explicit(self) -> SmtpSettings:
        if self.tls == "none" and not (self.allow_plaintext or _is_loopback(self.host)):
            raise ValueError("tls = 'none' needs allow_plaintext = true for a non-loopback host")
        return self


class MailboxSettings(_Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    host: str
    port: int = Field(993, ge=1, le=65535)
    tls: Literal["tls", "none"] = "tls"
    verify_certificates: bool = True
    allow_plaintext: bool = False
    username: str = ""
    password: SecretStr = SecretStr("")
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    refused_folder: str = "Refused"
    quarantine_folder: str = "Quarantine"
    timeout_seconds: float = Field(60.0, gt=0)
    standby_seconds: float = Field(3.0, gt=0)
    """How often a standby replica asks for the mailbox while another holds it (PostgreSQL),
    randomised between half and all of it: the takeover after the holder dies."""
    idle: bool = True
    poll_seconds: float = Field(60.0, gt=0)
    batch_size: int = Field(150, ge=1, le=500)
    move_batch_size: int = Field(1000, ge=1, le=10000)
    """Decided messages wait to be moved until this many are (or the round ends): an IMAP
    server's work per MOVE grows with the folder, so fewer, larger moves cost it less."""

    @model_validator(mode="after")
    def _plaintext_is_explicit(self) -> MailboxSettings:
        if self.tls == "none" and not (self.allow_plaintext or _is_loopback(self.host)):
            raise ValueError("tls = 'none' needs allow_plaintext = true for a non-loopback host")
        return self


class MailSettings(_Section):
    from_address: str = "care@example.com"
    from_name: str = "Customer Care"
    reply_to: str = "care@example.com"
    escalation_address: str = "care-management@example.com"
    message_id_domain: str | None = None
    """Domain of our Message-IDs; defaults to the domain of ``from_address``."""

    @property
    def id_domain(self) -> str:
        return self.message_id_domain or self.from_address.rpartition("@")[2] or "localhost"


class ReferenceSettings(_Section):
    secret: SecretStr = SecretStr("")
    """Empty: a key is made and stored in the database on first use."""
    old_secrets: list[SecretStr] = []

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, key: SecretStr) -> SecretStr:
        if 0 < len(key.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(f"must be at least {MIN_SECRET_CHARS} characters (or empty: a key is made "
                             "and stored)")
        return key

    @field_validator("old_secrets")
    @classmethod
    def _old_long_enough(cls, keys: list[SecretStr]) -> list[SecretStr]:
        if any(len(key.get_secret_value()) < MIN_SECRET_CHARS for key in keys):
            raise ValueError(f"every old key must be at least {MIN_SECRET_CHARS} characters")
        return keys


class PhoneNumber(_Section):
    region: str
    number: str


class BrandingSettings(_Section):
    vendor_name: str = "Example Cloud"
    care_name: str = "Example Cloud Customer Care"
    portal_url: str = "https://support.example.com"
    phone_numbers_url: str = "https://support.example.com/contact"
    phone_numbers: list[PhoneNumber] = [
        PhoneNumber(region="International", number="+1-555-0100"),
    ]
    signature: str = "Customer Care"


class TemplateSettings(_Section):
    override_dir: Path | None = None


class LimitSettings(_Section):
    max_message_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    max_attachments: int = Field(50, ge=0)
    max_attachment_bytes: int = Field(20 * 1024 * 1024, ge=0)
    max_mime_depth: int = Field(10, ge=1)
    max_new_text_chars: int = Field(20_000, ge=100)
    auto_replies_per_sender_per_day: int = Field(5, ge=0)
    auto_replies_per_hour: int = Field(200, ge=0)
    """Automatic answers to inbound mail, to all addresses together, in any 60 minutes; past
    it refusals are recorded but not sent, and care management is told (once an hour)."""
    pipeline_attempts: int = Field(3, ge=1)


class OutboxSettings(_Section):
    batch_size: int = Field(100, ge=1)
    lease_seconds: float = Field(30.0, gt=0)
    """A claimed row is the sender's for this long, renewed every third of it while the
    sender lives: a dead replica's rows are taken over within this time."""
    backoff_base_seconds: float = Field(60.0, gt=0)
    backoff_max_seconds: float = Field(3600.0, gt=0)
    case_max_age_hours: float = Field(96.0, gt=0)
    notice_max_age_hours: float = Field(24.0, gt=0)
    incident_max_age_minutes: float = Field(60.0, gt=0)
    poll_seconds: float = Field(5.0, gt=0)
    """How often the daemon looks for due mail when nothing woke it."""


class SchedulerSettings(_Section):
    batch_size: int = Field(500, ge=1, le=10_000)
    """Due items taken per transaction (a pass takes batches until nothing is due)."""
    poll_seconds: float = Field(60.0, gt=0)
    """The longest the daemon's scheduler sleeps: it wakes at the next due time, and at least
    this often to see timers that care started from another process (the CLI)."""


class InboundSettings(_Section):
    trusted_authserv_ids: list[str] = []
    """Authserv-ids of the receiving servers whose Authentication-Results headers count."""
    require_dmarc_pass: bool = False
    """Refuse updates to a case from mail without a DMARC pass from a trusted authserv-id."""
    parse_workers: int = Field(2, ge=0, le=32)
    """Worker processes that parse mail (0: a thread of the daemon's own process)."""
    parse_worker_nice: int = Field(10, ge=0, le=19)
    """How much lower the parse workers' scheduling priority is than the daemon's (``nice``):
    they parse ahead, and a core taken from the daemon holds up the decisions (0: the same)."""
    parse_timeout_seconds: float = Field(60.0, gt=0)
    """A call to the parse workers (ten messages, or one alone; waiting for a free worker
    included) taking longer is stopped: the workers are killed and replaced; a message that
    takes that long alone is quarantined. (Without workers nothing can stop a parse.)"""

    @model_validator(mode="after")
    def _dmarc_needs_a_trusted_server(self) -> InboundSettings:
        if self.require_dmarc_pass and not self.trusted_authserv_ids:
            raise ValueError("require_dmarc_pass needs inbound.trusted_authserv_ids")
        return self


class RunSettings(_Section):
    """How ``run`` and ``run --once`` end."""

    drain_seconds: float = Field(10.0, gt=0)
    """After SIGTERM/SIGINT, how long the work in hand may take to finish before it is
    cancelled (outages included: every wait for a server is cut short by the stop)."""
    give_up_seconds: float = Field(60.0, gt=0)
    """How long ``run --once`` keeps trying to reach an IMAP server before it gives up on that
    mailbox and exits non-zero (the daemon tries for ever)."""


class NoticeSettings(_Section):
    """Notices to distribution lists (guide 7, 10)."""

    min_notice_days: int = Field(7, ge=0)
    """Planned maintenance starting sooner than this is refused (``maintenance emergency``)."""
    hold_days: int = Field(14, ge=1)
    """Planned maintenance starting later than this is held and sent this long before."""
    reminder_hours: float = Field(24.0, ge=0)
    """A maintenance reminder goes out this long before the start (0: no reminder)."""
    incident_update_minutes: float = Field(30.0, gt=0)
    """Every recipient of an open incident gets a mail at least this often."""
    ops_warning_minutes: float = Field(5.0, ge=0)
    """Ops (``mail.escalation_address``) are warned this long before an update without news."""
    suspend_after_failures: int = Field(3, ge=1)
    """A list address is suspended after permanent failures on this many different notices."""


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["console", "json"] = "console"
    """``console``: one readable line per event; ``json``: one JSON object per line."""
    json_format: bool = Field(False, alias="json")
    """The older spelling of ``format = "json"``; still accepted."""

    @property
    def as_json(self) -> bool:
        return self.format == "json" or self.json_format


class MetricsSettings(_Section):
    enabled: bool = False
    """Serve Prometheus metrics while ``run`` runs (not for ``run --once``)."""
    host: str = "127.0.0.1"
    """Where to listen: loopback unless a scraper on another host needs it."""
    port: int = Field(9464, ge=0, le=65535)
    """0: any free port (logged at start)."""
    refresh_seconds: float = Field(15.0, gt=0)
    """How often the gauges of shared state (outbox, quarantine) are read from the database."""


class StatusSettings(_Section):
    """When ``status --check`` says a person is needed."""

    max_poll_age_minutes: float = Field(10.0, gt=0)
    """A mailbox not polled successfully for longer (by any replica)."""
    max_outbox_age_minutes: float = Field(15.0, gt=0)
    """Mail waiting in the outbox for longer."""
    max_quarantined: int = Field(0, ge=0)
    """More messages in quarantine than this."""


class Settings(_Section):
    database: DatabaseSettings = DatabaseSettings()
    smtp: SmtpSettings = SmtpSettings()
    mailboxes: list[MailboxSettings] = []
    mail: MailSettings = MailSettings()
    reference: ReferenceSettings = ReferenceSettings()
    branding: BrandingSettings = BrandingSettings()
    templates: TemplateSettings = TemplateSettings()
    limits: LimitSettings = LimitSettings()
    outbox: OutboxSettings = OutboxSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    inbound: InboundSettings = InboundSettings()
    notices: NoticeSettings = NoticeSettings()
    run: RunSettings = RunSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()
    status: StatusSettings = StatusSettings()

    @model_validator(mode="after")
    def _unique_mailbox_names(self) -> Settings:
        names = [m.name for m in self.mailboxes]
        if len(names) != len(set(names)):
            raise ValueError("mailbox names must be unique")
        return self

    def secrets(self) -> list[bytes]:
        """The reference key first, then the older keys still accepted."""
        keys = [self.reference.secret, *self.reference.old_secrets]
        return [k.get_secret_value().encode() for k in keys if k.get_secret_value()]

    def require_reference_secret(self) -> None:
        """Commands that make or check reference tokens call this first."""
        if len(self.reference.secret.get_secret_value()) < MIN_SECRET_CHARS:
            raise ConfigError("reference.secret", "must be set (at least 16 characters)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read the TOML file (``path``, else ``$GATEWAY_CONFIG``, else none), apply the
    environment, validate. Raises :class:`ConfigError` on the first problem."""
    env = os.environ if environ is None else environ
    chosen = path if path is not None else env.get(CONFIG_ENV) or None
    data: dict[str, Any] = {}
    if chosen is not None:
        file = Path(chosen)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("config", f"file not found: {file}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("config", f"cannot read {file}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", f"{file} is not valid TOML: {exc}") from None
    apply_environment(data, env)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "config"
        raise ConfigError(key, _reason(err)) from None


def _reason(err: Any) -> str:
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "unknown key"
    return msg.removeprefix("Value error, ")
