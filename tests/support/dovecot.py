"""A real Dovecot IMAP server on loopback for the e-mail tests (recipe: RECIPES.md).

Standalone configuration under a temporary directory (the system's /etc/dovecot is left
alone), plaintext login on 127.0.0.1 only, maildir storage. Messages are put in with IMAP
APPEND, as a mail delivery agent would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from imapclient import IMAPClient

from .servers import free_port, wait_for_port

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{d}/mail/%n
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {d}/users
}}
userdb {{
  driver = static
  args = home={d}/mail/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


class DovecotServer:
    """Dovecot with one or more users; ``client(user)`` gives a logged-in IMAPClient.

    With ``tls=True`` it has a self-signed certificate for 127.0.0.1 (``ca_file``), offers
    STARTTLS on ``port`` and implicit TLS on ``tls_port``."""

    def __init__(self, directory: Path, users: dict[str, str] | None = None, tls: bool = False):
        self.directory = Path(directory)
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.users = users or {"requetes": "secret-imap-password"}
        self.process: subprocess.Popen | None = None

    @property
    def ca_file(self) -> Path:
        return self.directory / "cert.pem"

    def _ssl_settings(self) -> str:
        if not self.tls_port:
            return "ssl = no"
        if not self.ca_file.exists():
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-keyout", str(self.directory / "key.pem"), "-out", str(self.ca_file),
                            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                           check=True, capture_output=True)
        return (f"ssl = yes\nssl_cert = <{self.ca_file}\nssl_key = <{self.directory / 'key.pem'}\n"
                "ssl_min_protocol = TLSv1.2")

    def start(self) -> DovecotServer:
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not os.path.exists(binary):
            raise RuntimeError("dovecot is not installed: run `make test`, which installs dovecot-imapd")
        d = self.directory
        closed = [p for p in d.resolve().parents if p.exists() and not os.stat(p).st_mode & 0o001]
        if closed:  # Dovecot's auth (user dovecot) and mail (nobody) processes must get through
            raise RuntimeError(f"{closed[0]} is not traversable by other users: put the server elsewhere")
        for sub in ("run", "state", "mail"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o755)
        if os.geteuid() == 0:
            shutil.chown(d / "mail", "nobody", "nogroup")
        (d / "users").write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
        (d / "dovecot.conf").write_text(CONFIG.format(d=d, port=self.port, tls_port=self.tls_port,
                                                      ssl=self._ssl_settings()))
        self.process = subprocess.Popen([binary, "-F", "-c", str(d / "dovecot.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_port(self.port, timeout=10)
        except TimeoutError as exc:
            raise RuntimeError(f"dovecot did not start: {self.log()}") from exc
        return self

    def drop_connections(self) -> None:
        """Kill this server's IMAP session processes: its clients see the connection drop.
        (Stopping the master alone leaves established sessions running.)"""
        if self.process is None:
            return
        children = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        for pid in map(int, children.split()):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "imap":
                    os.kill(pid, signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                continue

    def stop(self) -> None:
        if self.process is not None:
            self.drop_connections()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
            self.process = None

    def log(self) -> str:
        path = self.directory / "dovecot.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def client(self, user: str = "requetes") -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.login(user, self.users[user])
        return client

    def deliver(self, raw: bytes, folder: str = "INBOX", user: str = "requetes") -> None:
        """Put a message in a folder (created if needed), as new mail."""
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw)

    def flags(self, folder: str = "INBOX", user: str = "requetes") -> dict[int, tuple]:
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            return {uid: data[b"FLAGS"] for uid, data in client.fetch(uids, ["FLAGS"]).items()} if uids else {}

    def count(self, folder: str = "INBOX", user: str = "requetes") -> int:
        with self.client(user) as client:
            if not client.folder_exists(folder):
                return 0
            return client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"]

    def wait_ready(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client().logout()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
