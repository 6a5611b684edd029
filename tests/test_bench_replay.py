"""The replay generator the benchmarks (and others) reuse: real Boston requests replayed into
the sample city. Correctness only; `make bench` measures speed."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from adapters.channels.web_form import validate
from gateway import pipeline
from gateway.models import InboundMessage, Request
from tests.bench import replay


def use_sample_only(monkeypatch):
    monkeypatch.setattr(replay, "SHARED", replay.SAMPLE.parent / "absent")  # boston_sample.json


def test_generated_requests_are_valid_submissions_inside_the_city(monkeypatch):
    use_sample_only(monkeypatch)
    base = replay.records()
    produced = list(replay.documents(3 * len(base)))

    assert len(base) == 287
    times = [at for _, at in produced]
    assert times == sorted(times) and (times[-1] - times[0]).days >= 360
    for body, _ in produced:
        submission = validate(body)  # the gateway's own intake format, strictly checked
        if submission.location.lon is not None:
            assert replay.CITY[0] <= submission.location.lon <= replay.CITY[1]
            assert replay.CITY[2] <= submission.location.lat <= replay.CITY[3]
    first, repeated = json.loads(produced[0][0]), json.loads(produced[len(base)][0])
    assert first["description"] == repeated["description"] == base[0]["description"].strip()
    assert first["location"] != repeated["location"]  # the same words, shifted in space


def test_bulk_inserted_requests_go_through_the_pipeline(monkeypatch, make_app):
    use_sample_only(monkeypatch)
    # No sweeper thread: it would process the other 25 stored messages behind the test's back.
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    ids = replay.insert_inbound(runtime.db.engine, 30)
    again = replay.insert_inbound(runtime.db.engine, 5, tag="second")

    assert len(ids) == 30 and len(again) == 5 and not set(ids) & set(again)
    for inbound_id in ids[:10]:
        pipeline.process_inbound(runtime, inbound_id)
    with runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 35
        linked = session.scalar(select(func.count()).select_from(InboundMessage).where(
            InboundMessage.state == "processed", InboundMessage.request_id.is_not(None)))
        requests = list(session.scalars(select(Request)))
        assert linked == 10 and 1 <= len(requests) <= 10
        assert all(r.department and r.code for r in requests)
        assert any(r.district for r in requests)  # moved into Bellerive's districts
