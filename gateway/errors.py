"""The one error tree of case-gateway.

Every error the gateway raises on purpose is a :class:`GatewayError`. Library errors
(aiosmtplib, aioimaplib, SQLAlchemy, Jinja2) are translated into this tree at the
module that talks to the library, so callers decide on *kind*, never on library types:

``GatewayError``
  ``ConfigError``           settings missing or invalid; the CLI exits with status 2.
  ``SchemaOutOfDate``       the database is behind the migrations; run ``case-gateway db upgrade``.
  ``UsageError``            a request that cannot be done as asked; the CLI prints one line, exit 1.
      ``NotFound``          unknown organisation, contact, case, outbox or inbound row.
      ``AlreadyExists``     duplicate organisation, contact, ...
      ``InvalidValue``      a bad time zone, country code, severity, ...
      ``PolicyViolation``   allowed input that policy forbids (re-open after 30 days, ...).
  ``TemplateError``         a template is missing or fails to render; raised when mail is scheduled.
  ``MessageRejected``       an inbound message that cannot be processed (too large, too deep); quarantined.
  ``TransportError``        a mail server (SMTP or IMAP) failed us.
      ``TemporaryTransportError``  try again later: 4xx, timeouts, dropped connections.
          ``TransportTimeout``     a network call exceeded its deadline.
      ``PermanentTransportError``  do not retry: 5xx, authentication refused, TLS required but absent.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """Settings are missing or invalid. ``key`` names the setting, e.g. ``smtp.port``."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class SchemaOutOfDate(GatewayError):
    """The database schema is not at the migrations' head."""


class UsageError(GatewayError):
    """A request that cannot be carried out as asked."""


class NotFound(UsageError):
    """The named thing does not exist."""


class AlreadyExists(UsageError):
    """The thing to create exists already."""


class InvalidValue(UsageError):
    """A value is malformed or unknown (time zone, country, severity, ...)."""


class PolicyViolation(UsageError):
    """Well-formed, but the care policy forbids it."""


class TemplateError(GatewayError):
    """A template is missing or failed to render."""


class MessageRejected(GatewayError):
    """An inbound message the pipeline will not process; it is quarantined with this reason."""


class TransportError(GatewayError):
    """A mail server failed us. ``code`` is the SMTP reply code where there is one."""

    temporary: bool = True

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TemporaryTransportError(TransportError):
    """Worth retrying later: 4xx replies, timeouts, dropped connections."""

    temporary = True


class TransportTimeout(TemporaryTransportError):
    """A network call exceeded its deadline."""


class PermanentTransportError(TransportError):
    """Retrying will not help: 5xx replies, refused authentication, TLS required but not offered."""

    temporary = False
