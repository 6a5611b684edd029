"""The outbox with real Redis and real RQ workers (`gateway worker` processes).

Retries with backoff, Retry-After, dead letters, and a worker killed (SIGKILL) while the
department's server holds its delivery: the sweeper hands the delivery out again under the
same idempotency key, and the department acts on it exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from gateway import jobs
from gateway.models import Delivery, utcnow

from .support.servers import wait_until
from .support.standins import TRANSIT_URL, Answer, DepartmentWebhook, sample_config
from .test_flow_end_to_end import load

SECRET = "transport-shared-secret"
GATEWAY = str(Path(sys.executable).with_name("gateway"))


@pytest.fixture
def receiver():
    server = DepartmentWebhook(SECRET).start()
    yield server
    server.stop()


@pytest.fixture
def worker_settings(settings, tmp_path, receiver, redis_server) -> dict:
    folder = sample_config(tmp_path / "config", {TRANSIT_URL: f"{receiver.url}/311/requests"})
    return {**settings, "GATEWAY_CONFIG_DIR": str(folder), "REDIS_URL": redis_server.url,
            "TRANSPORT_WEBHOOK_SECRET": SECRET, "GATEWAY_LEASE_SECONDS": 2.0, "GATEWAY_BACKOFF_SECONDS": 0.3,
            "GATEWAY_HTTP_TIMEOUT_SECONDS": 30}


class Workers:
    """`gateway worker` subprocesses; each one is killed or stopped by the test that started it."""

    def __init__(self, settings: dict, log_dir: Path):
        self.env = {**os.environ, **{k: str(v) for k, v in settings.items() if v is not None}}
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        log = open(self.log_dir / f"worker{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen([GATEWAY, "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture
def workers(worker_settings, tmp_path):
    pool = Workers(worker_settings, tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture
def app(make_app, worker_settings):
    return make_app(**worker_settings)


def webhook_delivery(runtime) -> Delivery | None:
    with runtime.db.session() as session:
        return session.query(Delivery).filter(Delivery.target == "webhook").one_or_none()


def sweep_until(runtime, predicate, timeout: float = 30.0):
    """The scheduler's job, done by the test: re-enqueue due work until ``predicate`` holds."""
    def check():
        jobs.sweep(runtime)
        return predicate()

    return wait_until(check, timeout=timeout, every=0.3)


def submit(client, auth) -> str:
    return client.post("/api/v1/requests", json=load("request__bus_shelter_en"), headers=auth).get_json()["code"]


def test_worker_killed_mid_delivery_delivers_exactly_once(app, client, auth, receiver, workers, smtp_server):
    runtime = app.extensions["runtime"]
    receiver.hold = threading.Event()
    first = workers.start()
    code = submit(client, auth)

    assert receiver.holding.wait(30), "the worker never reached the department"
    assert webhook_delivery(runtime).state == "sending"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    receiver.release()
    workers.start()

    delivered = sweep_until(runtime, lambda: (d := webhook_delivery(runtime)).state == "delivered" and d)

    key = f"{code}:route1:1:webhook"
    assert receiver.accepted == [key]  # acted upon once
    seen = [r.headers["idempotency-key"] for r in receiver.to("/311/requests")]
    assert seen == [key, key]  # the one in flight at the crash, and the one after
    assert delivered.attempts == 2 and delivered.external_id == "WO-1"
    wait_until(lambda: smtp_server.to("transport@bellerive.example.org") and smtp_server.to("ann.lee@example.org"))
    assert len(smtp_server.to("transport@bellerive.example.org")) == 1
    assert len(smtp_server.to("ann.lee@example.org")) == 1  # one acknowledgement


