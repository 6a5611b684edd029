"""Slack's way back: buttons (signed block_actions) and thread replies, end to end.

The department's channel is a local stand-in of Slack's Web API reached through slack-sdk;
clicks are re-signed with a test secret the way Slack signs them.
"""

from __future__ import annotations

import copy
import json
import time
from urllib.parse import quote

import pytest
from slack_sdk.signature import SignatureVerifier

from gateway.models import Delivery, Request

from .conftest import FIXTURES
from .support.servers import wait_until
from .support.standins import SlackStandIn
from .test_flow_end_to_end import load

TOKEN = "xoxb-test-token"
SECRET = "slack-signing-secret-for-tests"
VECTOR = json.loads((FIXTURES / "slack" / "signature__published_vector.json").read_text())
BOLT = json.loads((FIXTURES / "slack" / "interaction__block_actions_bolt.json").read_text())["payload"]


@pytest.fixture
def slack():
    server = SlackStandIn(TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def app(make_app, slack):
    return make_app(SLACK_BOT_TOKEN=TOKEN, SLACK_API_BASE=slack.base_url, SLACK_SIGNING_SECRET=SECRET)


def signed(body: str, secret: str = SECRET, timestamp: int | None = None) -> dict:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {"X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body),
            "Content-Type": "application/x-www-form-urlencoded"}


def click(code: str, action_id: str, channel: str = "C0PARCS311", ts: str = "1764000000.000001") -> str:
    """Slack's block_actions body (shape of the bolt-python fixture) for one of our buttons."""
    payload = copy.deepcopy(BOLT)
    payload["container"].update(channel_id=channel, message_ts=ts, is_ephemeral=False)
    payload["channel"] = {"id": channel, "name": "parcs-311"}
    payload["actions"] = [{"action_id": action_id, "block_id": f"request:{code}", "value": code, "type": "button",
                           "text": {"type": "plain_text", "text": "x"}, "action_ts": "1764000001.000000"}]
    return "payload=" + quote(json.dumps(payload))


def routed_to_slack(client, runtime, auth, slack) -> tuple[str, str]:
    """Submit a tree report (→ parcs: e-mail + Slack); returns (code, Slack ts)."""
    code = client.post("/api/v1/requests", json=load("request__tree_branch_fr"), headers=auth).get_json()["code"]
    wait_until(lambda: slack.posts())

    def stored():
        with runtime.db.session() as session:
            return session.query(Delivery.external_id).filter(
                Delivery.target == "slack", Delivery.state == "delivered").scalar()

    return code, wait_until(stored).split(":")[1]


def state(runtime, code: str) -> Request:
    with runtime.db.session() as session:
        request = session.query(Request).filter_by(code=code).one()
        request.events  # noqa: B018 - loaded before the session closes
        return request


def test_slack_published_vector_verifies_with_the_mock_clock_and_is_stale_now(client):
    class Clock:
        def now(self):
            return VECTOR["mock_now"]

    verifier = SignatureVerifier(VECTOR["signing_secret"], clock=Clock())
    assert verifier.is_valid_request(VECTOR["body"], VECTOR["headers"])
    assert not verifier.is_valid_request(VECTOR["body"] + "------", VECTOR["headers"])

    # The same genuine request replayed today is refused: its timestamp is years old.
    app = client.application
    app.extensions["runtime"].settings["SLACK_SIGNING_SECRET"] = VECTOR["signing_secret"]
    response = client.post("/webhooks/slack/interactions", data=VECTOR["body"],
                           headers={**VECTOR["headers"], "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 403


def test_in_progress_click_updates_request_citizen_and_slack_message(client, runtime, auth, slack, smtp_server):
    code, ts = routed_to_slack(client, runtime, auth, slack)
    assert code in slack.posts()[0]["text"] and wait_until(lambda: smtp_server.to("parcs@bellerive.example.org"))  # fan-out
    body = click(code, "status:in_progress", ts=ts)

    started = time.monotonic()
    response = client.post("/webhooks/slack/interactions", data=body, headers=signed(body))

    assert response.status_code == 200 and time.monotonic() - started < 3
    request = state(runtime, code)
    assert request.status == "in_progress"
    change = [e for e in request.events if e.type == "status_changed"][-1]
    assert change.actor == "slack:primary-owner" and change.data["slack_user"] == "W111"
    mail = wait_until(lambda: [m for m in smtp_server.to("luc.gagnon@example.org") if "en cours" in m["Subject"]])
    assert code in mail[0]["Subject"]
    update = wait_until(lambda: slack.updates())[0]
    assert update["ts"] == ts and update["channel"] == "C0PARCS311"
    assert "In progress" in str(update["blocks"]) and "Last change by slack:primary-owner" in str(update["blocks"])


def test_resolved_click_sends_closing_message(client, runtime, auth, slack, smtp_server):
    code, ts = routed_to_slack(client, runtime, auth, slack)
    body = click(code, "status:resolved", ts=ts)

    assert client.post("/webhooks/slack/interactions", data=body, headers=signed(body)).status_code == 200

    assert state(runtime, code).status == "resolved"
    assert wait_until(lambda: [m for m in smtp_server.to("luc.gagnon@example.org") if "résolue" in m["Subject"]])
    update = wait_until(lambda: slack.updates())[0]
    assert all(block["type"] != "actions" for block in update["blocks"])  # no more buttons


@pytest.mark.parametrize("make_headers, expected", [
    (lambda body: signed(body, secret="not-the-secret"), 403),
    (lambda body: signed(body, timestamp=int(time.time()) - 301), 403),
    (lambda body: {"Content-Type": "application/x-www-form-urlencoded"}, 403),
    (lambda body: {**signed(body), "X-Slack-Signature": "v0=" + "0" * 64}, 403),
])
def test_forged_or_stale_clicks_are_refused_and_change_nothing(client, runtime, auth, slack, make_headers, expected):
    code, ts = routed_to_slack(client, runtime, auth, slack)
    body = click(code, "status:resolved", ts=ts)

    assert client.post("/webhooks/slack/interactions", data=body, headers=make_headers(body)).status_code == expected

    request = state(runtime, code)
    assert request.status == "routed" and not [e for e in request.events if e.type == "status_changed"]


def test_unknown_code_malformed_payload_and_illegal_transition(client, runtime, auth, slack):
    code, ts = routed_to_slack(client, runtime, auth, slack)
    unknown = click("R-2026-0000000", "status:resolved")
    assert client.post("/webhooks/slack/interactions", data=unknown, headers=signed(unknown)).status_code == 404
    garbage = "payload=%7Bnot-json"
    assert client.post("/webhooks/slack/interactions", data=garbage, headers=signed(garbage)).status_code == 400

    resolved = click(code, "status:resolved", ts=ts)
    client.post("/webhooks/slack/interactions", data=resolved, headers=signed(resolved))
    back = click(code, "status:acknowledged", ts=ts)
    response = client.post("/webhooks/slack/interactions", data=back, headers=signed(back))

    assert response.status_code == 409 and "cannot go from 'resolved'" in response.get_json()["error"]
    assert state(runtime, code).status == "resolved"


def test_not_ours_sends_the_request_back_to_triage(client, runtime, auth, slack, smtp_server):
    code, ts = routed_to_slack(client, runtime, auth, slack)
    body = click(code, "decline", ts=ts)

    assert client.post("/webhooks/slack/interactions", data=body, headers=signed(body)).status_code == 200

    assert state(runtime, code).department == "centre_311"
    triage = wait_until(lambda: smtp_server.to("triage-311@bellerive.example.org"))
    assert code in triage[0]["Subject"]


def test_thread_reply_becomes_an_internal_note_once(client, runtime, auth, slack):
    code, ts = routed_to_slack(client, runtime, auth, slack)
    event = {"type": "event_callback", "event_id": "Ev0PV52K21", "event": {
        "type": "message", "channel": "C0PARCS311", "user": "U2147483697", "text": "Équipe envoyée demain matin",
        "ts": "1764000100.000200", "thread_ts": ts}}
    body = json.dumps(event)
    headers = {**signed(body), "Content-Type": "application/json"}

    for _ in range(2):  # Slack retries an event it thinks was not received
        assert client.post("/webhooks/slack/events", data=body, headers=headers).status_code == 200

    notes = [e for e in state(runtime, code).events if e.type == "note"]
    assert len(notes) == 1 and notes[0].data["text"] == "Équipe envoyée demain matin"
    assert notes[0].actor == "slack:U2147483697" and notes[0].public is False


def test_url_verification_challenge(client):
    body = json.dumps({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    response = client.post("/webhooks/slack/events", data=body, headers={**signed(body), "Content-Type": "application/json"})
    assert response.get_json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


def test_without_signing_secret_clicks_are_refused_as_not_configured(make_app):
    client = make_app(SLACK_SIGNING_SECRET=None).test_client()
    body = click("R-2026-4821735", "status:resolved")
    response = client.post("/webhooks/slack/interactions", data=body, headers=signed(body))
    assert response.status_code == 503 and "not configured" in response.get_json()["error"]
