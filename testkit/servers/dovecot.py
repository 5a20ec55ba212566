"""A private Dovecot 2.3 IMAP server on a loopback port, for the integration tests and the benchmarks.

Nothing is read from ``/etc/dovecot``: the server gets its own config, passwd-file, mail
folder, base_dir and log in one folder. It runs in the foreground (``dovecot -F``) in its
own process group, so :meth:`DovecotServer.stop` kills it and all its children at once and
the port is free again immediately; :meth:`DovecotServer.restart` comes back on the same
port (for reconnect tests) and keeps the mail.

Works as root (mail processes run as ``nobody``; the folder is made world-readable because
the auth process runs as the ``dovecot`` user) and as an ordinary user (every service runs
as that user, no chroot).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
import zlib
from pathlib import Path

DOVECOT_BINARY = "dovecot"
_USER_NAME = re.compile(r"[A-Za-z0-9_.-]+")

_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
instance_name = gateway-test-{instance}
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
ssl = {ssl}
{ssl_files}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 0
mail_location = maildir:~/Maildir
first_valid_uid = 0
mail_privileged_group =
{users}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/users/%u
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={base}/mail/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
{imaps}{chroot}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
{chroot}
}}
"""

_IMAPS = """\
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
"""

_NOT_ROOT_USERS = """\
default_internal_user = {user}
default_login_user = {user}
default_internal_group = {group}
"""


def free_port() -> int:
    """A loopback port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DovecotServer:
    """One Dovecot instance in ``folder``; ``port`` (and ``tls_port`` if ``tls``) on 127.0.0.1.

    ``tls=True`` also serves IMAPS with a self-signed certificate whose PEM is ``ca_file``
    (the certificate is its own CA, issued for ``127.0.0.1`` and ``localhost``).
    """

    def __init__(self, folder: Path, *, tls: bool = False, startup_timeout: float = 10.0) -> None:
        self.folder = Path(folder)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.tls = tls
        self.tls_port: int | None = free_port() if tls else None
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._root = os.geteuid() == 0

    # -- paths ---------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.folder / "dovecot.conf"

    def passwd_path(self, user: str) -> Path:
        """The passwd-file of ``user``: one per user, see :meth:`add_user`."""
        return self.folder / "users" / user

    @property
    def log_path(self) -> Path:
        return self.folder / "dovecot.log"

    @property
    def ca_file(self) -> Path:
        return self.folder / "cert.pem"

    def maildir(self, user: str) -> Path:
        """The Maildir root of ``user`` (INBOX's ``new/``, ``cur/``, ``tmp/`` live here)."""
        return self.folder / "mail" / user / "Maildir"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Write the config (first time) and start Dovecot; returns once it greets."""
        if self._process is not None:
            raise RuntimeError("dovecot is already running")
        if not self.config_path.exists():
            self._prepare()
        stdio = (self.folder / "stdio.log").open("ab")
        try:
            self._process = subprocess.Popen(
                [self.binary(), "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=stdio,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            stdio.close()
        try:
            self._wait_for_greeting()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Kill the whole process group (master, login, auth, imap) and reap the master."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def restart(self) -> None:
        """Stop, then start again on the same port(s) with the same users and mail."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @staticmethod
    def binary() -> str:
        """Path of the dovecot binary; raises FileNotFoundError when it is not installed."""
        found = shutil.which(DOVECOT_BINARY) or shutil.which(DOVECOT_BINARY, path="/usr/sbin:/sbin")
        if found is None:
            raise FileNotFoundError("dovecot binary not found (install dovecot-imapd)")
        return found

    # -- users ---------------------------------------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """Add a login, usable at once without a restart.

        Each user has a passwd-file of its own (``users/%u``): Dovecot checks a passwd-file
        for changes at most once a second, so a user appended to a shared file right after
        another login would be "unknown" for up to a second; a new file is read on first use.
        """
        if not _USER_NAME.fullmatch(name) or any(c in password for c in ":\r\n"):
            raise ValueError("user names are [A-Za-z0-9_.-]+; passwords may not contain ':' or line breaks")
        path = self.passwd_path(name)
        path.write_text(f"{name}:{{PLAIN}}{password}:::::\n", encoding="utf-8")
        path.chmod(0o644)

    # -- internals -----------------------------------------------------------------------

    def _prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for sub in ("run", "state", "mail", "users"):
            (self.folder / sub).mkdir(exist_ok=True)
        if self._root:
            self._open_for_dovecot_user()
        if self.tls:
            self._make_certificate()
        self.config_path.write_text(self._render_config(), encoding="utf-8")

    def _open_for_dovecot_user(self) -> None:
        """As root, the auth process (user ``dovecot``) must reach the passwd-file, and mail
        processes run as ``nobody``, which must own the mail folder."""
        nobody = pwd.getpwnam("nobody")
        path = self.folder
        while True:
            mode = path.stat().st_mode & 0o777
            if mode & 0o005 != 0o005:
                path.chmod(mode | 0o755)
            if path.parent == path or path.parent == Path(path.anchor):
                break
            if path.parent.stat().st_mode & 0o001:
                break
            path = path.parent
        (self.folder / "users").chmod(0o755)
        os.chown(self.folder / "mail", nobody.pw_uid, nobody.pw_gid)

    def _render_config(self) -> str:
        if self._root:
            nobody = pwd.getpwnam("nobody")
            uid, gid, users, chroot = nobody.pw_uid, nobody.pw_gid, "", ""
        else:
            me = pwd.getpwuid(os.getuid())
            group = _group_name(os.getgid())
            uid, gid = os.getuid(), os.getgid()
            users = _NOT_ROOT_USERS.format(user=me.pw_name, group=group)
            chroot = "  chroot ="
        ssl_files = ""
        if self.tls:
            ssl_files = f"ssl_cert = <{self.ca_file}\nssl_key = <{self.folder / 'key.pem'}"
        return _CONFIG.format(
            base=self.folder,
            instance=zlib.crc32(str(self.folder).encode()),
            ssl="yes" if self.tls else "no",
            ssl_files=ssl_files,
            users=users,
            uid=uid,
            gid=gid,
            port=self.port,
            imaps=_IMAPS.format(port=self.tls_port) if self.tls else "",
            chroot=chroot,
        )

    def _make_certificate(self) -> None:
        key = self.folder / "key.pem"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-keyout",
                str(key),
                "-out",
                str(self.ca_file),
            ],
            check=True,
            capture_output=True,
        )
        key.chmod(0o644)  # read by the login process, which is not root

    def _wait_for_greeting(self) -> None:
        """Connect until the server says ``* OK``; fail early if the master died."""
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited at start-up; see {self.log_path}\n{self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                    greeting = sock.recv(1024)
                if greeting.startswith(b"* OK"):
                    return
                last_error = RuntimeError(f"unexpected greeting {greeting!r}")
            except OSError as error:  # not listening yet: retry the connect
                last_error = error
            time.sleep(0.01)
        raise TimeoutError(f"dovecot did not greet within {self.startup_timeout}s: {last_error}")

    def _log_tail(self) -> str:
        text = ""
        for path in (self.log_path, self.folder / "stdio.log"):
            if path.exists():
                text += path.read_text(errors="replace")[-2000:]
        return text


def _group_name(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name
