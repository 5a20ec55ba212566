"""Product and security advisories (guide 10): details, impacts and a link, sent at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.domain import NoticeKind
from gateway.errors import InvalidValue
from gateway.models import Notice
from gateway.notices import mails, references, targets
from gateway.notices.mails import UpdateKind
from gateway.outbound.render import Renderer

KINDS = {"product": NoticeKind.ADVISORY_PRODUCT, "security": NoticeKind.ADVISORY_SECURITY}


@dataclass
class Advisories:
    settings: Settings
    renderer: Renderer

    async def send(self, session: AsyncSession, now: datetime, *, kind: str, title: str,
                   details: str, link: str, impact: str | None, orgs: str | None,
                   everyone: bool) -> Notice:
        if kind not in KINDS:
            raise InvalidValue(f"unknown advisory kind {kind!r} (use product or security)")
        if not title.strip() or not details.strip():
            raise InvalidValue("the title and the details must not be empty")
        if not link.startswith(("https://", "http://")):
            raise InvalidValue(f"--link must be an http(s) URL: {link!r}")
        organisations = await targets.resolve(session, orgs, everyone)
        notice_kind = KINDS[kind]
        notice = Notice(reference=await references.next_reference(session, notice_kind, now),
                        kind=notice_kind.value, status="sent", title=title.strip(), summary=details,
                        impact=impact, link=link, created_at=now, send_at=now, sequence=0)
        session.add(notice)
        await session.flush()
        targets.attach(session, notice, organisations)
        await session.flush()
        first = await mails.add_update(session, notice, UpdateKind.FIRST, now=now, due_at=now)
        await mails.deliver(session, self.settings, self.renderer, notice, first, now)
        return notice
