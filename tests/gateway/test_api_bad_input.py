"""Bad input to the JSON API: a clear 4xx naming the field, and nothing stored."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from gateway.models import InboundMessage, Request

GOOD = {"description": "Lampadaire brûlé devant le 12 rue des Érables", "citizen": {"email": "a@example.org"}}


def stored(runtime) -> tuple[int, int]:
    with runtime.db.session() as session:
        return (session.scalar(select(func.count(InboundMessage.id))), session.scalar(select(func.count(Request.id))))


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"citizen": {"email": "a@example.org"}}, 422, "description"),
        ({"description": ""}, 422, "description"),
        ({"description": "   "}, 422, "description"),
        ({"description": 42}, 422, "description"),
        ({"description": "x" * 10_001}, 422, "description"),
        ({"description": "ok", "category": "unicorns"}, 422, "category"),
        ({"description": "ok", "language": "de"}, 422, "language"),
        ({"description": "ok", "channel": "carrier_pigeon"}, 422, "channel"),
        ({"description": "ok", "citizen": {"email": "not-an-address"}}, 422, "citizen.email"),
        ({"description": "ok", "citizen": {"phone": "call me maybe"}}, 422, "citizen.phone"),
        ({"description": "ok", "location": {"lat": "north", "lon": 2}}, 422, "location.lat"),
        ({"description": "ok", "location": {"lat": 95.0, "lon": 2.0}}, 422, "location.lat"),
        ({"description": "ok", "surprise": True}, 422, "surprise"),
        (["description", "ok"], 400, "body"),
    ],
)
def test_invalid_submission_names_field_and_stores_nothing(client, runtime, auth, body, status, field):
    response = client.post("/api/v1/requests", json=body, headers=auth)

    assert response.status_code == status
    assert response.get_json()["field"] == field
    assert stored(runtime) == (0, 0)


def test_body_that_is_not_json_is_rejected(client, runtime, auth):
    response = client.post("/api/v1/requests", data=b"{not json", headers={**auth, "Content-Type": "application/json"})

    assert response.status_code == 400
    assert stored(runtime) == (0, 0)


def test_unsupported_media_type_is_rejected(client, runtime, auth):
    response = client.post("/api/v1/requests", data="description=hello", headers={**auth, "Content-Type": "application/x-www-form-urlencoded"})

    assert response.status_code == 415
    assert stored(runtime) == (0, 0)


def test_body_over_one_megabyte_is_rejected(client, runtime, auth):
    huge = json.dumps({"description": "x" * (1024 * 1024 + 10)})

    response = client.post("/api/v1/requests", data=huge, headers={**auth, "Content-Type": "application/json"})

    assert response.status_code == 413
    assert "too large" in response.get_json()["error"]
    assert stored(runtime) == (0, 0)


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic dXNlcjpwYXNz", "Bearer "])
def test_missing_or_wrong_token_is_401(client, runtime, header):
    headers = {"Authorization": header} if header else {}

    assert client.post("/api/v1/requests", json=GOOD, headers=headers).status_code == 401
    assert client.get("/api/v1/requests/R-2026-0000000", headers=headers).status_code == 401
    assert stored(runtime) == (0, 0)


def test_api_without_configured_token_refuses_everyone(make_app):
    client = make_app(GATEWAY_API_TOKEN=None).test_client()

    assert client.post("/api/v1/requests", json=GOOD, headers={"Authorization": "Bearer None"}).status_code == 401


def test_unknown_code_is_404_in_api_and_on_tracking_page(client, auth):
    assert client.get("/api/v1/requests/R-2026-1234567", headers=auth).status_code == 404
    page = client.get("/track/R-2026-1234567?lang=en")
    assert page.status_code == 404
    assert "does not exist" in page.get_data(as_text=True)


def test_resent_submission_with_same_idempotency_key_creates_one_request(client, runtime, auth):
    headers = {**auth, "Idempotency-Key": "city-crm-7781"}

    first = client.post("/api/v1/requests", json=GOOD, headers=headers)
    second = client.post("/api/v1/requests", json=GOOD, headers=headers)

    assert first.status_code == 201 and second.status_code == 200
    assert first.get_json()["code"] == second.get_json()["code"]
    assert stored(runtime) == (1, 1)
