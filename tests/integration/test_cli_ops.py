"""The ops commands for cases and contacts (issue 25): ``case list``, ``contact update``,
``contact remove``, through the real CLI on both databases."""

from __future__ import annotations

import pytest

from testkit.world import SECRET
from tests.cli_helpers import Gateway


@pytest.fixture
def gw(db_url: str) -> Gateway:
    gw = Gateway(db_url, GATEWAY_REFERENCE__SECRET=SECRET, GATEWAY_MAIL__FROM_ADDRESS="care@vendor.example")
    gw.ok("org", "add", "Acme Corp", "--tz", "Europe/Berlin", "--country", "DE")
    gw.ok("org", "add", "Globex", "--tz", "America/New_York", "--country", "US")
    gw.ok("contact", "add", "ana@acme.example", "--org", "Acme Corp", "--name", "Ana Alves")
    gw.ok("contact", "add", "gil@globex.example", "--org", "Globex")
    gw.ok("contact", "add", "pat@shared.example", "--org", "Acme Corp")
    gw.ok("contact", "add", "pat@shared.example", "--org", "Globex")
    return gw


def open_case(gw: Gateway, org: str, contact: str, subject: str, severity: str = "low") -> str:
    return gw.ok("case", "open", "--org", org, "--contact", contact, "--subject", subject,
                 "--severity", severity).out.strip()


def contacts(gw: Gateway) -> list[tuple[str, str, bool]]:
    rows = gw.ok("contact", "list", "--json").json()
    return [(c["email"], c["organisation"], c["designated"]) for c in rows]


def test_case_list_filters(gw: Gateway) -> None:
    first = open_case(gw, "Acme Corp", "ana@acme.example", "Calls drop")
    second = open_case(gw, "Globex", "gil@globex.example", "No audio", "high")
    third = open_case(gw, "Acme Corp", "pat@shared.example", "Reports late")
    gw.ok("case", "close", first)

    every = gw.ok("case", "list", "--json").json()
    assert {c["number"] for c in every} == {first, second, third}
    assert [c["number"] for c in gw.ok("case", "list", "--org", "acme corp", "--json").json()] in (
        [first, third], [third, first])
    assert [c["number"] for c in gw.ok("case", "list", "--status", "closed", "--json").json()] == [first]
    assert [c["number"] for c in gw.ok("case", "list", "--contact", "GIL@globex.example", "--json").json()] \
        == [second]
    assert len(gw.ok("case", "list", "--limit", "1", "--json").json()) == 1
    table = gw.ok("case", "list", "--org", "Globex").out
    assert second in table and "No audio" in table and first not in table
    assert gw.ok("case", "list", "--org", "Globex", "--status", "closed").out.strip() == "(none)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "Initech"], "no organisation named 'Initech'"),
        (["--status", "lost"], "Invalid value for '--status'"),
        (["--contact", "not an address"], "not an email address"),
    ],
)
def test_case_list_bad_input(gw: Gateway, args: list[str], message: str) -> None:
    result = gw("case", "list", *args)
    assert result.code != 0 and message in result.err


def test_contact_update(gw: Gateway) -> None:
    gw.ok("contact", "update", "Ana@Acme.example", "--name", "Ana Alves-Lee", "--not-designated")
    row = next(c for c in gw.ok("contact", "list", "--json").json() if c["email"] == "ana@acme.example")
    assert row == {"email": "ana@acme.example", "name": "Ana Alves-Lee", "organisation": "Acme Corp",
                   "designated": False}
    out = gw.ok("contact", "update", "ana@acme.example", "--designated").out
    assert out.strip() == "designated contact ana@acme.example of Acme Corp updated"
    gw.ok("contact", "update", "pat@shared.example", "--org", "Globex", "--not-designated")
    assert ("pat@shared.example", "Globex", False) in contacts(gw)
    assert ("pat@shared.example", "Acme Corp", True) in contacts(gw)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ana@acme.example"], "nothing to change"),
        (["nobody@acme.example", "--name", "X"], "no contact nobody@acme.example"),
        (["pat@shared.example", "--name", "X"], "contact of several organisations (Acme Corp, Globex)"),
        (["ana@acme.example", "--org", "Globex", "--name", "X"], "no contact ana@acme.example in Globex"),
    ],
)
def test_contact_update_bad_input(gw: Gateway, args: list[str], message: str) -> None:
    before = gw.ok("contact", "list", "--json").json()
    result = gw("contact", "update", *args)
    assert result.code == 1 and message in result.err and len(result.err.strip().splitlines()) == 1
    assert gw.ok("contact", "list", "--json").json() == before


