"""Open311 sink: POST to a department's GeoReport v2 stand-in, tokens, polling, failures."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from adapters.errors import (
    AdapterMisconfiguredError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from adapters.sinks.open311 import LOOKBACK, Open311Sink
from gateway.models import Delivery

from ..conftest import FIXTURES
from ..support.servers import wait_until
from ..support.standins import Answer, Open311StandIn, works_with_open311
from ..test_flow_end_to_end import load

API_KEY = "dept-api-key"
KEY = "R-2026-4821735:route2:1:open311"  # the outbox's idempotency key for this delivery
SETTINGS = {"URBANISME_OPEN311_KEY": API_KEY}
RECORDS = json.loads((FIXTURES / "open311" / "requests__boston_records.json").read_text())


@pytest.fixture
def server():
    stand_in = Open311StandIn(API_KEY, RECORDS).start()
    yield stand_in
    stand_in.stop()


def target(server, **extra) -> dict:
    return {"type": "open311", "endpoint": server.endpoint, "api_key_env": "URBANISME_OPEN311_KEY",
            "service_codes": {"pothole": "4f38920fe75084437f0001a0"}, **extra}


def test_post_sends_georeport_form_and_keeps_service_request_id(server, summary):
    receipt = Open311Sink(SETTINGS).deliver(summary, target(server, jurisdiction_id="bellerive.ca"), KEY)

    assert receipt.external_id == "900001"
    [post] = server.to("/v2/requests.json")  # a first attempt does not search first
    assert post.form() == {"api_key": API_KEY, "service_code": "4f38920fe75084437f0001a0",
                           "description": "[R-2026-4821735] Gros nid-de-poule devant le 145 rue Wellington.",
                           "address_string": "145, rue Wellington", "attribute[gateway_code]": "R-2026-4821735",
                           "lat": "45.4405", "long": "-75.719", "media_url": "http://127.0.0.1:8311/attachments/7",
                           "jurisdiction_id": "bellerive.ca"}
    assert post.headers["idempotency-key"] == KEY


@pytest.mark.parametrize("description, sent", [
    ("", "[R-2026-4821735]"),
    ("x" * 5000, "[R-2026-4821735] " + "x" * (4000 - len("[R-2026-4821735] "))),  # GeoReport's maxLength
])
def test_description_starts_with_the_tracking_code_within_georeport_limit(server, summary, description, sent):
    Open311Sink(SETTINGS).deliver(replace(summary, description=description), target(server), KEY)
    assert server.to("/v2/requests.json")[0].form()["description"] == sent


def test_token_answer_is_kept_then_resolved(server, summary):
    server.tokens = True
    sink = Open311Sink(SETTINGS)
    receipt = sink.deliver(summary, target(server), "k")

    assert receipt.external_id == "token:tok-900001"
    assert sink.resolve_token(target(server), "tok-900001") is None  # not created yet on their side
    server.pending_tokens["tok-900001"] = "900001"
    assert sink.resolve_token(target(server), "tok-900001") == "900001"


def test_statuses_read_real_boston_records(server, summary):
    sink = Open311Sink(SETTINGS)
    rid = sink.deliver(summary, target(server), "k").external_id
    server.set_status(rid, "closed", RECORDS["closed"]["status_notes"])

    [status] = sink.statuses(target(server), [rid])

    assert status.status == "resolved" and status.remote == "closed"
    assert status.note.startswith("Case Closed. Case Noted.")
    assert server.to("/v2/requests.json")[-1].query == {"service_request_id": rid}


def test_updates_extension_maps_mysociety_statuses(server):
    server.update_items = [
        {"update_id": "2", "service_request_id": "900001", "status": "FIXED",
         "updated_datetime": "2026-11-22T11:00:00-05:00", "description": "Réparé"},
        {"update_id": "1", "service_request_id": "900001", "status": "IN_PROGRESS",
         "updated_datetime": "2026-11-22T10:00:00-05:00", "description": "Équipe en route"},
        {"update_id": "3", "service_request_id": "900002", "status": "NOT_COUNCILS_RESPONSIBILITY",
         "updated_datetime": "2026-11-22T12:00:00-05:00", "description": "Hydro"},
    ]
    since, until = datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)

    found = Open311Sink(SETTINGS).updates(target(server), since, until)

    assert [(f.service_request_id, f.status, f.note) for f in found] == [
        ("900001", "in_progress", "Équipe en route"), ("900001", "resolved", "Réparé"), ("900002", "rejected", "Hydro")]
    query = server.to("/v2/servicerequestupdates.xml")[0].query
    assert query["api_key"] == API_KEY and query["start_date"].startswith("2026-11-22T00:00")


@pytest.mark.parametrize("answer, error", [
    (Answer(400, [{"code": 400, "description": "Invalid service_code"}]), PermanentDeliveryError),
    (Answer(403, [{"code": 403, "description": "Invalid api_key"}]), PermanentDeliveryError),
    (Answer(500, "Internal error", {"Content-Type": "text/html"}), TransientDeliveryError),
    (Answer(429, "", {"Retry-After": "60"}), TransientDeliveryError),
    (Answer(201, "<html>not json</html>", {"Content-Type": "text/html"}), PermanentDeliveryError),
    (Answer(201, {"service_request_id": "1"}), PermanentDeliveryError),  # an object, not an array
    (Answer(201, [{"service_notice": "no id"}]), PermanentDeliveryError),
    (Answer(201, [{"service_request_id": "1"}], hang=2), TransientDeliveryError),
])
def test_post_failures_are_classified(server, summary, answer, error):
    server.fail_next("/v2/requests.json", answer)
    with pytest.raises(error):
        Open311Sink(SETTINGS, timeout=httpx.Timeout(1.0)).deliver(summary, target(server), "k")


@pytest.mark.parametrize("answer, error", [
    (Answer(200, "{not json"), PermanentDeliveryError),
    (Answer(200, [{"service_request_id": "900001"}]), PermanentDeliveryError),  # no status
    (Answer(502, ""), TransientDeliveryError),
    (Answer(200, [], hang=2), TransientDeliveryError),
])
def test_polling_failures_are_classified(server, answer, error):
    server.fail_next("/v2/requests.json", answer)
    with pytest.raises(error):
        Open311Sink(SETTINGS, timeout=httpx.Timeout(1.0)).statuses(target(server), ["900001"])


def test_malformed_updates_xml_is_a_clear_error(server):
    server.fail_next("/v2/servicerequestupdates.xml", Answer(200, "<service_requests_updates><request_update>"))
    with pytest.raises(PermanentDeliveryError, match="not XML"):
        Open311Sink(SETTINGS).updates(target(server), datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))


@pytest.mark.parametrize("settings, extra, message", [
    ({}, {}, "URBANISME_OPEN311_KEY is not set"),
    (SETTINGS, {"service_codes": {}}, "no service code for category 'pothole'"),
    (SETTINGS, {"endpoint": None}, "needs an 'endpoint'"),
])
def test_missing_settings_are_misconfiguration(server, summary, settings, extra, message):
    with pytest.raises(AdapterMisconfiguredError, match=message):
        Open311Sink(settings).deliver(summary, target(server, **extra), "k")
    assert server.requests == []


# --- exactly once: the Idempotency-Key header, and a retry's search for its earlier request ---

def methods(server) -> list[str]:
    return [r.method for r in server.to("/v2/requests.json")]


def test_retry_sends_the_same_idempotency_key(server, summary):
    server.fail_next("/v2/requests.json", Answer(503, "Service Unavailable", {"Content-Type": "text/plain"}))
    sink = Open311Sink(SETTINGS)
    with pytest.raises(TransientDeliveryError):
        sink.deliver(summary, target(server, attempt=1), KEY)

    receipt = sink.deliver(summary, target(server, attempt=2), KEY)

    assert receipt.external_id == "900001"
    assert methods(server) == ["POST", "GET", "POST"]  # the retry searched, found nothing, posted
    assert [r.headers["idempotency-key"] for r in server.to("/v2/requests.json") if r.method == "POST"] == [KEY, KEY]


def test_retry_after_the_connection_dropped_finds_the_created_request(server, summary):
    """The server created the request, then the connection dropped before its answer."""
    server.fail_next("/v2/requests.json", Answer(act=True, drop=True))
    sink, where = Open311Sink(SETTINGS), {"jurisdiction_id": "bellerive.ca"}
    with pytest.raises(TransientDeliveryError):
        sink.deliver(summary, target(server, attempt=1, **where), KEY)
    assert list(server.created) == ["900001"]

    receipt = sink.deliver(summary, target(server, attempt=2, **where), KEY)

    assert receipt.external_id == "900001" and list(server.created) == ["900001"]
    assert methods(server) == ["POST", "GET"]
    search = server.to("/v2/requests.json")[1].query
    assert {k: v for k, v in search.items() if k != "start_date"} == {
        "api_key": API_KEY, "service_code": "4f38920fe75084437f0001a0", "jurisdiction_id": "bellerive.ca"}
    since = datetime.now(UTC) - datetime.fromisoformat(search["start_date"])
    assert abs(since - LOOKBACK) < timedelta(minutes=1)


@pytest.mark.parametrize("answer", [
    Answer(404, [{"code": 404, "description": "not found"}]),  # a server without GET requests
    Answer(500, "Internal error", {"Content-Type": "text/html"}),
    Answer(200, "<html>Maintenance</html>", {"Content-Type": "text/html"}),
    Answer(200, [], hang=2),
])
def test_retry_posts_when_the_server_cannot_be_searched(server, summary, answer):
    server.fail_next("/v2/requests.json", answer)  # the search comes first

    receipt = Open311Sink(SETTINGS, timeout=httpx.Timeout(1.0)).deliver(summary, target(server, attempt=2), KEY)

    assert receipt.external_id == "900001" and methods(server) == ["GET", "POST"]


def test_retry_does_not_take_a_neighbouring_request_for_its_own(server, summary):
    sink = Open311Sink(SETTINGS)
    for code, description in (("R-2026-482173", summary.description), ("R-2026-48217350", summary.description),
                              ("R-2026-5550107", "Le trou est revenu, voir R-2026-4821735")):
        sink.deliver(replace(summary, code=code, description=description), target(server), f"{code}:route2:1:open311")

    receipt = sink.deliver(summary, target(server, attempt=2), KEY)

    assert receipt.external_id == "900004"
    assert server.created["900004"]["description"].startswith("[R-2026-4821735] ")


def test_unreadable_created_answer_is_delivered_when_the_request_is_found(server, summary):
    server.fail_next("/v2/requests.json", Answer(201, "<html>Created</html>", {"Content-Type": "text/html"}, act=True))

    receipt = Open311Sink(SETTINGS).deliver(summary, target(server), KEY)

    assert receipt.external_id == "900001" and list(server.created) == ["900001"]
    assert methods(server) == ["POST", "GET"]


def test_unreadable_answer_without_a_request_behind_it_stays_permanent(server, summary):
    server.fail_next("/v2/requests.json", Answer(201, "<html>Created</html>", {"Content-Type": "text/html"}))

    with pytest.raises(PermanentDeliveryError, match="not found by GET requests either"):
        Open311Sink(SETTINGS).deliver(summary, target(server), KEY)
    assert server.created == {} and methods(server) == ["POST", "GET"]


# --- through the outbox ----------------------------------------------------------------------

@pytest.fixture
def works_app(make_app, tmp_path, server):
    """Public works also delivers to the Open311 stand-in; the outbox's sweeper retries."""
    folder = works_with_open311(tmp_path / "config", server.endpoint, "URBANISME_OPEN311_KEY")
    return make_app(GATEWAY_CONFIG_DIR=str(folder), **SETTINGS)


def open311_delivery(runtime) -> Delivery | None:
    with runtime.db.session() as session:
        return session.scalar(select(Delivery).where(Delivery.target == "open311"))


def test_connection_dropped_after_the_department_created_it_delivers_once(works_app, server, auth):
    server.fail_next("/v2/requests.json", Answer(act=True, drop=True))
    runtime, client = works_app.extensions["runtime"], works_app.test_client()

    created = client.post("/api/v1/requests", json=load("request__pothole_fr"), headers=auth)
    assert created.status_code == 201
    code = created.get_json()["code"]
    delivery = wait_until(lambda: (d := open311_delivery(runtime)) and d.state == "delivered" and d, timeout=15)

    ours = [r for r in server.created.values() if r["description"].startswith(f"[{code}] ")]
    assert len(ours) == 1  # without the search, the retry would have created a second one
    assert delivery.external_id == ours[0]["service_request_id"] and delivery.attempts == 2
    posts = [r for r in server.to("/v2/requests.json") if r.method == "POST"]
    assert len(posts) == 1 and posts[0].headers["idempotency-key"] == delivery.idempotency_key
