"""The product's vocabulary: statuses, severities, case types, dispositions.

Stored as plain strings (so the schema does not change when a value is added); these enums
are what the code compares against and what the CLI offers as choices.
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class CaseStatus(StrEnum):
    NEW = "new"
    """Received and being assessed (the guide's "Response")."""
    IN_PROGRESS = "in_progress"
    AWAITING_INFO = "awaiting_info"
    SOLUTION_PROPOSED = "solution_proposed"
    CLOSED = "closed"

    @property
    def waits_for_customer(self) -> bool:
        """Statuses in which the auto follow-up timer runs (guide 4.8, 4.9)."""
        return self in (CaseStatus.AWAITING_INFO, CaseStatus.SOLUTION_PROPOSED)


class Environment(StrEnum):
    PRODUCTION = "production"
    UAT = "uat"


CASE_TYPES: dict[str, tuple[str, ...]] = {
    "support": ("problem", "question"),
    "service_request": ("add_remove_access", "password_reset", "change_request", "new_project_request"),
    "data_privacy_request": ("n/a",),
    "admin": ("question", "request", "problem"),
}
"""Case types and their sub-types (guide 4.4)."""


class CloseReason(StrEnum):
    RESOLVED = "resolved"
    AUTO_FOLLOWUP = "auto_followup"
    CUSTOMER = "customer"


WHOLE_TEXT_KEPT = "whole_text_kept"
"""A customer reply's timeline flag (in the event's ``data``): reading the reply was in doubt,
so its whole text is on the timeline."""


class EventKind(StrEnum):
    OPENED = "opened"
    CARE_REPLY = "care_reply"
    INFO_REQUESTED = "info_requested"
    SOLUTION_PROPOSED = "solution_proposed"
    CUSTOMER_REPLY = "customer_reply"
    ESCALATED = "escalated"
    CLOSED = "closed"
    REOPENED = "reopened"
    REOPEN_REQUESTED = "reopen_requested"
    REOPEN_REFUSED = "reopen_refused"
    FOLLOWUP_SENT = "followup_sent"
    FOLLOWUP_NOT_SENT = "followup_not_sent"
    """A step whose recipient's address bounced permanently: no mail, the step still counts."""
    DELIVERY_FAILED = "delivery_failed"


class Disposition(StrEnum):
    """Where every inbound message ends (DESIGN.md, "The pipeline")."""

    APPLIED = "applied"
    REFUSED_NEW_CASE = "refused_new_case"
    REFUSED_CLOSED_CASE = "refused_closed_case"
    REFUSED_NOT_REOPENABLE = "refused_not_reopenable"
    REFUSED_UNAUTHORIZED = "refused_unauthorized"
    AUTO_REPLY_IGNORED = "auto_reply_ignored"
    BOUNCE = "bounce"
    DUPLICATE = "duplicate"
    LOOP_DROPPED = "loop_dropped"
    QUARANTINED = "quarantined"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    """Due at ``next_attempt_at``; some recipients still to try."""
    SENDING = "sending"
    """Claimed by a sender until ``lease_until``."""
    SENT = "sent"
    """Every recipient accepted."""
    FAILED = "failed"
    """Done, with at least one recipient failed permanently (see the recipient rows)."""
    EXPIRED = "expired"
    """Gave up: older than its kind's maximum age."""


class RecipientStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"
    BOUNCED = "bounced"


class NoticeKind(StrEnum):
    MAINTENANCE_PLANNED = "maintenance_planned"
    MAINTENANCE_EMERGENCY = "maintenance_emergency"
    INCIDENT = "incident"
    ADVISORY_PRODUCT = "advisory_product"
    ADVISORY_SECURITY = "advisory_security"
