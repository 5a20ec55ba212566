"""The foundation's CLI on both databases: every command, its success and its errors."""

from __future__ import annotations

import pytest

from tests.cli_helpers import Gateway


@pytest.fixture
def gw(db_url: str) -> Gateway:
    return Gateway(db_url)


@pytest.fixture
def acme(gw: Gateway) -> Gateway:
    gw.ok("org", "add", "Acme Corp", "--tz", "Europe/Berlin", "--country", "DE",
          "--subdivision", "BY", "--agents", "120")
    gw.ok("contact", "add", "Ana@Acme.Example", "--org", "Acme Corp", "--name", "Ana Alves")
    gw.ok("contact", "add", "bob@acme.example", "--org", "acme corp", "--not-designated")
    return gw


def test_org_add_and_list(acme: Gateway) -> None:
    rows = acme.ok("org", "list", "--json").json()
    assert rows == [{
        "name": "Acme Corp", "timezone": "Europe/Berlin", "country": "DE", "subdivision": "BY",
        "agents": 120, "hours": "09:00-17:00", "created_at": rows[0]["created_at"],
    }]
    text = acme.ok("org", "list").out
    assert "Acme Corp" in text and "Europe/Berlin" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tz", "Mars/Olympus", "--country", "DE"], "unknown time zone 'Mars/Olympus'"),
        (["--tz", "UTC", "--country", "XX"], "unknown holiday country 'XX'"),
        (["--tz", "UTC", "--country", "DE", "--subdivision", "ZZ"], "unknown subdivision 'ZZ' of DE"),
    ],
)
def test_org_add_rejects_bad_values(gw: Gateway, args: list[str], message: str) -> None:
    result = gw("org", "add", "Globex", *args)
    assert result.code == 1
    assert result.err.strip() == f"error: {result.err.strip().removeprefix('error: ')}"
    assert message in result.err and len(result.err.strip().splitlines()) == 1
    assert gw.ok("org", "list", "--json").json() == []


def test_org_add_duplicate(acme: Gateway) -> None:
    result = acme("org", "add", "ACME CORP", "--tz", "UTC", "--country", "US")
    assert result.code == 1 and "exists already" in result.err


def test_contacts(acme: Gateway) -> None:
    rows = acme.ok("contact", "list", "--json").json()
    assert rows == [
        {"email": "ana@acme.example", "name": "Ana Alves", "organisation": "Acme Corp", "designated": True},
        {"email": "bob@acme.example", "name": None, "organisation": "Acme Corp", "designated": False},
    ]
    assert acme.ok("contact", "list", "--org", "Acme Corp", "--json").json() == rows
    assert "ana@acme.example" in acme.ok("contact", "list").out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ana@acme.example", "--org", "Acme Corp"], "exists already in Acme Corp"),
        (["carol@globex.example", "--org", "Globex"], "no organisation named 'Globex'"),
        (["not-an-address", "--org", "Acme Corp"], "not an email address"),
    ],
)
def test_contact_add_errors(acme: Gateway, args: list[str], message: str) -> None:
    result = acme("contact", "add", *args)
    assert result.code == 1 and message in result.err


def test_case_open_and_show(acme: Gateway) -> None:
    number = acme.ok("case", "open", "--org", "Acme Corp", "--contact", "ANA@acme.example",
                     "--subject", "Calls drop after 30 s", "--severity", "high").out.strip()
    assert number == "00000001"
    data = acme.ok("case", "show", number, "--json").json()
    assert data["number"] == "00000001"
    assert data["status"] == "new"
    assert data["severity"] == "high"
    assert (data["type"], data["sub_type"]) == ("support", "problem")
    assert data["contact"] == "ana@acme.example"
    assert [e["kind"] for e in data["timeline"]] == ["opened"]
    second = acme.ok("case", "open", "--org", "Acme Corp", "--contact", "ana@acme.example",
                     "--subject", "Reset password", "--severity", "low", "--type",
                     "service_request", "--sub-type", "password_reset").out.strip()
    assert second == "00000002"
    text = acme.ok("case", "show", "2").out
    assert "Case 00000002: Reset password" in text and "password_reset" in text


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--org", "Globex", "--contact", "ana@acme.example"], 1, "no organisation named 'Globex'"),
        (["--org", "Acme Corp", "--contact", "zed@acme.example"], 1, "no contact zed@acme.example"),
        (["--org", "Acme Corp", "--contact", "bob@acme.example"], 1, "not a designated contact"),
        (["--org", "Acme Corp", "--contact", "ana@acme.example", "--sub-type", "wish"], 1,
         "unknown sub-type of support 'wish'"),
    ],
)
def test_case_open_errors(acme: Gateway, args: list[str], code: int, message: str) -> None:
    result = acme("case", "open", *args, "--subject", "x", "--severity", "low")
    assert result.code == code and message in result.err


def test_case_open_rejects_unknown_severity(acme: Gateway) -> None:
    result = acme("case", "open", "--org", "Acme Corp", "--contact", "ana@acme.example",
                  "--subject", "x", "--severity", "urgent")
    assert result.code == 2 and "urgent" in result.err


def test_case_show_unknown(acme: Gateway) -> None:
    result = acme("case", "show", "4711")
    assert result.code == 1 and "no case 00004711" in result.err
    assert acme("case", "show", "abc").err.strip() == "error: not a case number: 'abc'"


def test_db_status(gw: Gateway) -> None:
    assert "up to date" in gw.ok("db", "status").out
