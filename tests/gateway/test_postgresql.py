"""The same migrations and the same flow on a real PostgreSQL (the production database)."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect

from tests.support.servers import wait_until


def test_migrations_create_every_table_on_postgresql(pg_url):
    engine = create_engine(pg_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"requests", "inbound_messages", "citizens", "contact_points", "messages", "events",
            "deliveries", "attachments", "followers", "users", "alembic_version"} <= tables


def test_request_flow_on_postgresql(make_app, pg_url, smtp_server, auth):
    client = make_app(DATABASE_URL=pg_url).test_client()
    body = {"description": "Refoulement d'égout dans mon sous-sol depuis ce matin",
            "citizen": {"email": "sous-sol@example.org", "phone": "514-555-0199"}}

    created = client.post("/api/v1/requests", json=body, headers=auth)

    assert created.status_code == 201
    assert created.get_json()["category"] == "sewer_backup"
    assert created.get_json()["priority"] == "urgent"
    wait_until(lambda: smtp_server.to("aqueduc@bellerive.example.org"))
    wait_until(lambda: smtp_server.to("sous-sol@example.org"))
    detail = client.get(f"/api/v1/requests/{created.get_json()['code']}", headers=auth).get_json()
    assert detail["sla_due_at"].endswith("Z")
    assert [e["type"] for e in detail["events"]][:4] == ["received", "normalized", "dedup", "routed"]

    again = client.post("/api/v1/requests", json=body, headers={**auth, "Idempotency-Key": "k1"})
    same = client.post("/api/v1/requests", json=body, headers={**auth, "Idempotency-Key": "k1"})
    assert again.get_json()["code"] == same.get_json()["code"]


def test_a_nul_character_is_refused_at_the_door_on_postgresql(make_app, pg_url, auth):
    """PostgreSQL's text cannot hold U+0000: a request carrying one (a forged code in a URL,
    a sign-in, an Idempotency-Key, a JSON or form field) is answered 400 and stores nothing,
    instead of failing in the driver (a 500) or leaving a message the pipeline can never store."""
    from sqlalchemy import func, select

    from gateway.models import Citizen, InboundMessage, Request

    app = make_app(DATABASE_URL=pg_url)
    app.config["WTF_CSRF_ENABLED"] = False  # reach the forms themselves
    client = app.test_client()
    fine = {"description": "Nid de poule devant le 12 rue Principale", "citizen": {"email": "ok@example.org"}}
    sends = [
        lambda: client.get("/track/R-2026-%00"),
        lambda: client.get("/api/v1/requests/R-%00", headers=auth),
        lambda: client.post("/inbox/login", data={"email": "agent\x00@example.org", "password": "x"}),
        lambda: client.get("/open311/v2/requests.json", query_string={"service_request_id": "R\x00"}),
        lambda: client.post("/api/v1/requests", json=fine, headers={**auth, "Idempotency-Key": "k\x00"}),
        lambda: client.post("/api/v1/requests", json={**fine, "citizen": {"email": "a\x00@example.org"}}, headers=auth),
        lambda: client.post("/report", data={"description": fine["description"], "email": "a\x00@example.org",
                                             "preferred_channel": "email"}),
    ]

    def stored():
        with app.extensions["runtime"].db.session() as session:
            return [session.scalar(select(func.count()).select_from(m)) for m in (InboundMessage, Request, Citizen)]

    before = stored()
    for send in sends:
        response = send()
        assert response.status_code == 400, response.get_data()[:200]
    assert client.get("/api/v1/requests/R-%00", headers=auth).get_json() == {
        "error": "a NUL character (U+0000) is not allowed in a request"}
    assert stored() == before
    assert client.post("/api/v1/requests", json=fine, headers=auth).status_code == 201  # the same, without it
