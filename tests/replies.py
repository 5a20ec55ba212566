"""The reply fixtures of ``tests/data/replies``: replies to our information request as the
common mail programs write them, each beside the new text care must see.

Each ``NAME.eml`` answers the request :func:`request_information` sends on the first case
of a fresh world (the mail programs quoted that mail as rendered, its reference token
:data:`TOKEN` included: the test secret and the case number make it); ``{message_id}`` in its
header stands for the request's Message-ID, which is random. ``NAME.txt`` is the expected new
text; a first line ``#whole`` says the extraction must keep the whole text and flag the event.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.app import App
from gateway.models import Case
from testkit.mails import parse, sent_mail, token_of
from testkit.world import open_case

REPLIES = Path(__file__).parent / "data" / "replies"
TOKEN = "REF:00000001.2x3av9kq92kez"
CARE_MESSAGE = (
    "Which software version does your contact center run?\n"
    "How many agents are affected, and since when?\n"
    "Please attach a SIP trace of one dropped call."
)


@dataclass(frozen=True)
class Fixture:
    name: str
    template: bytes
    expected: str
    whole: bool

    def mail(self, request: bytes) -> bytes:
        """The fixture as a reply to ``request`` (our information request's bytes)."""
        assert token_of(request) == TOKEN, "the fixtures quote a request with another token"
        return self.template.replace(b"{message_id}", str(parse(request)["Message-ID"]).encode())


def fixtures() -> list[Fixture]:
    found = []
    for path in sorted(REPLIES.glob("*.eml")):
        expected = path.with_suffix(".txt").read_text(encoding="utf-8")
        whole = expected.startswith("#whole")
        found.append(Fixture(path.stem, path.read_bytes(), expected.removeprefix("#whole\n").strip(), whole))
    return found


async def request_information(app: App) -> tuple[Case, bytes]:
    """A case awaiting the customer's information, and the request's bytes as they got them."""
    case = await open_case(app)
    async with app.sessions.begin() as session:
        care = await app.care(session)
        await care.request_info(session, case.number, CARE_MESSAGE)
    return case, await sent_mail(app, case.id, kind="info_requested")
