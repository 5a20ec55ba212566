"""The Dovecot harness itself: other IMAP tests rely on these promises."""

from __future__ import annotations

import imaplib
import ssl

import pytest

from testkit.servers.dovecot import DovecotServer
from tests.plugins.dovecot import ImapAccount

RAW = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hello\r\n\r\nbody line\r\n"


def test_login_works(imap_account: ImapAccount) -> None:
    client = imap_account.connect()
    try:
        assert client.state == "AUTH"
    finally:
        client.logout()


def test_bad_password_is_refused(imap_account: ImapAccount) -> None:
    client = imaplib.IMAP4(imap_account.host, imap_account.port, timeout=10)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            client.login(imap_account.username, "wrong")
    finally:
        client.shutdown()


def test_append_then_fetch_returns_the_same_bytes(imap_account: ImapAccount) -> None:
    raws = [RAW, RAW.replace(b"hello", b"second"), b"Subject: (unbalanced\r\n\r\n) * 1 FETCH\r\n"]
    uids = imap_account.append_many(raws)
    assert uids == sorted(uids) and len(set(uids)) == 3
    assert imap_account.messages() == raws
    assert imap_account.messages_by_uid() == list(zip(uids, raws, strict=True))


def test_new_account_is_empty_and_has_inbox(imap_account: ImapAccount) -> None:
    assert imap_account.messages() == []
    assert imap_account.folders() == ["INBOX"]


def test_two_accounts_are_isolated(dovecot: DovecotServer, imap_account: ImapAccount) -> None:
    other = ImapAccount(dovecot, imap_account.username + "x", "other-secret")
    dovecot.add_user(other.username, other.password)
    imap_account.append(RAW)
    assert other.messages() == []
    assert imap_account.messages() == [RAW]


def test_mailbox_settings_point_at_the_account(imap_account: ImapAccount) -> None:
    settings = imap_account.mailbox_settings(folder="Other")
    assert (settings.host, settings.port, settings.tls) == ("127.0.0.1", imap_account.port, "none")
    assert settings.username == imap_account.username
    assert settings.password.get_secret_value() == imap_account.password
    assert settings.folder == "Other"


def test_restart_keeps_the_port_and_the_mail(dovecot: DovecotServer, imap_account: ImapAccount) -> None:
    imap_account.append(RAW)
    port = dovecot.port
    dovecot.restart()
    assert dovecot.port == port
    assert imap_account.messages() == [RAW]


def test_tls_listener_serves_a_certificate_for_the_ca_file(imap_account: ImapAccount) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):  # no public CA vouches for it: the file must
        imaplib.IMAP4_SSL(imap_account.host, imap_account.tls_port, ssl_context=ssl.create_default_context(),
                          timeout=10)
    context = ssl.create_default_context(cafile=imap_account.ca_file)  # checks the chain and the host
    client = imaplib.IMAP4_SSL(imap_account.host, imap_account.tls_port, ssl_context=context, timeout=10)
    try:
        assert isinstance(client.sock, ssl.SSLSocket)
        certificate = client.sock.getpeercert()
        assert ("IP Address", "127.0.0.1") in certificate["subjectAltName"]
        assert client.login(imap_account.username, imap_account.password)[0] == "OK"
        assert client.state == "AUTH"
    finally:
        client.logout()
