"""Mail kinds, their specs and their templates: every kind renders, strictly and safely."""

from __future__ import annotations

import re
import sys
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import BrandingSettings
from gateway.errors import TemplateError
from gateway.outbound import render as render_module
from gateway.outbound.kinds import (
    CASE_THREAD_KINDS,
    SENDER_ONLY_KINDS,
    SPECS,
    MailGroup,
    MailKind,
)
from gateway.outbound.render import REPLY_MARKER, Renderer, label, localtime, one_line, wrap
from testkit.mail_samples import BRANDING, CASE_NUMBER, CASE_SUBJECT, TOKEN, sample_context

TEMPLATES = Path(render_module.__file__).resolve().parent.parent / "templates"


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(BRANDING, None)


# --- kinds -------------------------------------------------------------------------------


def test_every_kind_has_a_spec() -> None:
    assert set(SPECS) == set(MailKind)
    for kind, spec in SPECS.items():
        assert spec.kind is kind
        assert kind.spec is spec


def test_auto_submitted_policy() -> None:
    for kind in MailKind:
        spec = kind.spec
        if spec.group is MailGroup.REPLY:
            assert spec.auto_submitted == "auto-replied", kind
        elif spec.group in (MailGroup.NOTICE, MailGroup.INTERNAL):
            assert spec.auto_submitted == "auto-generated", kind
    human = {
        MailKind.CARE_REPLY, MailKind.INFO_REQUESTED, MailKind.SOLUTION_PROPOSED,
        MailKind.CASE_CLOSED, MailKind.CASE_REOPENED,
    }
    assert {k for k in MailKind if k.spec.auto_submitted is None} == human
    for kind in (MailKind.CASE_RECEIVED, MailKind.FOLLOWUP_1, MailKind.FOLLOWUP_3_CLOSED):
        assert kind.spec.auto_submitted == "auto-generated"


def test_case_thread_kinds_are_the_case_group() -> None:
    assert {k for k in MailKind if k.spec.group is MailGroup.CASE} == CASE_THREAD_KINDS
    assert MailKind.UNAUTHORIZED_SENDER not in CASE_THREAD_KINDS
    assert MailKind.ESCALATION_TO_MANAGEMENT.spec.group is MailGroup.INTERNAL
    assert {k for k in MailKind if k.spec.time_critical} == {
        MailKind.INCIDENT_ALERT, MailKind.INCIDENT_UPDATE,
    }


def test_every_kind_has_its_three_templates() -> None:
    for kind in MailKind:
        for name in ("subject.txt", "body.txt", "body.html"):
            assert (TEMPLATES / kind.value / name).is_file(), f"{kind}/{name}"


# --- rendering ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(MailKind))
def test_every_kind_renders(renderer: Renderer, kind: MailKind) -> None:
    out = renderer.render(kind, sample_context(kind))
    assert out.subject and "\n" not in out.subject and "\r" not in out.subject
    assert out.subject == out.subject.strip()
    assert len(out.text) > 200 and "\r" not in out.text
    assert out.html.lstrip().startswith("<!DOCTYPE html>")
    assert out.html.rstrip().endswith("</html>")
    assert BRANDING.care_name in out.text
    assert "None" not in out.text and "None" not in out.html


@pytest.mark.parametrize("kind", sorted(CASE_THREAD_KINDS))
def test_case_mail_carries_token_and_marker(renderer: Renderer, kind: MailKind) -> None:
    out = renderer.render(kind, sample_context(kind))
    assert out.subject.startswith(f"[{TOKEN}] ")
    assert CASE_NUMBER in out.subject
    assert out.text.startswith(REPLY_MARKER + "\n")
    assert f"Reference:   {TOKEN}" in out.text
    assert TOKEN in out.html and REPLY_MARKER in out.html
    assert out.html.index(REPLY_MARKER) < out.html.index("Dear ")


@pytest.mark.parametrize("kind", sorted(set(MailKind) - CASE_THREAD_KINDS))
def test_other_mail_has_no_token_nor_marker(renderer: Renderer, kind: MailKind) -> None:
    out = renderer.render(kind, sample_context(kind))
    for part in (out.subject, out.text, out.html):
        assert TOKEN not in part and REPLY_MARKER not in part


@pytest.mark.parametrize("kind", sorted(SENDER_ONLY_KINDS))
def test_sender_only_mail_reveals_nothing_about_a_case(renderer: Renderer, kind: MailKind) -> None:
    ctx = sample_context(kind)
    ctx["case"] = {"number": CASE_NUMBER, "subject": CASE_SUBJECT, "token": TOKEN, "url": "u"}
    out = renderer.render(kind, ctx)
    for part in (out.subject, out.text, out.html):
        assert CASE_NUMBER not in part and CASE_SUBJECT not in part and TOKEN not in part
    assert "bob@unknown.test" in out.text or kind is MailKind.NEW_CASE_REFUSED


def test_new_case_refused_points_to_portal_and_phones(renderer: Renderer) -> None:
    out = renderer.render(MailKind.NEW_CASE_REFUSED, sample_context(MailKind.NEW_CASE_REFUSED))
    for phone in BRANDING.phone_numbers:
        assert phone.number in out.text and phone.number in out.html
    assert BRANDING.portal_url in out.text and BRANDING.portal_url in out.html
    assert "cannot be opened by email" in out.text


