"""Department webhooks both ways: signed delivery, signed status callback, misconfiguration."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from adapters.signing import sign
from gateway import outbox
from gateway.cli import main
from gateway.models import Delivery

from .conftest import FIXTURES
from .support.servers import wait_until
from .support.standins import TRANSIT_URL, DepartmentWebhook, sample_config
from .test_flow_end_to_end import load

SECRET = "transport-shared-secret"
CALLBACK = (FIXTURES / "webhook" / "status__resolved_fr.json").read_bytes()


@pytest.fixture
def receiver():
    server = DepartmentWebhook(SECRET).start()
    yield server
    server.stop()


@pytest.fixture
def config_dir(tmp_path, receiver):
    """The sample city, with the transit department's webhook pointed at the local receiver."""
    return sample_config(tmp_path / "config", {TRANSIT_URL: f"{receiver.url}/311/requests"})


@pytest.fixture
def app(make_app, config_dir):
    return make_app(GATEWAY_CONFIG_DIR=str(config_dir), TRANSPORT_WEBHOOK_SECRET=SECRET)


def submit(client, auth) -> str:
    return client.post("/api/v1/requests", json=load("request__bus_shelter_en"), headers=auth).get_json()["code"]


def status(client, code: str, body: bytes, headers: dict):
    return client.post(f"/api/v1/requests/{code}/status", data=body,
                       headers={"Content-Type": "application/json", **headers})


def test_request_reaches_department_signed_and_its_callback_reaches_citizen(client, auth, receiver, smtp_server):
    code = submit(client, auth)

    delivered = wait_until(lambda: receiver.accepted)
    assert delivered == [f"{code}:route1:1:webhook"]
    document = receiver.to("/311/requests")[0].json()
    assert document["code"] == code and document["category"] == "transit_stop"
    assert wait_until(lambda: smtp_server.to("transport@bellerive.example.org"))  # fan-out: e-mail too

    response = status(client, code, CALLBACK, sign(SECRET, CALLBACK))

    assert response.status_code == 200 and response.get_json()["status"] == "resolved"
    detail = client.get(f"/api/v1/requests/{code}", headers=auth).get_json()
    change = [e for e in detail["events"] if e["type"] == "status_changed"][-1]
    assert change["actor"] == "webhook:transport" and change["data"]["external_status_code"] == "WO-2291-DONE"
    mail = wait_until(lambda: [m for m in smtp_server.to("ann.lee@example.org") if "resolved" in m["Subject"]])
    assert "The glass was replaced" not in mail[0].get_body(("plain",)).get_content()  # the note is the department's own words
    assert "L'abribus a été réparé et la vitre remplacée." in mail[0].get_body(("plain",)).get_content()


@pytest.mark.parametrize("headers, reason", [
    (lambda body: sign("wrong-secret", body), "does not match"),
    (lambda body: sign(SECRET, body, 1_700_000_000), "five-minute window"),
    (lambda body: {"X-Gateway-Signature": "sha256=00"}, "missing"),
    (lambda body: sign(SECRET, body + b" "), "does not match"),
])
def test_bad_signatures_are_refused_and_change_nothing(client, auth, receiver, headers, reason):
    code = submit(client, auth)

    response = status(client, code, CALLBACK, headers(CALLBACK))

    assert response.status_code == 403 and reason in response.get_json()["error"]
    assert client.get(f"/api/v1/requests/{code}", headers=auth).get_json()["status"] == "routed"


def test_unknown_code_and_illegal_transition(client, auth, receiver):
    code = submit(client, auth)
    assert status(client, "R-2026-0000000", CALLBACK, sign(SECRET, CALLBACK)).status_code == 404
    assert status(client, code, CALLBACK, sign(SECRET, CALLBACK)).status_code == 200

    back = json.dumps({"status": "new"}).encode()
    response = status(client, code, back, sign(SECRET, back))

    assert response.status_code == 409
    assert client.get(f"/api/v1/requests/{code}", headers=auth).get_json()["status"] == "resolved"


def test_a_department_cannot_sign_for_another_departments_request(client, auth, receiver):
    """Only the request's own department's secret is accepted (pothole → public works: no webhook)."""
    code = client.post("/api/v1/requests", json=load("request__pothole_fr"), headers=auth).get_json()["code"]
    response = status(client, code, CALLBACK, sign(SECRET, CALLBACK))
    assert response.status_code == 403
    assert client.get(f"/api/v1/requests/{code}", headers=auth).get_json()["status"] == "routed"


def test_bearer_token_still_works_for_city_scripts(client, auth):
    code = submit(client, auth)
    response = status(client, code, CALLBACK, auth)
    assert response.status_code == 200
    assert status(client, code, CALLBACK, {}).status_code == 401