def test_worker_killed_mid_batch_loses_and_doubles_nothing(app, client, auth, receiver, workers, smtp_server):
    """Four requests wait in the outbox; the worker claims all their deliveries in one batch and
    is killed while the department holds the first webhook call: the batch's unsent deliveries
    come back after the lease, the one in flight is resent under its key, nothing else twice."""
    runtime = app.extensions["runtime"]
    codes = [client.post("/api/v1/requests", headers=auth, json={
        "description": f"L'abribus de l'arrêt {5000 + i} a une vitre cassée, il y a du verre partout",
        "citizen": {"email": f"usager{i}@example.org"}}).get_json()["code"] for i in range(4)]
    receiver.hold = threading.Event()
    first = workers.start()
    assert receiver.holding.wait(30), "the worker never reached the department"
    with runtime.db.session() as session:
        claimed = session.query(Delivery).filter(Delivery.state == "sending").count()
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    receiver.release()
    workers.start()

    def all_delivered():
        with runtime.db.session() as session:
            rows = session.query(Delivery).all()
        return len(rows) == 12 and all(d.state == "delivered" for d in rows) and rows

    rows = sweep_until(runtime, all_delivered)

    assert claimed > 1  # the dead worker held a batch, not only the delivery in flight
    keys = {d.idempotency_key for d in rows if d.target == "webhook"}
    assert sorted(receiver.accepted) == sorted(keys) and len(keys) == len(codes)  # each acted upon once
    seen = [r.headers["idempotency-key"] for r in receiver.to("/311/requests")]
    assert len(seen) == len(keys) + 1 and set(seen) == keys  # only the one in flight was sent twice
    mails = [str(m["Message-ID"]) for m in smtp_server.messages]
    assert len(mails) == len(set(mails)) == 8  # 4 to the department, 4 acknowledgements, none twice
    assert all(d.attempts <= 2 for d in rows)


def test_transient_failures_retry_with_backoff_then_deliver(app, client, auth, receiver, workers):
    runtime = app.extensions["runtime"]
    receiver.fail_next("/311/requests", Answer(500, "down"), Answer(503, "still down"))
    workers.start()
    code = submit(client, auth)

    delivered = sweep_until(runtime, lambda: (d := webhook_delivery(runtime)).state == "delivered" and d)

    assert delivered.attempts == 3 and receiver.accepted == [f"{code}:route1:1:webhook"]
    detail = client.get(f"/api/v1/requests/{code}", headers=auth).get_json()
    assert [e["type"] for e in detail["events"] if e["data"].get("target") == "webhook"] == [
        "delivery_retry", "delivery_retry", "delivered"]


def test_retry_after_is_honoured(app, client, auth, receiver, workers):
    runtime = app.extensions["runtime"]
    receiver.fail_next("/311/requests", Answer(429, {"error": "slow down"}, {"Retry-After": "120"}))
    workers.start()
    before = utcnow()
    submit(client, auth)

    waiting = wait_until(lambda: (d := webhook_delivery(runtime)).attempts == 1 and d.state == "pending" and d)

    assert waiting.next_attempt_at >= before + timedelta(seconds=119)
    assert "HTTP 429" in waiting.last_error
    jobs.sweep(runtime)  # not due yet: nothing is sent
    assert len(receiver.to("/311/requests")) == 1


def test_permanent_error_is_dead_at_once_and_cli_retry_sends_it(app, client, auth, receiver, workers):
    runtime = app.extensions["runtime"]
    receiver.fail_next("/311/requests", Answer(422, {"error": "unknown stop"}))
    workers.start()
    code = submit(client, auth)

    dead = wait_until(lambda: (d := webhook_delivery(runtime)).state == "dead" and d)
    assert dead.attempts == 1 and "HTTP 422" in dead.last_error

    from gateway import outbox

    assert outbox.retry_dead(runtime, dead.id, "admin:test")
    assert wait_until(lambda: webhook_delivery(runtime).state == "delivered")
    assert receiver.accepted == [f"{code}:route1:1:webhook"]


def test_too_many_transient_failures_end_dead(make_app, worker_settings, auth, receiver, workers):
    app = make_app(**{**worker_settings, "GATEWAY_MAX_ATTEMPTS": 2})
    runtime, client = app.extensions["runtime"], app.test_client()
    workers.env["GATEWAY_MAX_ATTEMPTS"] = "2"
    receiver.fail_next("/311/requests", *[Answer(500, "down")] * 3)
    workers.start()
    submit(client, auth)

    dead = sweep_until(runtime, lambda: (d := webhook_delivery(runtime)).state == "dead" and d)

    assert dead.attempts == 2 and "gave up after 2 attempts" in dead.last_error
    assert receiver.accepted == []
