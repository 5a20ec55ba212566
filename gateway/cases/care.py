"""Care's actions on a case. Each changes the case, adds a timeline event and enqueues the
templated mail to the case's contact, all in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway import cases
from gateway.cases.mail import closed_context, send_case_mail
from gateway.clock import Clock
from gateway.domain import CaseStatus, CloseReason, EventKind
from gateway.errors import InvalidValue
from gateway.models import Case
from gateway.outbound import dedupe
from gateway.outbound.kinds import MailKind
from gateway.outbound.outbox import Mailer


@dataclass
class Care:
    mailer: Mailer
    clock: Clock

    async def open_case(self, session: AsyncSession, **fields: Any) -> Case:
        """Open a case and send the acknowledgement (the first mail carrying its reference)."""
        case = await cases.open_case(session, self.clock, **fields)
        assert case.number is not None
        await send_case_mail(session, self.mailer, case, MailKind.CASE_RECEIVED,
                             dedupe_key=dedupe.case_opened(case.number),
                             extra={"message": fields.get("description")})
        return case

    async def reply(self, session: AsyncSession, number: str, message: str) -> Case:
        return await self._message(session, number, message, EventKind.CARE_REPLY,
                                   MailKind.CARE_REPLY, CaseStatus.IN_PROGRESS)

    async def request_info(self, session: AsyncSession, number: str, message: str) -> Case:
        return await self._message(session, number, message, EventKind.INFO_REQUESTED,
                                   MailKind.INFO_REQUESTED, CaseStatus.AWAITING_INFO)

    async def propose_solution(self, session: AsyncSession, number: str, message: str) -> Case:
        return await self._message(session, number, message, EventKind.SOLUTION_PROPOSED,
                                   MailKind.SOLUTION_PROPOSED, CaseStatus.SOLUTION_PROPOSED)

    async def close(self, session: AsyncSession, number: str, message: str | None = None) -> Case:
        case = await self._case(session, number)
        now = self.clock.now()
        cases.close(case, now, CloseReason.RESOLVED)
        event = cases.add_event(session, cases.event(case, self.clock, EventKind.CLOSED, cases.CARE, message))
        await session.flush()  # the event's id keys its mail
        await send_case_mail(session, self.mailer, case, MailKind.CASE_CLOSED,
                             dedupe_key=self._key(case, MailKind.CASE_CLOSED, event.id),
                             extra={"message": message, **closed_context(case)})
        return case

    async def reopen(self, session: AsyncSession, number: str, message: str | None = None) -> Case:
        case = await self._case(session, number)
        cases.reopen(case, self.clock.now())
        reopened = cases.event(case, self.clock, EventKind.REOPENED, cases.CARE, message)
        event = cases.add_event(session, reopened)
        await session.flush()  # the event's id keys its mail
        await send_case_mail(session, self.mailer, case, MailKind.CASE_REOPENED,
                             dedupe_key=self._key(case, MailKind.CASE_REOPENED, event.id),
                             extra={"message": message})
        return case

    async def _message(
        self, session: AsyncSession, number: str, message: str, event_kind: EventKind,
        mail_kind: MailKind, status: CaseStatus,
    ) -> Case:
        if not message.strip():
            raise InvalidValue("the message is empty")
        case = await self._case(session, number)
        cases.require_open(case)
        cases.set_status(case, status, self.clock.now())
        event = cases.add_event(session, cases.event(case, self.clock, event_kind, cases.CARE, message))
        await session.flush()  # the event's id keys its mail
        await send_case_mail(session, self.mailer, case, mail_kind,
                             dedupe_key=self._key(case, mail_kind, event.id),
                             extra={"message": message})
        return case

    @staticmethod
    def _key(case: Case, kind: MailKind, event_id: int) -> str:
        assert case.number is not None
        return dedupe.case_event(case.number, kind.value, event_id)

    async def _case(self, session: AsyncSession, number: str) -> Case:
        return await cases.get_case(session, number, for_update=True)
