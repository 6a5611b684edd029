"""The gateway as it runs in production, as real processes the fault tests can kill.

``gateway serve`` (gunicorn master + workers), ``gateway worker`` (RQ, via the Workers pool of
tests/test_outbox_rq.py) and ``gateway scheduler``, all on loopback, sharing one PostgreSQL
database and one redis-server. Every process is started here and stopped in ``stop``: killed
only by its own pid, never by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from gateway.models import Delivery, InboundMessage, Request

from ..support.servers import free_port, wait_until
from ..test_outbox_rq import GATEWAY, Workers


class Stack(Workers):
    def __init__(self, settings: dict, log_dir: Path):
        super().__init__(settings, log_dir)
        self.database_url = str(settings["DATABASE_URL"])
        self.web: subprocess.Popen | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen([GATEWAY, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def serve(self, workers: int = 2) -> Stack:
        self.web = self._spawn("web", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                               "--workers", str(workers))
        wait_until(lambda: self._healthy() and len(self.web_workers()) == workers, timeout=60, every=0.2)
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def scheduler(self) -> subprocess.Popen:
        return self._spawn("scheduler", "scheduler")

    def web_workers(self) -> list[int]:
        """The gunicorn workers: children of the master, read from /proc."""
        path = Path(f"/proc/{self.web.pid}/task/{self.web.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except FileNotFoundError:
            return []

    def kill_web_worker(self) -> int:
        pid = self.web_workers()[0]
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self) -> None:
        self.stop_all()  # the master stops its own workers on SIGTERM


def sink_deliveries(database_url: str, purpose: str | None = "sink") -> list[Delivery]:
    """The outbox rows (all of them with ``purpose=None``)."""
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            query = select(Delivery) if purpose is None else select(Delivery).where(Delivery.purpose == purpose)
            rows = list(session.scalars(query))
            session.expunge_all()
            return rows
    finally:
        engine.dispose()


def tally(database_url: str) -> dict:
    """What the database holds: inbounds per (channel, provider id), requests, deliveries by state."""
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            inbound = Counter((i.channel, i.provider_id) for i in session.scalars(select(InboundMessage)))
            requests = list(session.scalars(select(Request)))
            deliveries = list(session.scalars(select(Delivery)))
            return {"inbound": inbound, "requests": len(requests),
                    "request_codes": {r.code for r in requests},
                    "deliveries": Counter((d.purpose, d.target, d.state) for d in deliveries)}
    finally:
        engine.dispose()


def settle(stack: Stack, receiver, smtp_server, expected_requests: int, timeout: float = 90.0) -> dict:
    """Wait until every request's sink deliveries are done, then count what each sink saw.

    Exactly once per sink: the department's webhook acted on each idempotency key once
    (``accepted``), and a resend of the same key (a re-execution in flight at a crash) is
    counted in ``resent``; e-mails are counted by Message-ID, which is derived from the key.
    """
    def done():
        rows = sink_deliveries(stack.database_url)
        counted = tally(stack.database_url)["requests"]
        return counted == expected_requests and rows and all(d.state == "delivered" for d in rows) and rows

    rows = wait_until(done, timeout=timeout, every=0.5)
    webhook_keys = [d.idempotency_key for d in rows if d.target == "webhook"]
    mail_ids = Counter(str(m["Message-ID"]) for m in smtp_server.messages)
    seen = Counter(r.headers.get("idempotency-key") for r in receiver.to("/311/requests"))
    mail_deliveries = [d for d in rows if d.target == "email_smtp"]
    domain = str(smtp_server.messages[0]["Message-ID"]).rsplit("@", 1)[-1].rstrip(">") if smtp_server.messages else ""
    mail_keys = [message_id(d.idempotency_key, domain) for d in mail_deliveries]
    return {
        "webhook_expected": len(webhook_keys),
        "webhook_acted": len(receiver.accepted),
        "webhook_acted_twice": len(receiver.accepted) - len(set(receiver.accepted)),
        "webhook_lost": len(set(webhook_keys) - set(receiver.accepted)),
        "webhook_unexpected": len(set(receiver.accepted) - set(webhook_keys)),
        "webhook_resent_same_key": sum(n - 1 for n in seen.values() if n > 1),
        "email_expected": len(mail_keys),
        "email_received": sum(mail_ids[k] for k in mail_keys),
        "email_lost": sum(1 for k in mail_keys if mail_ids[k] == 0),
        "email_resent_same_id": sum(mail_ids[k] - 1 for k in mail_keys if mail_ids[k] > 1),
    }


def message_id(key: str, domain: str) -> str:
    """The Message-ID adapters/smtp.py derives from an idempotency key."""
    safe = "".join(c if c.isalnum() or c in "-._" else "." for c in key)
    return f"<{safe}@{domain}>"
