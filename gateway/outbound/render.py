"""Templates to text: subject, plain-text body and HTML body for one :class:`MailKind`.

Each kind has a folder ``gateway/templates/<kind>/`` with ``subject.txt``, ``body.txt`` and
``body.html``. An operator overrides any of them (or the shared ``_*`` partials) by putting a
file with the same relative path in ``templates.override_dir``; it is read once, at first use
(restart to pick up edits). Rendering is strict: an undefined variable, a syntax error or a
missing file raises :class:`~gateway.errors.TemplateError` naming the kind and the file, so a
broken template fails when the mail is scheduled, never when it is due.

``.html`` templates are autoescaped; ``.txt`` templates are not. The subject comes back as one
line: whitespace collapsed, control characters removed, so no CR or LF ever survives.

Context contract (the caller builds these dicts; every template also gets ``branding``, the
:class:`~gateway.config.BrandingSettings`, and ``reply_marker``, :data:`REPLY_MARKER`):

Case mails (``case_received``, ``care_reply``, ``info_requested``, ``solution_proposed``,
``case_closed``, ``case_reopened``, ``followup_1``, ``followup_2``, ``followup_3_closed``,
``closed_case_reply``, ``not_reopenable``):
    ``case`` = {number ("00012345"), subject, severity, status, type, token (the full reference
    token, e.g. "REF:00012345.y96mjdf66mjqj", given by the caller), url (portal link to the case)};
    ``contact`` = {name, email}: the recipient;
    ``message``: care's text (required for care_reply, info_requested, solution_proposed;
    optional for case_received, case_closed, case_reopened); plain text, may be multi-line;
    ``closed_at``, ``reopen_deadline``: aware datetimes, required for case_closed,
    followup_3_closed, closed_case_reply, not_reopenable;
    ``requested_action``, ``business_days``: required for the three follow-ups;
    ``recipient_tz``: optional IANA zone for the times shown (default "UTC").
``new_case_refused``, ``unauthorized_sender``:
    ``sender`` = {email, name} only. These templates never read ``case``. ``new_case_refused``
    also takes ``notice_reference`` (optional): the notice the refused mail answers.
``escalation_to_management``:
    ``case``, ``contact`` (who asked), ``message`` (their escalation text),
    ``organisation`` = {name}.
``auto_replies_paused``:
    ``limit`` (automatic answers per hour), ``paused_at`` (aware datetime).
Notices (``maintenance_*``, ``incident_*``, ``advisory_*``):
    ``notice`` = {reference ("MNT-2026-00042"), kind, title, summary, impact, starts_at,
    ends_at (aware datetimes), status_text, next_steps, instructions, link, severity,
    update_number, services, state}: every key present, ``None`` where it does not apply;
    ``recipient_tz``: IANA zone of the distribution list; ``organisation`` = {name}.

Filters: ``localtime(dt, tz)`` ("Tue 1 Dec 2026, 14:00 CET (13:00 UTC)"),
``clock_change(start, end, tz)`` (a sentence when a window spans a DST change), ``wrap(text, 72)``,
``nl2br`` (HTML: escape, then line breaks as ``<br>``) and ``label`` ("in_progress" ->
"In progress").
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup, escape

from gateway.config import BrandingSettings
from gateway.errors import TemplateError
from gateway.identity import REPLY_MARKER
from gateway.outbound.kinds import MailKind

PACKAGE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
"""The templates shipped with the gateway."""

TEMPLATE_FILES = ("subject.txt", "body.txt", "body.html")

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class Rendered:
    """One mail's text: ``subject`` is a single line; ``text`` and ``html`` use ``\\n``."""

    subject: str
    text: str
    html: str


class _Environment(jinja2.Environment):
    """Jinja's environment with each template's globals in a plain dict. Jinja keeps them as a
    ``ChainMap`` over the environment's (so that globals set after a template is loaded still
    reach it), and every render copies them into its context and every include takes their
    keys, a large share of rendering a short mail. Ours are set before any template is loaded
    and never change."""

    def make_globals(self, d: Any = None) -> Any:
        return {**self.globals, **(d or {})}


