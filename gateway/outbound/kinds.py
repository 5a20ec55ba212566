"""Every mail the gateway sends, and the few facts about each that the sender needs.

A :class:`MailKind` names a template folder (``gateway/templates/<kind>/``) and selects a
:class:`KindSpec`. The spec decides the RFC 3834 ``Auto-Submitted`` value, how long the
sender keeps retrying (``group``, plus ``time_critical`` for incident alerts), and whether
the mail belongs to a case thread (carries the reference token and the reply marker).

Auto-Submitted policy (RFC 3834 section 5):

* ``auto-replied`` on mail answering an inbound message: the refusals (new case, closed
  case, not re-openable, unauthorised sender). Their subjects never ask for an answer.
* ``auto-generated`` on everything the system sends on its own: the acknowledgement of a
  new case, the follow-up reminders and the auto-closure, notices to distribution lists,
  and the escalation forwarded to care management (and its note that automatic answers
  are paused).
* no header on mail a care analyst writes or causes by hand (reply, information request,
  proposed solution, closure, re-open). It is a person talking to a person; marking it
  automatic would invite mail filters to sort it away from the customer's inbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

AutoSubmitted = Literal["auto-generated", "auto-replied"]


class MailKind(StrEnum):
    """One member per mail the product sends; the value is its template folder."""

    CASE_RECEIVED = "case_received"
    CARE_REPLY = "care_reply"
    INFO_REQUESTED = "info_requested"
    SOLUTION_PROPOSED = "solution_proposed"
    CASE_CLOSED = "case_closed"
    CASE_REOPENED = "case_reopened"
    FOLLOWUP_1 = "followup_1"
    FOLLOWUP_2 = "followup_2"
    FOLLOWUP_3_CLOSED = "followup_3_closed"
    NEW_CASE_REFUSED = "new_case_refused"
    CLOSED_CASE_REPLY = "closed_case_reply"
    NOT_REOPENABLE = "not_reopenable"
    UNAUTHORIZED_SENDER = "unauthorized_sender"
    ESCALATION_TO_MANAGEMENT = "escalation_to_management"
    AUTO_REPLIES_PAUSED = "auto_replies_paused"
    MAINTENANCE_PLANNED = "maintenance_planned"
    MAINTENANCE_EMERGENCY = "maintenance_emergency"
    MAINTENANCE_CHANGED = "maintenance_changed"
    MAINTENANCE_CANCELLED = "maintenance_cancelled"
    MAINTENANCE_REMINDER = "maintenance_reminder"
    INCIDENT_ALERT = "incident_alert"
    INCIDENT_UPDATE = "incident_update"
    INCIDENT_RESTORED = "incident_restored"
    ADVISORY_PRODUCT = "advisory_product"
    ADVISORY_SECURITY = "advisory_security"
    INCIDENT_OPS_WARNING = "incident_ops_warning"
    LIST_SUSPENDED = "list_suspended"

    @property
    def spec(self) -> KindSpec:
        """The frozen facts about this kind (see :data:`SPECS`)."""
        return SPECS[self]


class MailGroup(StrEnum):
    """Which retry budget the sender applies (``OutboxSettings.*_max_age_*``).

    ``case``: case thread mail; ``reply``: answers to inbound mail; ``notice``: distribution
    list notices; ``internal``: mail to our own organisation (care management).
    """

    CASE = "case"
    REPLY = "reply"
    NOTICE = "notice"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What the composer and the sender need to know about one :class:`MailKind`.

    ``case_thread``: the mail belongs to a case conversation; its subject and body carry the
    case's reference token and the body starts with the reply marker, so a reply to it
    updates the case. ``time_critical``: worthless once stale (incident alert and update);
    the sender gives up after ``outbox.incident_max_age_minutes`` instead of the notice age.
    """

    kind: MailKind
    group: MailGroup
    auto_submitted: AutoSubmitted | None
    case_thread: bool
    time_critical: bool = False

    @property
    def is_notice(self) -> bool:
        return self.group is MailGroup.NOTICE