def test_branding_comes_from_settings_only() -> None:
    other = BrandingSettings(
        vendor_name="Zeta Telecom", care_name="Zeta Care", portal_url="https://z.test"
    )
    out = Renderer(other).render(
        MailKind.MAINTENANCE_PLANNED, sample_context(MailKind.MAINTENANCE_PLANNED)
    )
    assert "Zeta Telecom" in out.text and "https://z.test" in out.html
    assert BRANDING.vendor_name not in out.text


def test_templates_hard_code_no_vendor_url_or_phone() -> None:
    for path in TEMPLATES.rglob("*"):
        if path.is_file() and path.suffix in (".txt", ".html"):
            text = re.sub(r"{{.*?}}|{%.*?%}", "", path.read_text(encoding="utf-8"), flags=re.S)
            assert not re.search(r"https?://|www\.|\+\d|genesys|pureengage", text, re.I), path


def test_html_escapes_data_and_text_keeps_it(renderer: Renderer) -> None:
    ctx = sample_context(MailKind.CARE_REPLY)
    ctx["contact"]["name"] = "<script>alert(1)</script> & Co"
    ctx["case"]["subject"] = "Fish & <chips>"
    ctx["message"] = 'Line one <b>bold</b> & "quoted"\nLine two'
    out = renderer.render(MailKind.CARE_REPLY, ctx)
    assert "<script>" not in out.html and "<b>" not in out.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in out.html
    assert "Fish &amp; &lt;chips&gt;" in out.html
    assert "Line one &lt;b&gt;bold&lt;/b&gt; &amp; &#34;quoted&#34;<br>\nLine two" in out.html
    assert "<script>alert(1)</script> & Co" in out.text
    assert 'Line one <b>bold</b> & "quoted"\nLine two' in out.text
    assert out.subject.endswith("Fish & <chips>")


def test_subject_is_one_line_whatever_the_data(renderer: Renderer) -> None:
    ctx = sample_context(MailKind.CARE_REPLY)
    ctx["case"]["subject"] = "Broken\r\nBcc: evil@example.test\x00\u2028 now\t "
    out = renderer.render(MailKind.CARE_REPLY, ctx)
    assert out.subject.endswith("Broken Bcc: evil@example.test now")


def test_missing_variable_is_a_template_error(renderer: Renderer) -> None:
    ctx = sample_context(MailKind.CARE_REPLY)
    del ctx["message"]
    with pytest.raises(TemplateError, match=r"care_reply.*care_reply/body\.(txt|html).*message"):
        renderer.render(MailKind.CARE_REPLY, ctx)
    notice_ctx = sample_context(MailKind.INCIDENT_ALERT)
    del notice_ctx["notice"]["title"]
    with pytest.raises(TemplateError, match="incident_alert"):
        renderer.render(MailKind.INCIDENT_ALERT, notice_ctx)


def test_unknown_time_zone_is_a_template_error(renderer: Renderer) -> None:
    ctx = sample_context(MailKind.MAINTENANCE_PLANNED)
    ctx["recipient_tz"] = "Mars/Olympus_Mons"
    with pytest.raises(TemplateError, match="maintenance_planned"):
        renderer.render(MailKind.MAINTENANCE_PLANNED, ctx)


def test_override_folder_wins(tmp_path: Path) -> None:
    (tmp_path / "care_reply").mkdir()
    (tmp_path / "care_reply" / "subject.txt").write_text(
        "[{{ case.token }}] Our answer on {{ case.number }}\n", encoding="utf-8"
    )
    (tmp_path / "_footer.txt").write_text("\n-- {{ branding.vendor_name }} ops\n", encoding="utf-8")
    renderer = Renderer(BRANDING, tmp_path)
    out = renderer.render(MailKind.CARE_REPLY, sample_context(MailKind.CARE_REPLY))
    assert out.subject == f"[{TOKEN}] Our answer on {CASE_NUMBER}"
    assert out.text.endswith(f"-- {BRANDING.vendor_name} ops\n")
    assert REPLY_MARKER in out.html  # body.html still the packaged one
    other = renderer.render(MailKind.CASE_RECEIVED, sample_context(MailKind.CASE_RECEIVED))
    assert other.subject.startswith(f"[{TOKEN}] Case {CASE_NUMBER} received")


def test_syntax_error_in_override_names_kind_and_file(tmp_path: Path) -> None:
    (tmp_path / "followup_1").mkdir()
    (tmp_path / "followup_1" / "body.txt").write_text("Hello {{ contact.name \n", encoding="utf-8")
    renderer = Renderer(BRANDING, tmp_path)
    with pytest.raises(TemplateError, match=r"followup_1.*followup_1/body\.txt"):
        renderer.render(MailKind.FOLLOWUP_1, sample_context(MailKind.FOLLOWUP_1))
    with pytest.raises(TemplateError, match="followup_1"):
        renderer.check(MailKind.FOLLOWUP_1)
    renderer.check(MailKind.FOLLOWUP_2)


