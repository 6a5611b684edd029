"""The same migrations and the same flow on a real PostgreSQL (the production database)."""

from __future__ import annotations

import json

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


def test_ids_longer_than_postgresql_columns_are_refused_with_a_clear_error(make_app, pg_url, auth):
    """PostgreSQL enforces the provider id's 255 characters (SQLite would not): an overlong
    Idempotency-Key, Telegram update_id or Twilio MessageSid is a 4xx naming it, nothing
    stored, where it was a driver error (500)."""
    from urllib.parse import urlencode

    from sqlalchemy import func, select

    from gateway.models import InboundMessage

    from ..support.twilio import PUBLIC_URL, twilio_settings
    from ..support.twilio import sign as twilio_sign

    app = make_app(DATABASE_URL=pg_url, TELEGRAM_BOT_TOKEN="5550199:pg", TELEGRAM_SECRET_TOKEN="pg-secret",
                   **twilio_settings(None))
    client = app.test_client()
    fine = {"description": "Nid de poule devant le 12 rue Principale"}
    update = {"update_id": int("9" * 300), "message": {"message_id": 1, "date": 1764000000, "text": "Nid de poule",
                                                        "chat": {"id": 5550100, "type": "private"},
                                                        "from": {"id": 5550100, "is_bot": False, "first_name": "A"}}}
    sms = {"MessageSid": "SM" + "1" * 400, "AccountSid": "AC" + "0" * 32, "From": "+15145550123",
           "To": "+18195550100", "Body": "Nid de poule rue Principale", "NumMedia": "0"}

    def stored():
        with app.extensions["runtime"].db.session() as session:
            return session.scalar(select(func.count()).select_from(InboundMessage))

    before = stored()
    key = client.post("/api/v1/requests", json=fine, headers={**auth, "Idempotency-Key": "k" * 300})
    assert (key.status_code, key.get_json()["field"]) == (422, "Idempotency-Key")
    telegram = client.post("/webhooks/telegram", data=json.dumps(update), content_type="application/json",
                           headers={"X-Telegram-Bot-Api-Secret-Token": "pg-secret"})
    assert telegram.status_code == 400
    twilio = client.post("/webhooks/twilio/sms", data=urlencode(sms), content_type="application/x-www-form-urlencoded",
                         headers={"X-Twilio-Signature": twilio_sign(PUBLIC_URL + "/webhooks/twilio/sms", sms)})
    assert twilio.status_code == 400
    assert stored() == before
    assert client.post("/api/v1/requests", json=fine, headers={**auth, "Idempotency-Key": "k" * 200}).status_code == 201


def _email(subject: str, sender: str, name: str, message_id: str) -> bytes:
    from email.message import EmailMessage

    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"], mail["Message-ID"] = f"{name} <{sender}>", "311@ville.example", \
        subject, message_id
    mail.set_content("Nid de poule profond devant le 12 rue Principale, une roue y est restée.")
    return mail.as_bytes()


def test_citizen_text_longer_than_its_column_becomes_a_request_on_postgresql(make_app, pg_url):
    """An e-mail's 400-character subject or 300-character display name, or a 150-digit house
    number, is the citizen's to write; PostgreSQL refuses what exceeds a column where SQLite
    stores it. The request is made with the text cut to fit ("…"), not failed at every retry.
    A sender address longer than any real one is refused once, with a clear error."""
    from sqlalchemy import select

    from gateway import batch
    from gateway.intake import store_inbound
    from gateway.models import Citizen, InboundMessage, Request

    runtime = make_app(DATABASE_URL=pg_url, GATEWAY_INLINE_JOBS=False).extensions["runtime"]  # no sweeper racing
    long_subject = "Nid de poule énorme " * 20
    ids = [store_inbound(runtime, "email", f"<{i}@example.org>", body, "message/rfc822")[0] for i, body in enumerate([
        _email(long_subject, "a@example.org", "Jean", "<1@example.org>"),
        _email("Nid de poule", "b@example.org", "N" * 300, "<2@example.org>"),
        _email("Nid de poule", "c" * 300 + "@example.org", "Jean", "<3@example.org>"),
    ])]
    ids.append(store_inbound(runtime, "web_form", "house-number", json.dumps(
        {"channel": "web", "description": "Nid de poule profond", "location": {"address": "1" * 150 + " rue Principale"},
         "citizen": {"email": "d@example.org"}}).encode(), "application/json")[0])
    batch.process_batch(runtime, ids, len(ids))
    with runtime.db.session() as session:
        states = {row.id: (row.state, row.attempts, row.error) for row in session.execute(
            select(InboundMessage.id, InboundMessage.state, InboundMessage.attempts, InboundMessage.error))}
        subject = session.scalar(select(Request.subject).join(InboundMessage, InboundMessage.request_id == Request.id)
                                 .where(InboundMessage.id == ids[0]))
        name = session.scalar(select(Citizen.name).join(Request).join(InboundMessage, InboundMessage.request_id == Request.id)
                              .where(InboundMessage.id == ids[1]))
        address = session.scalar(select(Request.address).join(InboundMessage, InboundMessage.request_id == Request.id)
                                 .where(InboundMessage.id == ids[3]))
    assert [states[i][0] for i in ids] == ["processed", "processed", "failed", "processed"]
    assert (len(subject), subject[-1]) == (300, "…") and long_subject.startswith(subject[:-1])
    assert name == "N" * 199 + "…"
    assert address == "1" * 150 + " rue Principale"
    assert states[ids[2]][1:] == (0, "the sender's email is longer than 255 characters")