def _case(kind: MailKind, auto: AutoSubmitted | None) -> KindSpec:
    return KindSpec(kind, MailGroup.CASE, auto, case_thread=True)


def _reply(kind: MailKind) -> KindSpec:
    return KindSpec(kind, MailGroup.REPLY, "auto-replied", case_thread=False)


def _notice(kind: MailKind, time_critical: bool = False) -> KindSpec:
    return KindSpec(kind, MailGroup.NOTICE, "auto-generated", False, time_critical)


def _internal(kind: MailKind) -> KindSpec:
    return KindSpec(kind, MailGroup.INTERNAL, "auto-generated", case_thread=False)


_K = MailKind
SPECS: MappingProxyType[MailKind, KindSpec] = MappingProxyType(
    {
        _K.CASE_RECEIVED: _case(_K.CASE_RECEIVED, "auto-generated"),
        _K.CARE_REPLY: _case(_K.CARE_REPLY, None),
        _K.INFO_REQUESTED: _case(_K.INFO_REQUESTED, None),
        _K.SOLUTION_PROPOSED: _case(_K.SOLUTION_PROPOSED, None),
        _K.CASE_CLOSED: _case(_K.CASE_CLOSED, None),
        _K.CASE_REOPENED: _case(_K.CASE_REOPENED, None),
        _K.FOLLOWUP_1: _case(_K.FOLLOWUP_1, "auto-generated"),
        _K.FOLLOWUP_2: _case(_K.FOLLOWUP_2, "auto-generated"),
        _K.FOLLOWUP_3_CLOSED: _case(_K.FOLLOWUP_3_CLOSED, "auto-generated"),
        _K.NEW_CASE_REFUSED: _reply(_K.NEW_CASE_REFUSED),
        _K.CLOSED_CASE_REPLY: _reply(_K.CLOSED_CASE_REPLY),
        _K.NOT_REOPENABLE: _reply(_K.NOT_REOPENABLE),
        _K.UNAUTHORIZED_SENDER: _reply(_K.UNAUTHORIZED_SENDER),
        _K.ESCALATION_TO_MANAGEMENT: _internal(_K.ESCALATION_TO_MANAGEMENT),
        _K.AUTO_REPLIES_PAUSED: _internal(_K.AUTO_REPLIES_PAUSED),
        _K.MAINTENANCE_PLANNED: _notice(_K.MAINTENANCE_PLANNED),
        _K.MAINTENANCE_EMERGENCY: _notice(_K.MAINTENANCE_EMERGENCY),
        _K.MAINTENANCE_CHANGED: _notice(_K.MAINTENANCE_CHANGED),
        _K.MAINTENANCE_CANCELLED: _notice(_K.MAINTENANCE_CANCELLED),
        _K.MAINTENANCE_REMINDER: _notice(_K.MAINTENANCE_REMINDER),
        _K.INCIDENT_ALERT: _notice(_K.INCIDENT_ALERT, time_critical=True),
        _K.INCIDENT_UPDATE: _notice(_K.INCIDENT_UPDATE, time_critical=True),
        _K.INCIDENT_RESTORED: _notice(_K.INCIDENT_RESTORED),
        _K.ADVISORY_PRODUCT: _notice(_K.ADVISORY_PRODUCT),
        _K.ADVISORY_SECURITY: _notice(_K.ADVISORY_SECURITY),
        _K.INCIDENT_OPS_WARNING: _internal(_K.INCIDENT_OPS_WARNING),
        _K.LIST_SUSPENDED: _internal(_K.LIST_SUSPENDED),
    }
)
"""The spec of every kind; a test checks that no kind is missing."""

CASE_THREAD_KINDS: frozenset[MailKind] = frozenset(k for k, s in SPECS.items() if s.case_thread)
"""Kinds whose subject and body carry the case token and whose body starts with the marker."""

SENDER_ONLY_KINDS: frozenset[MailKind] = frozenset(
    {MailKind.NEW_CASE_REFUSED, MailKind.UNAUTHORIZED_SENDER}
)
"""Kinds rendered from ``sender`` alone: they must reveal nothing about any case."""