def test_contact_remove_keeps_history(gw: Gateway) -> None:
    number = open_case(gw, "Acme Corp", "ana@acme.example", "Calls drop")
    refused = gw("contact", "remove", "ana@acme.example")
    assert refused.code == 1 and "has 1 open case(s) in Acme Corp" in refused.err
    assert ("ana@acme.example", "Acme Corp", True) in contacts(gw)

    out = gw.ok("contact", "remove", "ana@acme.example", "--force").out
    assert "removed from Acme Corp (1 open case(s) keep it as their contact)" in out
    assert all(c[0] != "ana@acme.example" for c in contacts(gw))
    shown = gw.ok("case", "show", number, "--json").json()
    assert shown["contact"] == "ana@acme.example"  # the case's history keeps its contact
    reopen = gw("case", "open", "--org", "Acme Corp", "--contact", "ana@acme.example",
                "--subject", "Again", "--severity", "low")
    assert reopen.code == 1 and "no contact ana@acme.example in Acme Corp" in reopen.err

    gw.ok("contact", "add", "ana@acme.example", "--org", "Acme Corp")  # added anew: the same row
    assert ("ana@acme.example", "Acme Corp", True) in contacts(gw)
    assert gw.ok("case", "list", "--contact", "ana@acme.example", "--json").json()[0]["number"] == number


def test_contact_remove_without_open_cases(gw: Gateway) -> None:
    number = open_case(gw, "Globex", "gil@globex.example", "No audio")
    gw.ok("case", "close", number)
    assert gw.ok("contact", "remove", "gil@globex.example").out.strip() == \
        "contact gil@globex.example removed from Globex"
    again = gw("contact", "remove", "gil@globex.example")
    assert again.code == 1 and "no contact gil@globex.example" in again.err


def test_org_update(gw: Gateway) -> None:
    changed = gw.ok("org", "update", "acme corp", "--tz", "Europe/Vienna", "--country", "AT",
                    "--subdivision", "9", "--agents", "80", "--json").json()
    assert (changed["timezone"], changed["country"], changed["subdivision"], changed["agents"]) == (
        "Europe/Vienna", "AT", "9", 80)
    assert changed["hours"] == "09:00-17:00"  # what was not given stays
    moved = gw.ok("org", "update", "Acme Corp", "--country", "DE", "--json").json()
    assert (moved["country"], moved["subdivision"]) == ("DE", None)  # a new country: no old subdivision
    assert gw.ok("org", "update", "Acme Corp", "--subdivision", "BY", "--json").json()["subdivision"] == "BY"
    out = gw.ok("org", "update", "Acme Corp", "--hours", "08:00-18:00").out
    assert out.strip() == ("organisation Acme Corp updated: Europe/Vienna, holidays DE-BY, "
                           "business hours 08:00-18:00, 80 agents")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Acme Corp"], "nothing to change"),
        (["Acme Corp", "--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["Acme Corp", "--country", "XX"], "unknown holiday country 'XX'"),
        (["Acme Corp", "--subdivision", "ZZ"], "unknown subdivision 'ZZ' of DE"),
        (["Initech", "--agents", "5"], "no organisation named 'Initech'"),
    ],
)
def test_org_update_bad_input(gw: Gateway, args: list[str], message: str) -> None:
    before = gw.ok("org", "list", "--json").json()
    result = gw("org", "update", *args)
    assert result.code == 1 and message in result.err and len(result.err.strip().splitlines()) == 1
    assert gw.ok("org", "list", "--json").json() == before
