"""kill -9 of gunicorn web workers during a burst of signed Twilio SMS webhooks.

`gateway serve` (2 workers), `gateway worker` x2 and `gateway scheduler` run as real processes
on PostgreSQL, then on SQLite (where the webhooks of a web worker waiting for the write lock
are stored by one commit, gateway/grouped.py, so a kill may take several unanswered at once),
and redis-server. Eight senders post 60 signed SMS (one citizen each, about a
bus shelter: the transit department has two sinks, its e-mail and its webhook). After 15
answers, then after 40, a web worker is killed with SIGKILL. A sender whose connection
breaks posts the same SMS again, as Twilio does when it gets no answer.

Then: every SMS answered 200 is stored once, became one request, the acknowledgement is the
TwiML answer (no second one is sent by the outbox), and each request reached the transit
department exactly once per sink.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import httpx
import pytest

from normalizer.codes import find_codes

from ..support.servers import wait_until
from ..support.twilio import PUBLIC_URL, load, sign
from .conftest import report
from .stack import Stack, settle, tally

COUNT = 60
STREETS = ["rue des Érables", "boulevard Saint-Joseph", "avenue du Lac", "rue Principale", "chemin de la Montagne",
           "rue Notre-Dame"]


def sms(i: int) -> dict:
    params = dict(load("twilio_sms", "sms__pothole_fr")["params"])
    sid = f"SM{i:032x}"
    params.update(MessageSid=sid, SmsSid=sid, SmsMessageSid=sid, From=f"+1514555{100 + i:04d}",
                  Body=f"L'abribus de l'arrêt {4000 + i}, {STREETS[i % len(STREETS)]}, a une vitre cassée")
    return params


def post_until_answered(url: str, params: dict, answers: dict, lock: threading.Lock, breaks: list) -> None:
    body = urlencode(params)
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": sign(PUBLIC_URL + "/webhooks/twilio/sms", params)}
    for _ in range(100):
        try:
            response = httpx.post(f"{url}/webhooks/twilio/sms", content=body, headers=headers, timeout=20)
        except httpx.HTTPError:
            with lock:
                breaks.append(params["MessageSid"])
            time.sleep(0.2)
            continue
        if response.status_code == 200:
            with lock:
                answers[params["MessageSid"]] = response.text
            return
        time.sleep(0.2)  # a 5xx: Twilio retries too
    raise AssertionError(f"{params['MessageSid']} never answered")


@pytest.fixture(params=["postgresql", "sqlite"])
def burst_stack(request, fault_settings, tmp_path):
    settings = fault_settings
    if request.param == "sqlite":
        settings = {**fault_settings, "DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}"}
    running = Stack(settings, tmp_path)
    yield running
    running.stop()


def test_web_workers_killed_during_an_sms_burst_lose_and_double_nothing(burst_stack, twilio, receiver, smtp_server):
    stack = burst_stack
    stack.serve(workers=2)
    stack.start()
    stack.start()
    stack.scheduler()
    answers: dict[str, str] = {}
    breaks: list[str] = []
    lock = threading.Lock()
    killed = []

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(post_until_answered, stack.url, sms(i), answers, lock, breaks) for i in range(COUNT)]
        for threshold in (15, 40):
            wait_until(lambda t=threshold: len(answers) >= t, timeout=60, every=0.01)
            killed.append(stack.kill_web_worker())
        for future in futures:
            future.result()
    burst_seconds = time.monotonic() - started

    assert len(answers) == COUNT
    stored = tally(stack.database_url)["inbound"]
    assert sorted(stored) == sorted(("twilio_sms", sms(i)["MessageSid"]) for i in range(COUNT))
    assert set(stored.values()) == {1}  # each SMS stored exactly once

    figures = settle(stack, receiver, smtp_server, expected_requests=COUNT)
    recovered_seconds = time.monotonic() - started
    final = tally(stack.database_url)
    codes = {find_codes(text, "R")[0] for text in answers.values()}
    assert codes == final["request_codes"]  # each answer's code is one request, each request was answered
    assert not any(purpose == "notify" for purpose, _, _ in final["deliveries"])  # no second acknowledgement
    assert twilio.sent() == []
    assert figures["webhook_lost"] == figures["webhook_acted_twice"] == figures["webhook_unexpected"] == 0
    assert figures["email_lost"] == 0 and figures["webhook_expected"] == figures["webhook_acted"]
    assert figures["email_expected"] == figures["webhook_expected"] == COUNT  # none linked as a duplicate
    report("web_worker_kill_sqlite" if stack.database_url.startswith("sqlite") else "web_worker_kill", {
        "sent": COUNT, "answered_200": len(answers), "connection_breaks_then_resent": len(breaks),
        "workers_killed": len(killed), "stored_inbound": sum(stored.values()), "requests": final["requests"],
        "acknowledgements_in_twiml": len(codes), "acknowledgements_by_outbox": 0, **figures,
        "burst_seconds": round(burst_seconds, 1), "all_delivered_after_seconds": round(recovered_seconds, 1)})

