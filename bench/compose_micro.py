"""Micro-benchmark of message composition: prints messages per second.

Compares the stdlib ``EmailMessage(policy=default).as_bytes()`` baseline with
``gateway.outbound.compose`` for a ~5 KB case mail, and the notice fan-out path
(body built once, one header block per recipient). Run:
``.venv/bin/python bench/compose_micro.py [seconds-per-case]``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.identity import make_message_id
from gateway.outbound.compose import assemble, compose, compose_body, compose_headers
from gateway.outbound.kinds import MailKind
from gateway.outbound.render import Rendered, Renderer
from testkit.mail_samples import BRANDING, sample_context

DATE = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)


def _rate(name: str, fn: Callable[[], object], seconds: float) -> float:
    fn()
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            fn()
        count += 50
    rate = count / (time.perf_counter() - start)
    print(f"{name:<44} {rate:>10,.0f} msg/s  {1e6 / rate:8.1f} us/msg")
    return rate


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    renderer = Renderer(BRANDING, None)
    ctx = sample_context(MailKind.CARE_REPLY)
    ctx["message"] = ("Grüße aus München. Please check the agent desktop logs. " * 40).strip()
    rendered = renderer.render(MailKind.CARE_REPLY, ctx)
    size = len(rendered.text.encode()) + len(rendered.html.encode())
    print(f"message text+html: {size} bytes")

    def stdlib() -> bytes:
        msg = EmailMessage(policy=default)
        msg["Subject"] = rendered.subject
        msg["From"] = "Customer Care <care@acme.test>"
        msg["To"] = "Alice Example <alice@customer.test>"
        msg["Message-ID"] = make_message_id("acme.test")
        msg.set_content(rendered.text)
        msg.add_alternative(rendered.html, subtype="html")
        return msg.as_bytes()

    def ours() -> bytes:
        return compose(
            rendered, kind=MailKind.CARE_REPLY, from_address="care@acme.test",
            from_name="Customer Care", to=[("Alice Example", "alice@customer.test")],
            message_id=make_message_id("acme.test"), date=DATE, id_domain="acme.test",
            reply_to="care@acme.test", in_reply_to="<a.cg@acme.test>",
            references=["<a.cg@acme.test>"],
        )

    body = compose_body(rendered)

    def fan_out() -> bytes:
        headers = compose_headers(
            subject=rendered.subject, kind=MailKind.MAINTENANCE_PLANNED,
            from_address="care@acme.test", from_name="Customer Care",
            to=[("Ops list", "ops@customer.test")], message_id=make_message_id("acme.test"),
            date=DATE, id_domain="acme.test",
        )
        return assemble(headers, body)

    def render_and_compose() -> bytes:
        r: Rendered = renderer.render(MailKind.CARE_REPLY, ctx)
        return compose(
            r, kind=MailKind.CARE_REPLY, from_address="care@acme.test",
            from_name="Customer Care", to=["alice@customer.test"],
            message_id=make_message_id("acme.test"), date=DATE, id_domain="acme.test",
        )

    ascii_ctx = dict(ctx, message=("Please check the agent desktop logs again.\n" * 60).strip())
    ascii_rendered = renderer.render(MailKind.CARE_REPLY, ascii_ctx)

    def ours_ascii() -> bytes:
        return compose(
            ascii_rendered, kind=MailKind.CARE_REPLY, from_address="care@acme.test",
            from_name="Customer Care", to=[("Alice Example", "alice@customer.test")],
            message_id=make_message_id("acme.test"), date=DATE, id_domain="acme.test",
        )

    print(f"composed message: {len(ours())} bytes (QP), {len(ours_ascii())} bytes (7bit)")
    _rate("stdlib EmailMessage(policy=default)", stdlib, seconds)
    _rate("compose() per message, quoted-printable", ours, seconds)
    _rate("compose() per message, ASCII (7bit)", ours_ascii, seconds)
    _rate("fan-out: compose_headers + assemble", fan_out, seconds)
    _rate("render + compose", render_and_compose, seconds)


if __name__ == "__main__":
    main()
