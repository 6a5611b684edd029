"""Webhooks push their RQ jobs in batches after answering (gateway/webhooks/push.py), on a real
redis-server: each stored message gets its job exactly once, several in one round trip, and a
push that fails (Redis down) leaves the message for the sweeper, never lost."""

from __future__ import annotations

import copy

from redis import Redis
from rq import Queue
from sqlalchemy import func, select

from gateway import jobs
from gateway.models import InboundMessage, Request
from gateway.queue import QUEUE_NAME
from gateway.webhooks import push

from ..support.servers import wait_until
from ..support.twilio import load, post, twilio_settings


def sms(i: int) -> dict:
    fixture = copy.deepcopy(load("twilio_sms", "sms__pothole_fr"))
    sid = f"SM{i:032x}"
    fixture["params"].update(MessageSid=sid, SmsSid=sid, SmsMessageSid=sid, From=f"+1514555{100 + i:04d}")
    return fixture


def queued(redis_url: str) -> list[tuple]:
    return [tuple(job.args) for job in Queue(QUEUE_NAME, connection=Redis.from_url(redis_url)).jobs]


def stored(runtime) -> dict[str, InboundMessage]:
    with runtime.db.session() as session:
        rows = list(session.scalars(select(InboundMessage).where(InboundMessage.channel == "twilio_sms")))
        session.expunge_all()
    return {row.provider_id: row for row in rows}


def test_each_stored_sms_gets_one_job_and_a_burst_shares_one_round_trip(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, GATEWAY_PIPELINE_BATCH=1, **twilio_settings(None))
    runtime = app.extensions["runtime"]
    pusher = app.extensions["webhook_push"]
    pusher.linger = 1.0  # a slow machine must not split the burst below
    client = app.test_client()
    redis = Redis.from_url(redis_server.url)
    execs = int(redis.info("commandstats").get("cmdstat_exec", {}).get("calls", 0))

    answers = [post(client, sms(i)) for i in range(5)]
    answers.append(post(client, sms(2)))  # Twilio's retry of the third: no second job

    assert [a.status_code for a in answers] == [200] * 6
    assert "R-" in answers[0].get_data(as_text=True)  # the citizen's answer, before any push
    rows = stored(runtime)
    assert len(rows) == 5
    wait_until(lambda: len(queued(redis_server.url)) == 5, timeout=10)
    assert sorted(queued(redis_server.url)) == sorted(("process_inbound", row.id) for row in rows.values())
    assert int(redis.info("commandstats")["cmdstat_exec"]["calls"]) - execs == 1  # one pipeline for the five


def test_one_job_per_pipeline_batch_and_those_jobs_process_every_message_once(make_app, redis_server):
    """A process_inbound job processes its message and the oldest waiting ones, up to
    GATEWAY_PIPELINE_BATCH: 45 SMS need 3 jobs, and those 3 leave nothing waiting."""
    app = make_app(REDIS_URL=redis_server.url, GATEWAY_PIPELINE_BATCH=20, **twilio_settings(None))
    runtime = app.extensions["runtime"]
    pusher = app.extensions["webhook_push"]
    pusher.linger = 60.0  # pushed by flush() below: one batch
    client = app.test_client()

    answers = [post(client, sms(i)) for i in range(45)] + [post(client, sms(44))]  # and a retry
    pusher.flush()

    assert {a.status_code for a in answers} == {200}
    rows = stored(runtime)
    ids = sorted(row.id for row in rows.values())
    assert len(ids) == 45
    assert queued(redis_server.url) == [("process_inbound", ids[0]), ("process_inbound", ids[20]),
                                        ("process_inbound", ids[40])]
    for _job, inbound_id in queued(redis_server.url):  # what the RQ worker runs, in queue order
        jobs.process_inbound(runtime, inbound_id)

    assert {row.state for row in stored(runtime).values()} == {"processed"}
    with runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Request)) == 45  # one each, none twice


def test_a_failed_push_leaves_the_sms_for_the_sweeper(make_app, redis_server):
    app = make_app(REDIS_URL=redis_server.url, **twilio_settings(None))
    runtime = app.extensions["runtime"]
    pusher = app.extensions["webhook_push"]
    pusher.linger = 60.0  # pushed by flush() below, as at the worker's exit
    redis_server.stop()

    answer = post(app.test_client(), sms(7))
    pusher.flush()  # Redis is down: logged, not raised

    assert answer.status_code == 200
    (row,) = stored(runtime).values()
    assert row.state == "received"
    redis_server.start()
    assert queued(redis_server.url) == []
    jobs.sweep(runtime)  # what `gateway scheduler` does every GATEWAY_SWEEP_SECONDS
    assert ("process_inbound", row.id) in queued(redis_server.url)


def test_without_redis_webhook_jobs_are_handed_over_at_once(make_app):
    app = make_app(**twilio_settings(None))
    assert "webhook_push" not in app.extensions
    assert push.for_app(app) is app.extensions["runtime"].jobs  # InlineQueue: threads of this process


def test_webhooks_neither_read_nor_set_the_session_cookie_pages_still_do(make_app):
    client = make_app(**twilio_settings(None)).test_client()
    page = client.get("/report?lang=en")  # a visitor's choice of language is kept in the session
    assert page.status_code == 200 and "session=" in page.headers.get("Set-Cookie", "")
    assert "Report" in page.get_data(as_text=True)

    answer = post(client, sms(11))  # the test client sends the session cookie back

    assert answer.status_code == 200 and "R-" in answer.get_data(as_text=True)
    assert "Set-Cookie" not in answer.headers and "Cookie" not in answer.headers.get("Vary", "")  # not even read
    assert "Report" in client.get("/report").get_data(as_text=True)  # the page's cookie still holds "en"
