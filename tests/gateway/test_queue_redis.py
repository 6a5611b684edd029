"""Background jobs on a real Redis with a real `gateway worker` process (RQ)."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import select

from gateway.models import Delivery
from tests.support.servers import wait_until

SUBMISSION = {"description": "Arbre tombé sur le trottoir, rue des Pins", "citizen": {"email": "paul@example.org"}}


def deliveries(runtime):
    with runtime.db.session() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def start_worker(settings: dict, redis_url: str) -> subprocess.Popen:
    env = {**os.environ, **{k: str(v) for k, v in settings.items() if v is not None}, "REDIS_URL": redis_url}
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_deliveries_run_on_rq_worker_through_real_redis(make_app, settings, redis_server, smtp_server, auth):
    app = make_app(REDIS_URL=redis_server.url)
    worker = start_worker(settings, redis_server.url)
    try:
        created = app.test_client().post("/api/v1/requests", json=SUBMISSION, headers=auth).get_json()
        assert created["department"] == "parcs"
        wait_until(lambda: smtp_server.to("parcs@bellerive.example.org"), timeout=45)
        wait_until(lambda: smtp_server.to("paul@example.org"), timeout=45)
        # the worker records the outcome just after the SMTP server has the message: wait for it.
        # The sample parks department also has a Slack sink, dead here for want of a token.
        runtime = app.extensions["runtime"]
        wait_until(lambda: all(d.state in ("delivered", "dead") for d in deliveries(runtime)), timeout=45)
        states = {d.target: d.state for d in deliveries(runtime)}
        assert states == {"email_smtp": "delivered", "email": "delivered", "slack": "dead"}
    finally:
        worker.terminate()
        worker.wait(timeout=10)


def test_redis_down_loses_nothing_the_sweeper_sends_it_later(make_app, settings, redis_server, smtp_server, auth):
    app = make_app(REDIS_URL=redis_server.url)
    runtime = app.extensions["runtime"]
    redis_server.stop()

    response = app.test_client().post("/api/v1/requests", json=SUBMISSION, headers=auth)

    assert response.status_code == 201  # accepted and stored although the queue is down
    # the department's e-mail and Slack, the citizen's acknowledgement: all waiting in the database
    assert {d.state for d in deliveries(runtime)} == {"pending"} and len(deliveries(runtime)) >= 2
    assert smtp_server.messages == []

    redis_server.start()
    worker = start_worker(settings, redis_server.url)
    try:
        from gateway import jobs

        jobs.sweep(runtime)  # what `gateway scheduler` does every few seconds
        wait_until(lambda: all(d.state in ("delivered", "dead") for d in deliveries(runtime)), timeout=45)
    finally:
        worker.terminate()
        worker.wait(timeout=10)
    assert len(smtp_server.to("parcs@bellerive.example.org")) == 1


def test_health_reports_redis_down(make_app, redis_server):
    client = make_app(REDIS_URL=redis_server.url).test_client()
    assert client.get("/healthz").get_json()["checks"]["redis"] is True

    redis_server.stop()

    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["redis"] is False
