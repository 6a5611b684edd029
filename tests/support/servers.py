"""Real servers started by the tests: SMTP (aiosmtpd), Redis, PostgreSQL, the app over HTTP.

Each listens on a free 127.0.0.1 port and is stopped at the end. Nothing leaves the machine.
"""

from __future__ import annotations

import email
import email.policy
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port}")


def wait_until(predicate, timeout: float = 10.0, every: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(every)


class SmtpServer:
    """A real SMTP server that keeps what it receives; can be stopped and started again.

    ``reject_with`` makes it answer RCPT TO with that code (e.g. 550) to test failures.
    """

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.messages: list[email.message.EmailMessage] = []
        self.reject_with: int | None = None
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject_with:
            return f"{self.reject_with} recipient rejected by test"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)
        return "250 Message accepted"

    def start(self) -> SmtpServer:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list:
        with self._lock:
            return [m for m in self.messages if address in str(m["To"])]




class RedisServer:
    def __init__(self, directory: Path, appendonly: bool = False):
        self.directory = directory
        self.port = free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make test`, which installs it")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "no",
                "--save", "", "--dir", str(self.directory)]
        args += ["--appendonly", "yes", "--appendfsync", "everysec"] if self.appendonly else ["--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process is not None:
            (self.process.kill if kill else self.process.terminate)()
            self.process.wait(timeout=10)
            self.process = None


def postgres_binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run `make test`, which installs it")
    return Path(found[-1]).parent


class PostgresServer:
    """A throwaway PostgreSQL cluster (initdb refuses root, so it runs as `postgres`)."""

    def __init__(self, durable: bool = False, settings: dict[str, str] | None = None):
        self.durable = durable  # fsync on (benchmarks); tests run with fsync=off for speed
        self.settings = settings or {}  # more server settings (-c name=value), e.g. for a benchmark's statistics
        # Not under pytest's tmp_path: its parents are private to root, and PostgreSQL runs as `postgres`.
        self.directory = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.port = free_port()
        self.bin = postgres_binaries()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, command: str) -> None:
        args = ["su", "postgres", "-c", command] if os.geteuid() == 0 else ["bash", "-c", command]
        done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"PostgreSQL command failed: {command}\n{done.stderr}")

    def start(self) -> PostgresServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
            os.chmod(self.directory, 0o700)
        d = self.directory
        self._run(f"{self.bin}/initdb -D {d}/data -A trust -U postgres >/dev/null")
        return self.resume()

    def pause(self) -> None:
        """Shut the server down (fast: every session is cut), keeping its data for ``resume``."""
        self._run(f"{self.bin}/pg_ctl -D {self.directory}/data -m fast -w stop >/dev/null")

    def resume(self) -> PostgresServer:
        d = self.directory
        self._run(f"{self.bin}/pg_ctl -D {d}/data -o '-k {d} -p {self.port} -c listen_addresses=127.0.0.1 "
                  f"-c fsync={'on' if self.durable else 'off'} -c max_connections=200"
                  + "".join(f" -c {name}={value}" for name, value in self.settings.items())
                  + f"' -l {d}/log -w start >/dev/null")
        return self

    def stop(self) -> None:
        self.pause()
        shutil.rmtree(self.directory, ignore_errors=True)


class LiveServer:
    """The Flask app served over real HTTP from a thread."""

    def __init__(self, app):
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)
