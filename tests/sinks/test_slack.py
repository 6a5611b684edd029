"""Slack sink against a local stand-in of Slack's Web API, through slack-sdk's WebClient."""

from __future__ import annotations

import pytest

from adapters.errors import (
    AdapterMisconfiguredError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from adapters.sinks.slack import SlackSink

from ..support.standins import Answer, SlackStandIn

TOKEN = "xoxb-test-token"


@pytest.fixture
def slack():
    server = SlackStandIn(TOKEN).start()
    yield server
    server.stop()


def sink(slack, token=TOKEN) -> SlackSink:
    return SlackSink.from_settings({"SLACK_BOT_TOKEN": token, "SLACK_API_BASE": slack.base_url})


def test_post_carries_request_and_buttons_and_returns_channel_and_ts(slack, summary):
    receipt = sink(slack).deliver(summary, {"type": "slack", "channel": "C0PARCS311"}, "R-2026-4821735:route1:0:slack")

    assert receipt.external_id == "C0PARCS311:1764000000.000001"
    sent = slack.to("/api/chat.postMessage")[0]
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    body = sent.json()
    assert body["channel"] == "C0PARCS311" and "R-2026-4821735" in body["text"]
    text = str(body["blocks"])
    for fact in ("Nid-de-poule", "routine", "145, rue Wellington", "Gros nid-de-poule", "/attachments/7"):
        assert fact in text
    buttons = body["blocks"][-1]["elements"]
    assert [b["action_id"] for b in buttons] == ["status:acknowledged", "status:in_progress", "status:resolved", "decline"]
    assert [b["text"]["text"] for b in buttons] == ["Acknowledge", "In progress", "Resolved", "Not ours"]
    assert {b["value"] for b in buttons} == {"R-2026-4821735"}


def test_update_rewrites_the_message_without_buttons_once_resolved(slack, summary):
    from dataclasses import replace

    sink(slack).deliver(replace(summary, status="resolved"),
                        {"channel": "C0PARCS311", "update_ts": "1764000000.000001", "actor": "slack:jdoe"}, "k")

    body = slack.updates()[0]
    assert body["ts"] == "1764000000.000001" and body["channel"] == "C0PARCS311"
    assert "Resolved" in str(body["blocks"]) and "Last change by slack:jdoe" in str(body["blocks"])
    assert all(block["type"] != "actions" for block in body["blocks"])


@pytest.mark.parametrize("answer, error, retry_after", [
    (Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}), TransientDeliveryError, 7.0),
    (Answer(500, "<html>Internal Server Error</html>", {"Content-Type": "text/html"}), TransientDeliveryError, None),
    (Answer(503, {"ok": False, "error": "service_unavailable"}), TransientDeliveryError, None),
    (Answer(200, "this is not json", {"Content-Type": "text/plain"}), TransientDeliveryError, None),
    (Answer(200, {"ok": False, "error": "channel_not_found"}), PermanentDeliveryError, None),
    (Answer(200, {"ok": False, "error": "is_archived"}), PermanentDeliveryError, None),
    (Answer(200, {"ok": False, "error": "invalid_auth"}), AdapterMisconfiguredError, None),
    (Answer(200, {"ok": True, "ts": "1.2"}, hang=3), TransientDeliveryError, None),
])
def test_failures_are_classified(slack, summary, answer, error, retry_after):
    slack.fail_next("/api/chat.postMessage", answer)
    slow = SlackSink(TOKEN, slack.base_url, timeout=1)

    with pytest.raises(error) as caught:
        slow.deliver(summary, {"channel": "C0PARCS311"}, "k")

    if retry_after is not None:
        assert caught.value.retry_after == retry_after
    assert len(slack.to("/api/chat.postMessage")) == 1  # slack-sdk's own retries are off


def test_unreachable_slack_is_transient(summary):
    from tests.support.servers import free_port

    dead = SlackSink(TOKEN, f"http://127.0.0.1:{free_port()}/api/", timeout=1)
    with pytest.raises(TransientDeliveryError):
        dead.deliver(summary, {"channel": "C1"}, "k")


@pytest.mark.parametrize("token, target, message", [
    (None, {"channel": "C1"}, "SLACK_BOT_TOKEN is not set"),
    (TOKEN, {}, "needs a 'channel'"),
])
def test_missing_settings_are_misconfiguration(slack, summary, token, target, message):
    with pytest.raises(AdapterMisconfiguredError, match=message):
        sink(slack, token).deliver(summary, target, "k")
    assert slack.requests == []


def test_retry_after_an_unrecorded_success_finds_the_earlier_post(slack, summary):
    """A worker killed after Slack accepted the post: the retry finds it instead of posting twice."""
    first = sink(slack).deliver(summary, {"channel": "C0PARCS311", "attempt": 1}, "R-2026-4821735:route1:0:slack")
    sink(slack).deliver(summary, {"channel": "C0OTHER"}, "another-key")

    again = sink(slack).deliver(summary, {"channel": "C0PARCS311", "attempt": 2}, "R-2026-4821735:route1:0:slack")

    assert again.external_id == first.external_id
    assert len(slack.to("/api/chat.postMessage")) == 2  # not a third
    history = slack.to("/api/conversations.history")[0]
    asked = history.query or history.form()  # slack-sdk may send the parameters in the body
    assert asked["channel"] == "C0PARCS311" and asked["include_all_metadata"] in ("1", "true", "True")
    assert slack.posts()[0]["metadata"]["event_payload"]["idempotency_key"] == "R-2026-4821735:route1:0:slack"


def test_retry_without_earlier_post_posts(slack, summary):
    receipt = sink(slack).deliver(summary, {"channel": "C0PARCS311", "attempt": 3}, "k-new")
    assert receipt.external_id == "C0PARCS311:1764000000.000001" and len(slack.posts()) == 1


def test_retry_posts_when_history_cannot_be_read(slack, summary):
    slack.fail_next("/api/conversations.history", Answer(200, {"ok": False, "error": "missing_scope"}))
    receipt = sink(slack).deliver(summary, {"channel": "C0PARCS311", "attempt": 2}, "k")
    assert receipt.external_id.startswith("C0PARCS311:") and len(slack.posts()) == 1
