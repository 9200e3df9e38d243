"""A real IMAP server for the tests: Debian's Dovecot (``dovecot-imapd``), started from a
minimal configuration of its own on 127.0.0.1 and a free port, and stopped afterwards.

Plaintext login is allowed (loopback only), one user from a passwd file, mail in a
folder of the test's own.  Dovecot runs as the current user; as root (CI), its login
processes must not be root, so they run as Debian's ``dovenull`` and the mail as
``dovecot`` (the package creates both), with the mail in a folder those can reach.
Skipped, saying why, where Dovecot is missing or will not start.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.smtp_server import free_port

DOVECOT = Path("/usr/sbin/dovecot")
USER, PASSWORD = "bounces", "imap-test-password"
#: How long Dovecot may take to listen (a bound, not a timing assumption: it is polled).
START_WITHIN = 30.0


@dataclass
class Dovecot:
    port: int
    root: Path

    @property
    def url(self) -> str:
        return f"imap://{USER}:{PASSWORD}@127.0.0.1:{self.port}/INBOX?starttls=never&timeout=10"

    def client(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        conn.login(USER, PASSWORD)
        return conn

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        """Put a message in ``folder`` (as the mail system would)."""
        conn = self.client()
        try:
            typ, data = conn.append(folder, None, None, raw)
            assert typ == "OK", data
        finally:
            conn.logout()

    def messages(self, folder: str) -> list[bytes]:
        """Every message in ``folder`` ([] when it does not exist)."""
        conn = self.client()
        try:
            typ, _ = conn.select(f'"{folder}"', readonly=True)
            if typ != "OK":
                return []
            _, data = conn.uid("SEARCH", "ALL")
            found = []
            for uid in (data[0] or b"").split():
                _, fetched = conn.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                found.extend(p[1] for p in fetched if isinstance(p, tuple))
            return found
        finally:
            conn.logout()


def _config(root: Path, port: int, capability: str | None) -> str:
    if os.geteuid() == 0:
        login_user, internal_user = "dovenull", "dovecot"
        mail = pwd.getpwnam("dovecot")
        uid, gid = mail.pw_uid, mail.pw_gid
    else:
        login_user = internal_user = pwd.getpwuid(os.getuid()).pw_name
        uid, gid = os.getuid(), os.getgid()
    group = grp.getgrgid(pwd.getpwnam(internal_user).pw_gid).gr_name
    advertised = f"imap_capability = {capability}\n" if capability else ""
    return (
        advertised
        + f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:{root}/mail/%u
default_internal_user = {internal_user}
default_internal_group = {group}
default_login_user = {login_user}
first_valid_uid = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"""
    )


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        try:
            s.connect(("127.0.0.1", port))
            return s.recv(64).startswith(b"* OK")
        except OSError:
            return False


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    with running_dovecot(tmp_path) as server:
        yield server


@pytest.fixture
def dovecot_without_move(tmp_path: Path) -> Iterator[Dovecot]:
    """Dovecot advertising neither MOVE nor UIDPLUS, as some hosted servers do."""
    with running_dovecot(tmp_path, "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE") as server:
        yield server


@contextmanager
def running_dovecot(tmp_path: Path, capability: str | None = None) -> Iterator[Dovecot]:
    if not DOVECOT.exists():
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd); IMAP tests skipped")
    # As root the mail processes run as `dovecot`, which cannot enter pytest's private
    # temporary folders: the server's files go in a folder of its own.
    root = Path(tempfile.mkdtemp(prefix="digest-dovecot-")) if os.geteuid() == 0 else tmp_path
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir()
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    if os.geteuid() == 0:
        root.chmod(0o755)
        mail = pwd.getpwnam("dovecot")
        for sub in ("mail", "home"):
            os.chown(root / sub, mail.pw_uid, mail.pw_gid)
    port = free_port()
    (root / "dovecot.conf").write_text(_config(root, port, capability))
    process = subprocess.Popen(
        [str(DOVECOT), "-F", "-c", str(root / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + START_WITHIN
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                log = root / "dovecot.log"
                why = (process.stderr.read() if process.stderr else b"").decode(errors="replace")
                why += log.read_text(errors="replace") if log.exists() else ""
                pytest.skip(f"Dovecot did not start: {why.strip()[-500:] or 'no output'}")
            time.sleep(0.05)
        yield Dovecot(port, root)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
        if root != tmp_path:
            shutil.rmtree(root, ignore_errors=True)