def test_sample_city_without_secrets_dead_letters_with_reason_then_retry_works(make_app, settings, auth, receiver,
                                                                               config_dir, smtp_server, monkeypatch):
    app = make_app(GATEWAY_CONFIG_DIR=str(config_dir))  # TRANSPORT_WEBHOOK_SECRET and SLACK_BOT_TOKEN unset
    runtime = app.extensions["runtime"]
    client = app.test_client()
    code = submit(client, auth)
    tree = client.post("/api/v1/requests", json=load("request__tree_branch_fr"), headers=auth).get_json()["code"]

    def dead():
        with runtime.db.session() as session:
            return session.query(Delivery).filter(Delivery.state == "dead").order_by(Delivery.id).all()

    rows = wait_until(lambda: len(dead()) == 2 and dead())
    assert {r.target for r in rows} == {"webhook", "slack"}
    assert "TRANSPORT_WEBHOOK_SECRET is not set" in next(r.last_error for r in rows if r.target == "webhook")
    assert "SLACK_BOT_TOKEN is not set" in next(r.last_error for r in rows if r.target == "slack")
    assert rows[0].attempts == 1  # no retry storm on a misconfiguration
    assert runtime.health["sink:webhook"]["misconfigured"] and runtime.health["sink:slack"]["misconfigured"]
    assert wait_until(lambda: smtp_server.to("transport@bellerive.example.org") and smtp_server.to("parcs@bellerive.example.org"))
    assert receiver.requests == [] and tree

    for name, value in settings.items():
        monkeypatch.setenv(name, str(value)) if value is not None else monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GATEWAY_CONFIG_DIR", str(config_dir))
    listing = CliRunner().invoke(main, ["deliveries", "dead"])
    assert "TRANSPORT_WEBHOOK_SECRET is not set" in listing.output and "2 dead deliveries" in listing.output
    sinks = CliRunner().invoke(main, ["sinks"]).output
    assert "parcs\tslack\tMISCONFIGURED: SLACK_BOT_TOKEN is not set" in sinks
    assert "transport\twebhook\tMISCONFIGURED" in sinks and "2 misconfigured sink(s)" in sinks

    fixed = make_app(GATEWAY_CONFIG_DIR=str(config_dir), TRANSPORT_WEBHOOK_SECRET=SECRET).extensions["runtime"]
    webhook_row = next(r for r in rows if r.target == "webhook")
    assert outbox.retry_dead(fixed, webhook_row.id, "admin:test")
    assert wait_until(lambda: receiver.accepted) == [f"{code}:route1:1:webhook"]


@pytest.mark.parametrize("body, subject, words", [
    ({"status": "needs_info", "note": "Which side of the street is the shelter on?"}, "we need more information",
     "Which side of the street is the shelter on?"),
    ({"status": "rejected", "note": "This shelter belongs to the regional transit authority."}, "not taken up",
     "Reason: This shelter belongs to the regional transit authority."),
    ({"status": "acknowledged"}, ": received", "is now: received"),
    ({"status": "in_progress", "note": "Crew on site"}, "in progress", "Message from the department: Crew on site"),
])
def test_status_notices_reach_requester_and_followers_in_their_language(client, runtime, auth, receiver,
                                                                        smtp_server, body, subject, words):
    from gateway.models import Citizen, ContactPoint, Follower, Request

    code = submit(client, auth)
    with runtime.db.session() as session:
        follower = Citizen(name="Neighbour", language="en")
        session.add(follower)
        session.flush()
        session.add(ContactPoint(citizen_id=follower.id, kind="email", value="neighbour@example.org"))
        session.add(Follower(request_id=session.query(Request).filter_by(code=code).one().id, citizen_id=follower.id))
    raw = json.dumps(body).encode()

    assert status(client, code, raw, sign(SECRET, raw)).status_code == 200

    for address in ("ann.lee@example.org", "neighbour@example.org"):
        mail = wait_until(lambda a=address: [m for m in smtp_server.to(a) if subject in m["Subject"]])
        assert code in mail[0]["Subject"] and words in mail[0].get_body(("plain",)).get_content()


def test_logs_carry_codes_not_personal_data(client, auth, receiver, smtp_server, caplog):
    caplog.set_level("DEBUG")
    code = submit(client, auth)
    wait_until(lambda: receiver.accepted)
    status(client, code, CALLBACK, sign(SECRET, CALLBACK))
    status(client, code, CALLBACK, sign("wrong", CALLBACK))
    wait_until(lambda: smtp_server.to("ann.lee@example.org")[1:])

    gateway_logs = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail"))
    assert code in gateway_logs
    for personal in ("ann.lee", "Ann Lee", "40 Main Street", "broken glass", SECRET):
        assert personal not in gateway_logs