class Renderer:
    """Renders mail kinds from the packaged templates, or the operator's overrides.

    One instance per process: the Jinja environment caches every compiled template.
    """

    def __init__(self, branding: BrandingSettings, override_dir: Path | None = None) -> None:
        self.branding = branding
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            loaders.append(jinja2.FileSystemLoader(override_dir, encoding="utf-8"))
        loaders.append(jinja2.FileSystemLoader(PACKAGE_TEMPLATES, encoding="utf-8"))
        self.env = _Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html",), default_for_string=False, default=False
            ),
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            cache_size=-1,
        )
        self.env.filters["localtime"] = localtime
        self.env.filters["wrap"] = wrap
        self.env.filters["nl2br"] = nl2br
        self.env.filters["label"] = label
        self.env.filters["clock_change"] = clock_change
        self.env.globals["reply_marker"] = REPLY_MARKER
        self._templates: dict[tuple[MailKind, str], jinja2.Template] = {}
        """Compiled templates by kind and file (templates are not reloaded: auto_reload off),
        cheaper to look up than Jinja's own cache."""

    def render(self, kind: MailKind, context: Mapping[str, Any]) -> Rendered:
        """Render all three parts, or raise :class:`TemplateError` naming kind and file."""
        ctx = {**context, "branding": self.branding, "reply_marker": REPLY_MARKER}
        subject, text, html = (self._render_file(kind, name, ctx) for name in TEMPLATE_FILES)
        return Rendered(subject=one_line(subject), text=_lf(text), html=_lf(html))

    def check(self, kind: MailKind) -> None:
        """Load and compile the kind's three templates (start-up check of overrides)."""
        for name in TEMPLATE_FILES:
            self._template(kind, name)

    def _template(self, kind: MailKind, name: str) -> jinja2.Template:
        found = self._templates.get((kind, name))
        if found is not None:
            return found
        path = f"{kind.value}/{name}"
        try:
            found = self._templates[kind, name] = self.env.get_template(path)
            return found
        except jinja2.TemplateSyntaxError as exc:
            where = exc.filename or exc.name or path
            raise TemplateError(
                f"{kind.value}: syntax error in {where} line {exc.lineno}: {exc.message}"
            ) from exc
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"{kind.value}: template not found: {exc.name}") from exc

    def _render_file(self, kind: MailKind, name: str, ctx: Mapping[str, Any]) -> str:
        template = self._template(kind, name)
        try:
            return template.render(ctx)
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{kind.value}: cannot render {kind.value}/{name}: {exc}") from exc
        except Exception as exc:  # a filter or a value's __str__ failed: still the template's
            raise TemplateError(
                f"{kind.value}: cannot render {kind.value}/{name}: {type(exc).__name__}: {exc}"
            ) from exc


def one_line(text: str) -> str:
    """``text`` as one header-safe line: control and separator characters become spaces,
    runs of whitespace collapse to one space, ends are trimmed."""
    return " ".join(_NOT_IN_A_LINE.sub(" ", text).split())


_NOT_IN_A_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
"""The characters of Unicode categories Cc (controls), Zl and Zp (line and paragraph
separators) and Cs (surrogates): every one of them, as a test checks against ``unicodedata``."""


def localtime(value: datetime, tz_name: str = "UTC") -> str:
    """``value`` in the zone ``tz_name`` with UTC beside it, DST-correct.

    "Tue 1 Dec 2026, 14:00 CET (13:00 UTC)"; the UTC part repeats the date when it differs
    ("Tue 1 Dec 2026, 00:30 CET (Mon 30 Nov 2026, 23:30 UTC)"). A naive datetime is taken
    as UTC (SQLite hands them back naive).
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    utc = value.astimezone(UTC)
    local = value.astimezone(ZoneInfo(tz_name))
    if tz_name.upper() in ("UTC", "ETC/UTC"):
        return f"{_date(utc)}, {utc:%H:%M} UTC"
    utc_part = f"{utc:%H:%M} UTC"
    if utc.date() != local.date():
        utc_part = f"{_date(utc)}, {utc_part}"
    return f"{_date(local)}, {local:%H:%M} {_zone_label(local)} ({utc_part})"


def clock_change(start: datetime | None, end: datetime | None, tz_name: str = "UTC") -> str:
    """A sentence when the zone's UTC offset differs between ``start`` and ``end`` (the
    window spans a daylight-saving change), else ``""``."""
    if start is None or end is None:
        return ""
    zone = ZoneInfo(tz_name)
    first, last = (v.replace(tzinfo=UTC) if v.tzinfo is None else v for v in (start, end))
    before, after = first.astimezone(zone), last.astimezone(zone)
    if before.utcoffset() == after.utcoffset():
        return ""
    return (f"The clocks change during this window: {_zone_label(before)} at the start, "
            f"{_zone_label(after)} at the end.")


def _date(value: datetime) -> str:
    return f"{_DAYS[value.weekday()]} {value.day} {_MONTHS[value.month - 1]} {value.year}"


def _zone_label(value: datetime) -> str:
    name = value.tzname() or ""
    return f"UTC{name}" if name[:1] in "+-" else name


def wrap(text: str, width: int = 72) -> str:
    """Re-flow each line of ``text`` to ``width``; blank lines and URLs stay whole."""
    out: list[str] = []
    for line in str(text).splitlines():
        if len(line) <= width:
            out.append(line)
            continue
        out.extend(
            textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False) or [""]
        )
    return "\n".join(out)


def label(value: object) -> str:
    """A stored value for people: ``"in_progress"`` -> ``"In progress"``; ``None`` -> ``""``."""
    if value is None:
        return ""
    text = str(value).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def nl2br(text: str) -> Markup:
    """HTML-escape ``text`` and turn its line breaks into ``<br>``."""
    lines = _lf(str(text)).split("\n")
    return Markup("<br>\n").join(escape(line) for line in lines)


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
