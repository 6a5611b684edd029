"""A batch's shared writes: the whole batch claimed in one statement, the outcomes written
together before the commit, new citizens and requests written with Core, the batch's
tracking codes checked together. A message that fails after its rows were written is rolled
back alone (the ids of its rows are then reused by the next ones); the others are untouched."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from gateway import batch, claims, fresh, pipeline
from gateway.intake import store_inbound
from gateway.models import Citizen, ContactPoint, Delivery, Event, InboundMessage, Message, Request

from .test_pipeline_batch import _counts, _states, _store, break_the_router


@pytest.mark.errors_expected  # a message that raises on purpose
def test_a_message_failing_after_its_rows_were_written_leaves_nothing_and_the_rest_goes_on(make_app, monkeypatch):
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    ids = _store(runtime, 6, texts={2: "Lampadaire BOOM éteint depuis hier soir"})
    real_notify = pipeline.notify

    def notify(session, runtime_, request, *args, **kwargs):  # after the citizen, request, message, events
        if "BOOM" in request.description:
            raise RuntimeError("the template engine fell over")
        return real_notify(session, runtime_, request, *args, **kwargs)

    monkeypatch.setattr(pipeline, "notify", notify)
    deliveries, _ = batch.process_batch(runtime, ids, 10)

    states = _states(runtime, ids)
    assert states[ids[2]][:3] == ("received", 1, None)  # counted once, retried later
    assert all(states[i][0] == "processed" and states[i][1] == 1 for n, i in enumerate(ids) if n != 2)
    assert _counts(runtime) == (5, 10, 10) and len(deliveries) == 10
    with runtime.db.session() as session:  # nothing of it: its citizen, request, message, events rolled back
        assert session.scalar(select(func.count()).select_from(Citizen)) == 5
        assert session.scalar(select(func.count()).select_from(ContactPoint)) == 5
        assert session.scalar(select(func.count()).select_from(Message)) == 5
        assert session.scalar(select(func.count()).select_from(Event).where(Event.type == "received")) == 5
        error = session.scalar(select(InboundMessage.error).where(InboundMessage.id == ids[2]))
        assert error == "RuntimeError: the template engine fell over"
        # each processed message points to its own request, with its own citizen
        rows = session.execute(select(InboundMessage.id, Request.citizen_id, Request.description)
                               .join(Request, InboundMessage.request_id == Request.id)).all()
        assert len({row.citizen_id for row in rows}) == 5 and not any("BOOM" in row.description for row in rows)

    monkeypatch.setattr(pipeline, "notify", real_notify)
    more, _ = batch.process_batch(runtime, [ids[2]], 10)  # the retry: processed once
    assert _states(runtime, [ids[2]])[ids[2]][:2] == ("processed", 2)
    assert len(more) == 2 and _counts(runtime) == (6, 12, 12)


def test_two_messages_of_one_new_citizen_in_a_batch_make_one_citizen(make_app):
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    texts = {0: "Nid de poule profond devant le 12 rue Principale",
             1: "Graffiti sur le mur de la bibliothèque municipale"}
    ids = _store(runtime, 2, prefix="twice", texts=texts, senders=1)

    deliveries, _ = batch.process_batch(runtime, ids, 10)

    states = _states(runtime, ids)
    assert all(state[:2] == ("processed", 1) for state in states.values())
    assert len({state[2] for state in states.values()}) == 2  # two problems, two requests
    with runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Citizen)) == 1
        assert session.scalars(select(ContactPoint.value)).all() == ["twice0@example.org"]
        assert len(set(session.scalars(select(Request.citizen_id)))) == 1
    assert _counts(runtime) == (2, 4, 4) and len(deliveries) == 4


def test_the_batch_checks_its_tracking_codes_and_replaces_a_used_or_doubled_one(make_app, monkeypatch):
    """A reserved code a request already holds is replaced; two messages of one batch given
    the same new code meet the unique key: the second is processed again with another."""
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    first = _store(runtime, 1, prefix="first")
    batch.process_batch(runtime, first, 1)
    with runtime.db.session() as session:
        used = session.scalar(select(Request.code))
        session.execute(InboundMessage.__table__.insert().values(  # a message whose reserved code is taken
            channel="web_form", provider_id="reserved", body=json.dumps(
                {"channel": "web", "description": "Feu de circulation en panne au coin de la rue Principale",
                 "citizen": {"email": "reserved@example.org"}}).encode(),
            content_type="application/json", headers={}, state="received", attempts=0, reserved_code=used,
            received_at=session.scalar(select(InboundMessage.received_at))))
        reserved = session.scalar(select(InboundMessage.id).where(InboundMessage.provider_id == "reserved"))
    ids = _store(runtime, 3, prefix="same-code")
    real_new_code, given = fresh.new_code, []

    def new_code(prefix, year):  # the first two new codes the batch draws are the same
        given.append(1)
        return "R-2026-0000001" if len(given) <= 2 else real_new_code(prefix, year)

    def check_codes(session, prefix, claimed):  # in each try of the batch (straight through, which
        given.clear()  # meets the unique key; then again with a SAVEPOINT per message)
        return real_check_codes(session, prefix, claimed)

    real_check_codes = batch.check_codes
    monkeypatch.setattr(fresh, "new_code", new_code)
    monkeypatch.setattr(batch, "check_codes", check_codes)
    deliveries, _ = batch.process_batch(runtime, [reserved] + ids, 10)

    states = _states(runtime, [reserved] + ids)
    assert all(state[:2] == ("processed", 1) for state in states.values())
    with runtime.db.session() as session:
        codes = session.scalars(select(Request.code)).all()
        assert len(codes) == len(set(codes)) == 5 and "R-2026-0000001" in codes
        assert session.scalar(select(Request.code).where(Request.id == states[reserved][2])) != used
        keys = session.scalars(select(Delivery.idempotency_key)).all()
        assert len(keys) == len(set(keys)) and all(key.split(":")[0] in codes for key in keys)
    assert len(deliveries) == len(keys) - 2  # all but the first batch's two


@pytest.mark.errors_expected  # a message that raises on purpose
def test_an_unparseable_message_keeps_its_attempts_and_a_failing_one_counts_them(make_app, monkeypatch):
    """The claim is made for the whole batch, outside each message's SAVEPOINT: a message's
    outcome is still recorded as process_inbound records it alone."""
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    ids = _store(runtime, 3, texts={1: "Lampadaire BOOM éteint"})
    broken, _ = store_inbound(runtime, "web_form", "broken", b"{not json", "application/json")
    with runtime.db.session() as session:  # already tried three times, e.g. before a crash
        session.execute(InboundMessage.__table__.update().where(InboundMessage.id.in_([ids[1], broken]))
                        .values(attempts=claims.MAX_PROCESSING_ATTEMPTS - 1))
    break_the_router(monkeypatch)
    batch.process_batch(runtime, ids + [broken], 10)

    states = _states(runtime, ids + [broken])
    assert states[broken][:2] == ("failed", claims.MAX_PROCESSING_ATTEMPTS - 1)  # not counted: unparseable
    assert states[ids[1]][:2] == ("failed", claims.MAX_PROCESSING_ATTEMPTS)  # its last attempt: waits for an agent
    assert states[ids[0]][:2] == states[ids[2]][:2] == ("processed", 1)
    with runtime.db.session() as session:
        leases = session.scalars(select(InboundMessage.lease_until).where(InboundMessage.id.in_(ids + [broken])))
        assert all(lease is None for lease in leases)


def _submit(runtime, key: str, text: str, **citizen) -> int:
    document = {"channel": "web", "description": text, "citizen": citizen}
    inbound_id, _ = store_inbound(runtime, "web_form", key, json.dumps(document).encode(), "application/json")
    return inbound_id


def test_the_batch_reads_its_senders_once_and_still_finds_who_wrote_earlier_in_it(make_app, caplog):
    """The owners of the batch's contact points are read together; a point met earlier in the
    batch (a new citizen, a new phone for a known one) is looked up again, so nobody is doubled."""
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    known = _submit(runtime, "k0", "Nid de poule devant le 12 rue Principale", email="ana@example.org")
    batch.process_batch(runtime, [known], 1)
    ids = [
        _submit(runtime, "k1", "Graffiti sur le mur de la bibliothèque", email="ana@example.org"),
        _submit(runtime, "n1", "Lampadaire éteint rue des Érables", email="ben@example.org", phone="514 555 0101"),
        _submit(runtime, "n2", "Poubelle renversée au parc Central", phone="514 555 0101"),
        _submit(runtime, "k2", "Trottoir fissuré avenue du Lac", email="ana@example.org", phone="514 555 0102"),
        _submit(runtime, "k3", "Banc brisé au parc Riverain", phone="514-555-0102"),
    ]

    with caplog.at_level("INFO", logger="gateway.batch"):
        batch.process_batch(runtime, ids, 10)

    assert "processed again" not in caplog.text  # found, not met as a concurrent write and retried
    states = _states(runtime, [known] + ids)
    assert all(state[0] == "processed" for state in states.values())
    with runtime.db.session() as session:
        owner = dict(session.execute(select(Request.id, Request.citizen_id)).all())
        assert session.scalar(select(func.count()).select_from(Citizen)) == 2
        assert session.scalar(select(func.count()).select_from(ContactPoint)) == 4
    ana, ben = owner[states[known][2]], owner[states[ids[1]][2]]
    assert ana != ben
    assert [owner[states[i][2]] for i in ids] == [ana, ben, ben, ana, ana]
