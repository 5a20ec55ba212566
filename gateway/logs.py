"""One logging style: structlog key/values, to stderr, plain or JSON lines."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from gateway.config import LoggingSettings


def configure_logging(settings: LoggingSettings, file: TextIO | None = None) -> None:
    """Structured logs to ``file`` (default: whatever ``sys.stderr`` is when a line is written)."""
    level = getattr(logging, settings.level.upper())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if settings.as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=file or _CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at the moment of writing (embedders and tests swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()
