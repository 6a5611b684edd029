"""Open311 sink: POST to a department's GeoReport v2 stand-in, tokens, polling, failures."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from adapters.errors import (
    AdapterMisconfiguredError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from adapters.sinks.open311 import Open311Sink

from ..conftest import FIXTURES
from ..support.standins import Answer, Open311StandIn

API_KEY = "dept-api-key"
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
    receipt = Open311Sink(SETTINGS).deliver(summary, target(server, jurisdiction_id="bellerive.ca"), "k")

    assert receipt.external_id == "900001"
    form = server.to("/v2/requests.json")[0].form()
    assert form == {"api_key": API_KEY, "service_code": "4f38920fe75084437f0001a0",
                    "description": "Gros nid-de-poule devant le 145 rue Wellington.",
                    "address_string": "145, rue Wellington", "attribute[gateway_code]": "R-2026-4821735",
                    "lat": "45.4405", "long": "-75.719", "media_url": "http://127.0.0.1:8311/attachments/7",
                    "jurisdiction_id": "bellerive.ca"}


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
