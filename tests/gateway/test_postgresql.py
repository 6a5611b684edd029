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
