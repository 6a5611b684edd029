"""A second SMS that arrives before the first one is processed (a backlog on a storm day, or
two texts seconds apart): the first one's answer already gave the citizen a tracking code,
so the second is "added to" that code and joins that request, in whatever order the
pipeline's workers take the two."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gateway import batch, claims, deferral, pipeline
from gateway.models import InboundMessage, Message, Request

from ..support.twilio import load, post, twilio_settings
from .test_twilio_sms import code_in


class RecordingQueue:
    """No background work: the test runs the pipeline itself, in the order it wants."""

    def enqueue(self, job: str, item_id: int) -> None:
        pass

    def shutdown(self) -> None:
        pass


@pytest.fixture
def paused(make_app, twilio, monkeypatch):
    app = make_app(**twilio_settings(twilio))
    runtime = app.extensions["runtime"]
    runtime.jobs.shutdown()
    runtime.jobs = RecordingQueue()
    monkeypatch.setattr(deferral, "WAIT", deferral.WAIT * 0)  # taken again at once, not after the lease
    return app.test_client(), runtime


def _inbound_ids(runtime) -> list[int]:
    with runtime.db.session() as session:
        return list(session.scalars(select(InboundMessage.id).order_by(InboundMessage.id)))


def _requests(runtime) -> dict[str, int]:
    """Each request's code and the number of citizen messages on it."""
    with runtime.db.session() as session:
        return dict(session.execute(select(Request.code, func.count(Message.id)).outerjoin(
            Message, (Message.request_id == Request.id) & (Message.direction == "in")).group_by(Request.code)).all())


@pytest.mark.parametrize("order", ["as received", "second first"])
def test_a_follow_up_sent_before_the_first_sms_is_processed_joins_its_request(paused, order):
    client, runtime = paused
    first = post(client, load("twilio_sms", "sms__pothole_fr")).get_data(as_text=True)
    second = post(client, load("twilio_sms", "sms__followup_fr")).get_data(as_text=True)

    code = code_in(first)
    assert "ajouté à votre demande " + code in second  # told the code it already has
    ids = _inbound_ids(runtime)
    if order == "as received":
        batch.process_batch(runtime, ids, 20)
    else:  # another worker took the follow-up first: it waits for the first message
        assert pipeline.process_inbound(runtime, ids[1]) == []
        with runtime.db.session() as session:
            waiting = session.get(InboundMessage, ids[1])
            assert (waiting.state, waiting.attempts, waiting.request_id) == ("processing", 0, None)
        pipeline.process_inbound(runtime, ids[0])
        assert claims.pending_inbound(runtime) == [ids[1]]  # what the sweeper hands out again
        batch.process_batch(runtime, [ids[1]], 20)

    assert _requests(runtime) == {code: 2}
    with runtime.db.session() as session:
        assert set(session.scalars(select(InboundMessage.state))) == {"processed"}


def test_a_waiting_first_sms_about_another_subject_does_not_capture_the_second(paused):
    client, runtime = paused
    first = code_in(post(client, load("twilio_sms", "sms__pothole_fr")).get_data(as_text=True))
    second = code_in(post(client, load("twilio_sms", "sms__new_subject_fr")).get_data(as_text=True))

    assert second != first
    batch.process_batch(runtime, _inbound_ids(runtime), 20)
    assert _requests(runtime) == {first: 1, second: 1}


def test_a_follow_up_does_not_wait_for_a_first_sms_that_failed(paused):
    """The first message failed for good: the follow-up is done alone (a new request, whose
    acknowledgement goes out by SMS), not kept waiting."""
    client, runtime = paused
    post(client, load("twilio_sms", "sms__pothole_fr"))
    post(client, load("twilio_sms", "sms__followup_fr"))
    ids = _inbound_ids(runtime)
    with runtime.db.session() as session:
        session.get(InboundMessage, ids[0]).state = "failed"

    batch.process_batch(runtime, [ids[1]], 20)

    with runtime.db.session() as session:
        follow_up = session.get(InboundMessage, ids[1])
        assert (follow_up.state, follow_up.request_id is not None) == ("processed", True)