def test_missing_template_is_a_template_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render_module, "PACKAGE_TEMPLATES", tmp_path)
    with pytest.raises(TemplateError, match=r"care_reply.*not found.*care_reply/subject\.txt"):
        Renderer(BRANDING).render(MailKind.CARE_REPLY, sample_context(MailKind.CARE_REPLY))


def test_notice_times_in_recipient_zone(renderer: Renderer) -> None:
    ctx = sample_context(MailKind.MAINTENANCE_PLANNED)
    ctx["recipient_tz"] = "America/New_York"
    out = renderer.render(MailKind.MAINTENANCE_PLANNED, ctx)
    assert "Start: Tue 1 Dec 2026, 08:00 EST (13:00 UTC)" in out.text
    assert "Tue 1 Dec 2026, 10:30 EST (15:30 UTC)" in out.html
    assert "MNT-2026-00042" in out.subject


def test_incident_update_promises_30_minute_updates(renderer: Renderer) -> None:
    ctx = sample_context(MailKind.INCIDENT_UPDATE)
    ctx["notice"]["status_text"] = None
    out = renderer.render(MailKind.INCIDENT_UPDATE, ctx)
    assert "every 30 minutes" in out.text and "#3" in out.subject
    assert "no new information since the last update" in " ".join(out.text.split())


# --- filters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "zone", "expected"),
    [
        (datetime(2026, 3, 28, 12, 0, tzinfo=UTC), "Europe/Berlin",
         "Sat 28 Mar 2026, 13:00 CET (12:00 UTC)"),
        (datetime(2026, 3, 30, 12, 0, tzinfo=UTC), "Europe/Berlin",
         "Mon 30 Mar 2026, 14:00 CEST (12:00 UTC)"),
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "Europe/Berlin",
         "Sun 25 Oct 2026, 02:30 CEST (00:30 UTC)"),
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "Europe/Berlin",
         "Sun 25 Oct 2026, 02:30 CET (01:30 UTC)"),
        (datetime(2026, 3, 7, 15, 0, tzinfo=UTC), "America/New_York",
         "Sat 7 Mar 2026, 10:00 EST (15:00 UTC)"),
        (datetime(2026, 3, 9, 15, 0, tzinfo=UTC), "America/New_York",
         "Mon 9 Mar 2026, 11:00 EDT (15:00 UTC)"),
        (datetime(2026, 12, 1, 23, 30, tzinfo=UTC), "Europe/Berlin",
         "Wed 2 Dec 2026, 00:30 CET (Tue 1 Dec 2026, 23:30 UTC)"),
        (datetime(2026, 12, 1, 13, 0, tzinfo=UTC), "UTC", "Tue 1 Dec 2026, 13:00 UTC"),
        (datetime(2026, 12, 1, 13, 0), "Europe/Berlin", "Tue 1 Dec 2026, 14:00 CET (13:00 UTC)"),
        (datetime(2026, 12, 1, 13, 0, tzinfo=UTC), "Asia/Dubai",
         "Tue 1 Dec 2026, 17:00 UTC+04 (13:00 UTC)"),
    ],
)
def test_localtime(when: datetime, zone: str, expected: str) -> None:
    assert localtime(when, zone) == expected


def test_wrap_label_one_line() -> None:
    long = "word " * 30 + "https://example.test/" + "x" * 90
    wrapped = wrap(long, 40)
    assert all(len(line) <= 40 or line.startswith("https://") for line in wrapped.split("\n"))
    assert wrap("a\n\nb") == "a\n\nb"
    assert label("awaiting_info") == "Awaiting info" and label(None) == ""
    assert one_line(" a\r\n\tb\x00c\x85d ") == "a b c d"


_LINE_BREAKING = ("Cc", "Zl", "Zp", "Cs")


def test_one_line_replaces_exactly_the_control_and_separator_characters() -> None:
    """The characters its regular expression replaces are those of these categories."""
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        replaced = render_module._NOT_IN_A_LINE.fullmatch(char) is not None
        assert replaced == (unicodedata.category(char) in _LINE_BREAKING), hex(code)


@given(st.text())
def test_one_line_is_one_header_safe_line(text: str) -> None:
    """Whatever the text: one line, no control character, whitespace collapsed, the rest kept."""
    out = one_line(text)
    expected = "".join(" " if unicodedata.category(c) in _LINE_BREAKING else c for c in text)
    assert out == " ".join(expected.split())
    assert all(unicodedata.category(c) not in _LINE_BREAKING for c in out)


@pytest.mark.parametrize("kind", sorted(k for k in MailKind if k.spec.group is not MailGroup.NOTICE))
def test_empty_names_read_well(renderer: Renderer, kind: MailKind) -> None:
    ctx = sample_context(kind)
    for who in ("contact", "sender"):
        if who in ctx:
            ctx[who]["name"] = ""
    out = renderer.render(kind, ctx)
    assert "Dear ," not in out.text and "Dear ," not in out.html
    if kind is MailKind.ESCALATION_TO_MANAGEMENT:
        assert "\n<alice@customer.test> of Customer Corp" in out.text
