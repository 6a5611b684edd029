"""Webhook intake on a real PostgreSQL: what the server receives per SMS, and a server that
restarts, drops the gateway's sessions or is down while webhooks arrive.

The intake writes on a connection of each thread's, without a pre-ping, a single INSERT in
autocommit (gateway/intake.py ``write``, gateway/direct.py): these tests check, on the server's own statement log, that an
SMS costs the look-up and the INSERT and nothing else, that the row is committed when the
answer is given, and that a dropped connection costs no webhook (it is replaced once) while a
server that is down gives a 5xx and stores nothing (the provider retries)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine, event, func, select, text

from gateway.intake import insert_inbound, write
from gateway.models import InboundMessage

from ..support.servers import wait_until
from ..support.twilio import load, post, twilio_settings

FIELDS = ("MessageSid", "SmsSid", "SmsMessageSid")


def sms(sid: int, name: str = "sms__pothole_fr", sender: str | None = None) -> dict:
    """The fixture with a MessageSid of its own (and another sender, to open another request)."""
    fixture = load("twilio_sms", name)
    params = {**fixture["params"], **{field: f"SM{sid:032d}" for field in FIELDS}}
    if sender:
        params["From"] = sender
    return {**fixture, "params": params}


def stored(url: str) -> list[tuple[str, dict]]:
    """What another connection sees in inbound_messages (committed rows only)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(
                select(InboundMessage.provider_id, InboundMessage.headers).order_by(InboundMessage.id))]
    finally:
        engine.dispose()


def admin(postgres_server, statement: str) -> None:
    engine = create_engine(postgres_server.url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(statement))
    engine.dispose()


@pytest.fixture
def pg_app(make_app, pg_url):
    app = make_app(DATABASE_URL=pg_url, **twilio_settings(None))
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a database error is answered 500, as in production
    return app


def _intake_backends(app) -> set[int]:
    """The server process ids of the intake's connections, as they are opened (checked out of
    the intake engine's pool once, then kept by their thread)."""
    pids: set[int] = set()
    event.listen(app.extensions["database"].intake_engine, "checkout",
                 lambda dbapi_connection, record, proxy: pids.add(dbapi_connection.info.backend_pid))
    return pids


def test_an_sms_costs_the_server_its_look_up_and_its_insert_and_is_committed_before_the_answer(
        pg_app, pg_url, postgres_server):
    name = pg_url.rsplit("/", 1)[1]
    admin(postgres_server, f"ALTER DATABASE {name} SET log_statement = 'all'")  # new sessions log every statement
    pids = _intake_backends(pg_app)
    client = pg_app.test_client()
    assert post(client, sms(99, sender="+15145550199")).status_code == 200  # the engine's first connect asks its own questions
    log = postgres_server.directory / "log"
    start = log.stat().st_size

    for sid in range(1, 6):
        answer = post(client, sms(sid, sender=f"+1514555{sid + 110:04d}"))
        assert answer.status_code == 200 and "R-" in answer.get_data(as_text=True)
        assert f"SM{sid:032d}" in [provider_id for provider_id, _ in stored(pg_url)]  # committed when answered
    retry = post(client, sms(5, sender="+15145550115"))

    assert retry.get_data(as_text=True) == answer.get_data(as_text=True)
    with log.open(encoding="utf-8", errors="replace") as lines:
        lines.seek(start)
        sent = [match.group(2) for line in lines
                if (match := re.search(r"\[(\d+)\] LOG:  (?:statement|execute [^:]*): (.*)", line))
                and int(match.group(1)) in pids]
    kinds = [statement.split()[0].upper().rstrip(";") or ";" for statement in sent]
    # Each new SMS: the open-conversation SELECT, then the INSERT in autocommit (its own durable
    # transaction); the retry reads the stored row back. No ping, no BEGIN, no COMMIT.
    assert kinds == ["SELECT", "INSERT"] * 5 + ["SELECT", "INSERT", "SELECT"], sent
    assert len(stored(pg_url)) == 6


def test_a_postgresql_restart_costs_no_webhook_once_the_server_is_back(pg_app, pg_url, postgres_server):
    client = pg_app.test_client()
    first = post(client, sms(1))
    assert first.status_code == 200

    postgres_server.pause()
    postgres_server.resume()  # every pooled connection is now dead

    second = post(client, sms(2, "sms__new_subject_fr"))
    retry = post(client, sms(2, "sms__new_subject_fr"))

    assert second.status_code == 200 and retry.get_data() == second.get_data()
    assert [provider_id for provider_id, _ in stored(pg_url)] == [f"SM{1:032d}", f"SM{2:032d}"]


def test_sessions_terminated_by_the_server_are_replaced_without_failing_the_webhook(pg_app, pg_url, postgres_server):
    client = pg_app.test_client()
    pids = _intake_backends(pg_app)
    assert post(client, sms(1)).status_code == 200
    assert pids

    name = pg_url.rsplit("/", 1)[1]
    admin(postgres_server, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")

    answer = post(client, sms(2, "sms__new_subject_fr"))

    assert answer.status_code == 200 and "R-" in answer.get_data(as_text=True)
    assert len(stored(pg_url)) == 2


def test_with_the_server_down_the_webhook_fails_5xx_and_twilios_retry_is_stored_once(pg_app, pg_url, postgres_server):
    client = pg_app.test_client()
    assert post(client, sms(1)).status_code == 200

    postgres_server.pause()
    try:
        down = post(client, sms(2, "sms__new_subject_fr"))
    finally:
        postgres_server.resume()
    later = post(client, sms(2, "sms__new_subject_fr"))  # Twilio retries a 5xx

    assert down.status_code == 500
    assert later.status_code == 200 and "R-" in later.get_data(as_text=True)
    assert [provider_id for provider_id, _ in stored(pg_url)] == [f"SM{1:032d}", f"SM{2:032d}"]
    runtime = pg_app.extensions["runtime"]  # and both are processed (the sweeper re-runs a job the outage failed)

    def processed() -> bool:
        with runtime.db.session() as session:
            return session.scalar(select(func.count()).select_from(InboundMessage)
                                  .where(InboundMessage.state == "processed")) == 2

    wait_until(processed, 20)


def test_a_batch_of_writes_stays_one_transaction_all_or_nothing(pg_app, pg_url):
    runtime = pg_app.extensions["runtime"]

    def two_then_fail(connection):  # a Messenger batch whose second event cannot be stored
        insert_inbound(connection, "messenger", "m.1", b"{}", "application/json")
        insert_inbound(connection, "messenger", "m.2", b"{}", "application/json")
        raise ValueError("the third one")

    with pytest.raises(ValueError):
        write(runtime, two_then_fail, single=False)
    assert stored(pg_url) == []

    write(runtime, lambda connection: [insert_inbound(connection, "messenger", f"m.{i}", b"{}", "application/json")
                                       for i in (1, 2)], single=False)
    assert [provider_id for provider_id, _ in stored(pg_url)] == ["m.1", "m.2"]
