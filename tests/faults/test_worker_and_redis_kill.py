"""kill -9 of redis-server during deliveries (down a while, then back), of a department's
webhook server mid-delivery (then back on the same port), and of RQ workers during a burst.

The gateway runs as real processes (`gateway serve` with 2 gunicorn workers, `gateway worker`
x2, `gateway scheduler`) on PostgreSQL. Citizens submit bus-shelter reports through the JSON
API; the transit department gets each by e-mail (real SMTP) and by its signed webhook; each
citizen gets one acknowledgement e-mail. RQ workers are killed here during a burst; the
single held delivery is tests/test_outbox_rq.py::test_worker_killed_mid_delivery_delivers_exactly_once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from ..conftest import API_TOKEN
from ..support.servers import free_port, wait_for_port, wait_until
from ..support.standins import TRANSIT_URL, sample_config
from ..test_outbox_rq import SECRET
from .conftest import report
from .stack import Stack, settle, sink_deliveries, tally

ROOT = Path(__file__).resolve().parent.parent.parent
RECOVERY_LIMIT = 90.0


def submit(url: str, i: int) -> str:
    body = {"description": f"L'abribus de l'arrêt {5000 + i} a une vitre cassée, il y a du verre partout",
            "citizen": {"email": f"usager{i}@example.org", "name": f"Usager {i}"}}
    for _ in range(50):
        try:
            response = httpx.post(f"{url}/api/v1/requests", json=body, timeout=20,
                                  headers={"Authorization": f"Bearer {API_TOKEN}", "Idempotency-Key": f"storm-{i}"})
            if response.status_code == 201:
                return response.json()["code"]
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"submission {i} never accepted")


def acknowledgements(smtp_server, count: int) -> Counter:
    return Counter(str(m["Message-ID"]) for i in range(count) for m in smtp_server.to(f"usager{i}@example.org"))


def test_redis_killed_during_deliveries_and_back_later_loses_and_doubles_nothing(
        stack, redis_server, receiver, smtp_server):
    stack.serve(workers=2)
    stack.start()
    stack.start()
    stack.scheduler()
    codes = [submit(stack.url, i) for i in range(10)]
    wait_until(lambda: len(receiver.accepted) >= 3, timeout=60)

    redis_server.stop(kill=True)  # SIGKILL: its queue is gone (no persistence)
    killed_at = time.monotonic()
    codes += [submit(stack.url, i) for i in range(10, 25)]  # accepted while Redis is down
    time.sleep(max(0.0, 5.0 - (time.monotonic() - killed_at)))
    redis_server.start()  # same port, empty
    back_at = time.monotonic()

    def all_sent():
        rows = sink_deliveries(stack.database_url)
        return len(rows) == 2 * len(codes) and all(d.state == "delivered" for d in rows)

    wait_until(all_sent, timeout=RECOVERY_LIMIT, every=0.5)
    recovered = time.monotonic() - back_at
    figures = settle(stack, receiver, smtp_server, expected_requests=len(codes))
    acks = wait_until(lambda: (a := acknowledgements(smtp_server, len(codes))) and sum(a.values()) >= len(codes) and a,
                      timeout=RECOVERY_LIMIT)

    assert len(set(codes)) == len(codes) == tally(stack.database_url)["requests"]
    assert figures["webhook_lost"] == figures["webhook_acted_twice"] == figures["email_lost"] == 0
    assert figures["webhook_acted"] == figures["email_expected"] == len(codes)
    assert len(acks) == len(codes) and set(acks.values()) == {1}  # one acknowledgement each
    assert recovered < RECOVERY_LIMIT
    assert all(p.poll() is None for p in stack.processes)  # the workers waited for Redis, none exited
    report("redis_kill", {"sent": len(codes), "answered_201": len(codes), "submitted_while_redis_down": 15,
                          "redis_down_seconds": round(back_at - killed_at, 1), "workers_exited": 0,
                          "requests": len(codes), "acknowledgements_sent": sum(acks.values()), **figures,
                          "all_delivered_seconds_after_redis_back": round(recovered, 1)})


def start_department(port: int, journal: Path, log: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "tests.faults.department_server", str(port), SECRET, str(journal)],
                               cwd=ROOT, stdout=open(log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
    wait_for_port(port)
    return process


def journal_lines(journal: Path, kind: str) -> list[str]:
    return [line.split(" ", 1)[1].strip() for line in journal.read_text().splitlines() if line.startswith(kind + " ")]


class Department:
    """The journaled department receiver as a process (tests/faults/department_server.py)."""

    def __init__(self, directory: Path):
        self.port, self.journal, self.log = free_port(), directory / "department.journal", directory / "department.log"
        self.journal.touch()
        self.process: subprocess.Popen | None = None

    def start(self) -> Department:
        self.process = start_department(self.port, self.journal, self.log)
        return self

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def lines(self, kind: str) -> list[str]:
        return journal_lines(self.journal, kind)


@pytest.fixture
def department(tmp_path):
    running = Department(tmp_path).start()
    yield running
    running.stop()


@pytest.fixture
def department_stack(fault_settings, tmp_path, department):
    """The gateway's processes, the transit department's webhook pointing at ``department``."""
    folder = sample_config(tmp_path / "config-journaled", {TRANSIT_URL: f"http://127.0.0.1:{department.port}/311/requests"})
    running = Stack({**fault_settings, "GATEWAY_CONFIG_DIR": str(folder)}, tmp_path)
    running.serve(workers=2)
    running.start()
    running.start()
    running.scheduler()
    yield running
    running.stop()


def all_sent(stack: Stack, count: int):
    rows = sink_deliveries(stack.database_url)
    return len(rows) == 2 * count and all(d.state == "delivered" for d in rows) and rows


def exactly_once(department: Department, rows, smtp_server, count: int, killed_senders: int = 0) -> dict:
    """Each key acted upon once by the department, one e-mail and one acknowledgement each.

    SMTP has no idempotency key: a worker killed after the mail server accepted a message but
    before the outbox recorded it sends that message again, with the same Message-ID (mail
    clients show it once). So a resend is allowed only when workers were killed, at most one
    per killed worker (a worker holds one delivery at a time), and never with a new Message-ID.
    """
    keys = {d.idempotency_key for d in rows if d.target == "webhook"}
    acted, seen = Counter(department.lines("acted")), Counter(department.lines("seen"))
    mails = Counter(str(m["Message-ID"]) for m in smtp_server.to("transport@bellerive.example.org"))
    acks = wait_until(lambda: (a := acknowledgements(smtp_server, count)) and sum(a.values()) >= count and a,
                      timeout=RECOVERY_LIMIT)
    assert set(acted) == keys and set(acted.values()) == {1}  # each request acted upon exactly once
    assert len(acks) == count and len(mails) == count  # one Message-ID per citizen, per request
    resent = sum(acks.values()) - count + sum(mails.values()) - count
    assert resent <= killed_senders, (acks, mails)
    return {"sent": count, "answered_201": count, "requests": count, "webhook_expected": len(keys),
            "webhook_acted": sum(acted.values()), "webhook_acted_twice": 0,
            "webhook_resent_same_key": sum(n - 1 for n in seen.values() if n > 1),
            "webhook_deliveries_retried": sum(1 for d in rows if d.target == "webhook" and d.attempts > 1),
            "email_received": sum(mails.values()), "acknowledgements_sent": sum(acks.values()),
            "email_resent_same_id": resent, "lost": 0, "duplicates": 0}


def test_department_webhook_server_killed_mid_delivery_and_back(department_stack, department, smtp_server):
    stack = department_stack
    codes = [submit(stack.url, i) for i in range(20)]
    wait_until(lambda: len(department.lines("acted")) >= 5, timeout=60, every=0.02)
    department.kill()
    killed_at = time.monotonic()
    time.sleep(4)
    department.start()
    back_at = time.monotonic()

    rows = wait_until(lambda: all_sent(stack, len(codes)), timeout=RECOVERY_LIMIT, every=0.5)
    recovered = time.monotonic() - back_at

    figures = exactly_once(department, rows, smtp_server, len(codes))
    assert figures["webhook_deliveries_retried"]  # the kill did interrupt deliveries
    report("department_kill", {**figures, "department_down_seconds": round(back_at - killed_at, 1),
                               "all_delivered_seconds_after_department_back": round(recovered, 1)})


def test_rq_workers_killed_during_a_burst_of_deliveries(department_stack, department, smtp_server):
    """Both `gateway worker` processes get SIGKILL while they hold deliveries (the department
    holds each answer 0.2 s); a new worker starts (as a supervisor would) 2 s later."""
    stack = department_stack
    codes = [submit(stack.url, i) for i in range(20)]
    killed = []
    for threshold in (4, 10):
        wait_until(lambda t=threshold: len(department.lines("seen")) >= t, timeout=60, every=0.01)
        for process in [p for p in stack.processes if p.args[1] == "worker" and p.poll() is None]:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            killed.append(process.pid)
        killed_at = time.monotonic()
        time.sleep(2)
        stack.start()

    rows = wait_until(lambda: all_sent(stack, len(codes)), timeout=RECOVERY_LIMIT, every=0.5)
    recovered = time.monotonic() - killed_at

    figures = exactly_once(department, rows, smtp_server, len(codes), killed_senders=len(killed))
    report("rq_worker_kill", {**figures, "workers_killed": len(killed),
                              "all_delivered_seconds_after_last_kill": round(recovered, 1)})
