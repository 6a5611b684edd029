"""Webhook sink: the exact signed request, and every failure class, against a local receiver."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest

from adapters.errors import (
    AdapterMisconfiguredError,
    PermanentDeliveryError,
    SignatureError,
    TransientDeliveryError,
)
from adapters.signing import sign, verify
from adapters.sinks.webhook import WebhookSink

from ..support.standins import Answer, DepartmentWebhook

SECRET = "dept-shared-secret-0123"
SETTINGS = {"TRANSPORT_WEBHOOK_SECRET": SECRET}


@pytest.fixture
def receiver():
    server = DepartmentWebhook(SECRET).start()
    yield server
    server.stop()


def target(receiver, **extra) -> dict:
    return {"type": "webhook", "url": f"{receiver.url}/311/requests", "secret_env": "TRANSPORT_WEBHOOK_SECRET", **extra}


def test_delivery_is_signed_json_with_idempotency_key(receiver, summary):
    receipt = WebhookSink(SETTINGS).deliver(summary, target(receiver), "R-2026-4821735:route1:1:webhook")

    assert receipt.external_id == "WO-1"
    sent = receiver.to("/311/requests")[0]
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["idempotency-key"] == "R-2026-4821735:route1:1:webhook"
    stamp = sent.headers["x-gateway-timestamp"]
    expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + sent.body, hashlib.sha256).hexdigest()
    assert sent.headers["x-gateway-signature"] == f"sha256={expected}"
    document = json.loads(sent.body)
    assert document["event"] == "request.routed"
    assert document["code"] == "R-2026-4821735" and document["category"] == "pothole"
    assert document["address"] == "145, rue Wellington" and document["lat"] == 45.4405
    assert document["sla_due_at"] == "2026-11-25T17:00:00+00:00"
    assert document["attachments"] == ["http://127.0.0.1:8311/attachments/7"]
    assert document["callback_url"] == "http://127.0.0.1:8311/api/v1/requests/R-2026-4821735/status"


def test_same_key_twice_is_one_delivery_at_the_department(receiver, summary):
    sink = WebhookSink(SETTINGS)
    sink.deliver(summary, target(receiver), "k-1")
    again = sink.deliver(summary, target(receiver), "k-1")

    assert receiver.accepted == ["k-1"] and again.external_id == "WO-1"


@pytest.mark.parametrize("answer, error, retry_after", [
    (Answer(429, {"error": "slow down"}, {"Retry-After": "30"}), TransientDeliveryError, 30.0),
    (Answer(500, "oops", {"Content-Type": "text/plain"}), TransientDeliveryError, None),
    (Answer(503, ""), TransientDeliveryError, None),
    (Answer(408, ""), TransientDeliveryError, None),
    (Answer(400, {"error": "bad field"}), PermanentDeliveryError, None),
    (Answer(404, ""), PermanentDeliveryError, None),
    (Answer(301, "", {"Location": "http://127.0.0.1:9/elsewhere"}), PermanentDeliveryError, None),
    (Answer(201, {"id": "late"}, hang=2), TransientDeliveryError, None),
])
def test_failures_are_classified(receiver, summary, answer, error, retry_after):
    receiver.fail_next("/311/requests", answer)
    sink = WebhookSink(SETTINGS, timeout=httpx.Timeout(1.0))

    with pytest.raises(error) as caught:
        sink.deliver(summary, target(receiver), "k")

    if retry_after is not None:
        assert caught.value.retry_after == retry_after


def test_a_2xx_without_json_is_accepted(receiver, summary):
    receiver.fail_next("/311/requests", Answer(202, "queued", {"Content-Type": "text/plain"}))
    assert WebhookSink(SETTINGS).deliver(summary, target(receiver), "k").external_id is None


def test_refused_connection_is_transient(summary):
    from tests.support.servers import free_port

    with pytest.raises(TransientDeliveryError, match="unreachable"):
        WebhookSink(SETTINGS).deliver(summary, {"url": f"http://127.0.0.1:{free_port()}/", "secret_env": "TRANSPORT_WEBHOOK_SECRET"}, "k")


@pytest.mark.parametrize("settings, extra, message", [
    ({}, {}, "TRANSPORT_WEBHOOK_SECRET is not set"),
    (SETTINGS, {"secret_env": None}, "needs 'secret_env'"),
    (SETTINGS, {"url": None}, "needs a 'url'"),
])
def test_missing_settings_are_misconfiguration(receiver, summary, settings, extra, message):
    with pytest.raises(AdapterMisconfiguredError, match=message):
        WebhookSink(settings).deliver(summary, target(receiver, **extra), "k")
    assert receiver.requests == []


@pytest.mark.parametrize("tamper, message", [
    (lambda h, b: (h, b + b" "), "does not match"),
    (lambda h, b: ({**h, "X-Gateway-Timestamp": str(int(h["X-Gateway-Timestamp"]) + 1)}, b), "does not match"),
    (lambda h, b: ({k: v for k, v in h.items() if k != "X-Gateway-Signature"}, b), "missing"),
    (lambda h, b: (sign(SECRET, b, 1_000_000_000), b), "five-minute window"),
    (lambda h, b: (sign("another-secret", b), b), "does not match"),
])
def test_signature_check_refuses_tampering_and_replays(tamper, message):
    body = b'{"status": "resolved"}'
    headers, body = tamper(sign(SECRET, body), body)
    with pytest.raises(SignatureError, match=message):
        verify(SECRET, body, headers)
