"""The webhooks' statements on the driver's own connection, and the batches' on their
session's (gateway/direct.py): the rows they store and the rows they read are what
SQLAlchemy's Connection stores and reads, on SQLite and (with ``--database postgresql``) on
PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, event, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from gateway import intake, tracking
from gateway.direct import InTransaction
from gateway.intake import insert_inbound, write
from gateway.models import Citizen, ContactPoint, Event, GivenCode, InboundMessage, Request
from gateway.webhooks.twilio import _OPEN_CONVERSATION

from ..support.servers import wait_until
from ..support.twilio import load, post, twilio_settings

SENDER = "+15145550142"
COLUMNS = "channel, provider_id, received_at, content_type, headers, body, state, attempts, reserved_code, sender"


@pytest.fixture
def sms_app(make_app):
    return make_app(**twilio_settings(None))


def _as_stored(runtime, provider_id: str) -> tuple:
    """The row as the database holds it, read with plain SQL (SQLite: the JSON and the time as text)."""
    with runtime.db.engine.connect() as connection:
        return tuple(connection.execute(text(f"SELECT {COLUMNS} FROM inbound_messages WHERE provider_id = :p"),
                                        {"p": provider_id}).one())


def test_a_webhooks_row_is_stored_exactly_as_sqlalchemy_stores_it(sms_app, monkeypatch):
    runtime = sms_app.extensions["runtime"]
    monkeypatch.setattr(intake, "utcnow", lambda: datetime(2026, 11, 24, 6, 30, 1, 123456, tzinfo=UTC))
    headers = {"X-Reference": "R-2026-0000042", "Note": "déjà reçu, ünïcode"}
    body = "Nid-de-poule devant le 12, rue Élisabeth \x01".encode()

    direct = write(runtime, lambda connection: insert_inbound(connection, "twilio_sms", "SM-direct", body,
                                                             "application/x-www-form-urlencoded", headers,
                                                             "R-2026-0000042", sender=SENDER))
    with runtime.db.engine.begin() as connection:  # the same through SQLAlchemy's own Connection
        through_sqlalchemy = insert_inbound(connection, "twilio_sms", "SM-sqlalchemy", body,
                                            "application/x-www-form-urlencoded", headers, "R-2026-0000042",
                                            sender=SENDER)

    assert direct.created and through_sqlalchemy.created and direct.id != through_sqlalchemy.id
    mine, theirs = _as_stored(runtime, "SM-direct"), _as_stored(runtime, "SM-sqlalchemy")
    assert mine[2:] == theirs[2:] and mine[0] == theirs[0]
    with runtime.db.session() as session:  # and the ORM reads it back as it was given
        row = session.get(InboundMessage, direct.id)
        assert (row.headers, row.body, row.received_at, row.sender, row.reserved_code, row.state) == (
            headers, body, datetime(2026, 11, 24, 6, 30, 1, 123456, tzinfo=UTC), SENDER, "R-2026-0000042", "received")

    retry = write(runtime, lambda connection: insert_inbound(connection, "twilio_sms", "SM-direct", b"again",
                                                            "application/x-www-form-urlencoded"))
    assert (retry.id, retry.created, retry.headers, retry.code) == (direct.id, False, headers, "R-2026-0000042")


def test_the_webhooks_reads_give_the_rows_sqlalchemy_gives(sms_app):
    runtime = sms_app.extensions["runtime"]
    client = sms_app.test_client()
    fixture = load("twilio_sms", "sms__pothole_fr")
    fixture = {**fixture, "params": {**fixture["params"], "From": SENDER}}
    assert post(client, fixture).status_code == 200

    def opened() -> bool:
        with runtime.db.session() as session:
            return session.scalar(select(Request.id)) is not None

    wait_until(opened, 20)
    with runtime.db.session() as session:
        request = session.scalar(select(Request))
        session.add(GivenCode(code="R-2026-0000007", request_id=request.id))
        code = request.code
    write(runtime, lambda connection: insert_inbound(connection, "twilio_sms", "SM-waiting", b"Body=encore",  # waiting
                                                     "application/x-www-form-urlencoded", {}, "R-2026-0000099",
                                                     sender=SENDER))
    asked = [(_OPEN_CONVERSATION, {"phone": SENDER, "sid": "SM-other"}),
             (intake._EXISTING, {"channel": "twilio_sms", "provider_id": "SM-waiting"}),
             (tracking._JOINED_CODE, {"code": "R-2026-0000007"}),
             (tracking._JOINED_CODE, {"code": "R-2026-0000008"})]

    connection = runtime.db.direct()
    with runtime.db.engine.connect() as theirs:
        for statement, parameters in asked:
            assert [tuple(row) for row in connection.execute(statement, parameters).all()] == \
                [tuple(row) for row in theirs.execute(statement, parameters).all()]

    conversation = connection.execute(*asked[0]).all()
    assert [row.code for row in conversation] == [code, "R-2026-0000099"]
    assert all(row.last_in.tzinfo is not None for row in conversation)
    assert connection.execute(*asked[1]).one().headers == {}
    assert tracking.joined_codes(connection, {"R-2026-0000007", "R-2026-0000008"}) == {"R-2026-0000007": code}


def test_a_statement_whose_sql_changes_with_its_values_is_refused(runtime):
    expanding = select(Request.id).where(Request.code.in_(bindparam("codes", expanding=True)))

    with pytest.raises(ValueError, match="expanding"):
        runtime.db.direct().execute(expanding, {"codes": ["R-1", "R-2"]})


def test_each_thread_keeps_its_connection_until_the_engine_is_disposed(runtime):
    mine = runtime.db.direct()
    theirs = []
    worker = threading.Thread(target=lambda: theirs.append(runtime.db.direct()))
    worker.start()
    worker.join()

    assert runtime.db.direct() is mine and theirs[0] is not mine
    runtime.db.engine.dispose()
    assert mine.closed and theirs[0].closed
    stored = write(runtime, lambda connection: insert_inbound(connection, "telegram", "7", b"{}", "application/json"))
    assert stored.created and runtime.db.direct() is not mine


# The batches' statements on their session's driver connection (``InTransaction``).

def _points(citizen_id: int, count: int, at: datetime) -> list[dict]:
    return [dict(citizen_id=citizen_id, kind="email", value=f"résident{i}@example.org", undeliverable=False,
                 opted_out=i % 2 == 1, created_at=at, last_inbound_at=None) for i in range(count)]


def _new_citizen(run, at: datetime) -> int:
    return run.execute(insert(Citizen.__table__).returning(Citizen.__table__.c.id),
                       dict(name="Aimée", language="fr", preferred_channel=None, consent=True, created_at=at)).scalar()


def test_rows_written_in_a_batchs_transaction_are_kept_or_undone_with_it(runtime):
    at = datetime(2026, 11, 24, 9, 30, 0, 5, tzinfo=UTC)
    statements = []
    event.listen(runtime.db.engine, "after_cursor_execute", lambda *args: statements.append(args[2]))
    with runtime.db.session() as session:
        run = InTransaction(session)
        kept = _new_citizen(run, at)
        with pytest.raises(RuntimeError), session.begin_nested():  # a message's SAVEPOINT, rolled back
            InTransaction(session).insert_many(ContactPoint.__table__, _points(kept, 3, at), ("id", "value"))
            raise RuntimeError("this message failed")
        ids = dict((row.value, row.id) for row in run.insert_many(ContactPoint.__table__, _points(kept, 250, at),
                                                                 ("value", "id")))
    with runtime.db.session() as session:
        undone = _new_citizen(InTransaction(session), at)
        session.rollback()

    with runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Citizen)) == 1
        assert session.get(Citizen, undone) is None and session.get(Citizen, kept).name == "Aimée"
        stored = {point.value: point for point in session.scalars(select(ContactPoint))}
    assert len(stored) == 250 and ids == {value: point.id for value, point in stored.items()}
    assert {(p.citizen_id, p.opted_out, p.created_at, p.undeliverable) for p in stored.values()} == {
        (kept, False, at, False), (kept, True, at, False)}
    # 250 points in three INSERTs of at most 100 rows; every one seen by the engine's listeners
    inserts = [sql for sql in statements if sql.startswith("INSERT INTO contact_points")]
    assert len(inserts) == 4 and [sql.count("VALUES") for sql in inserts] == [1, 1, 1, 1]


def test_a_batchs_rows_are_stored_exactly_as_sqlalchemy_stores_them(runtime):
    at = datetime(2026, 11, 24, 9, 30, 1, 123456, tzinfo=UTC)
    with runtime.db.session() as session:
        request = Request(code="R-2026-0000001", channel="web", description="Lampadaire éteint")
        session.add(request)
        session.flush()
        event = dict(request_id=request.id, at=at, actor="", type="note", public=True,
                     data={"note": "déjà signalé", "scores": [0.5, None]})
        InTransaction(session).executemany(insert(Event.__table__), [{**event, "actor": "direct"}] * 2)
        session.connection().execute(insert(Event.__table__), [{**event, "actor": "sqlalchemy"}])
        InTransaction(session).insert_many(Event.__table__, [{**event, "actor": "many"}], ("id",))

    with runtime.db.engine.connect() as connection:  # as the database holds them (SQLite: JSON and time as text)
        rows = connection.execute(text("SELECT actor, request_id, at, type, public, data FROM events ORDER BY id")).all()
    assert [row[0] for row in rows] == ["direct", "direct", "sqlalchemy", "many"]
    assert rows[0][1:] == rows[1][1:] == rows[2][1:] == rows[3][1:]
    with runtime.db.session() as session:  # and the ORM reads them back as given
        assert [(e.at, e.data, e.public) for e in session.scalars(select(Event))] == [(at, event["data"], True)] * 4


def test_a_column_whose_default_sqlalchemy_computes_must_be_given(runtime):
    rows = [{key: value for key, value in row.items() if key != "created_at"}
            for row in _points(1, 2, datetime(2026, 11, 24, tzinfo=UTC))]
    with runtime.db.session() as session:
        run = InTransaction(session)
        with pytest.raises(ValueError, match="created_at"):
            run.insert_many(ContactPoint.__table__, rows, ("id",))
        with pytest.raises(ValueError, match="same keys"):
            run.executemany(insert(Event.__table__), [dict(actor="a", type="t"), dict(type="t", actor="a")])
    with runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(ContactPoint)) == 0


def test_a_refused_row_is_sqlalchemys_integrity_error_and_its_savepoint_goes_on(runtime):
    """The batch processes a message again when another transaction wrote the same contact
    point meanwhile: it knows that refusal by SQLAlchemy's IntegrityError."""
    at = datetime(2026, 11, 24, tzinfo=UTC)
    with runtime.db.session() as session:
        run = InTransaction(session)
        citizen = _new_citizen(run, at)
        run.insert_many(ContactPoint.__table__, _points(citizen, 1, at), ("id",))
        with pytest.raises(IntegrityError), session.begin_nested():
            InTransaction(session).insert_many(ContactPoint.__table__, _points(citizen, 2, at), ("id",))
        run.insert_many(ContactPoint.__table__, [{**_points(citizen, 1, at)[0], "value": "autre@example.org"}], ("id",))
    with runtime.db.session() as session:
        assert sorted(session.scalars(select(ContactPoint.value))) == ["autre@example.org", "résident0@example.org"]
