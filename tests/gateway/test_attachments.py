"""Attachments given by URL (a Messenger photo, an MMS): fetched by a job, stored once."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import select

from gateway import attachments
from gateway.models import Attachment, Event, Message, Request
from tests.support.staff import submit


def test_two_workers_fetching_one_attachment_at_once_store_it_once(make_app, monkeypatch):
    """The job and the sweeper may both find a photo waiting: both download it, neither
    fails, the file is whole, and the history says once that it was stored."""
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    code = submit(runtime, {"channel": "web", "description": "Nid-de-poule devant le 12 rue des Pins",
                            "citizen": {"email": "photo@example.org"}})
    with runtime.db.session() as db:
        request = db.scalar(select(Request).where(Request.code == code))
        message = db.scalar(select(Message).where(Message.request_id == request.id))
        row = Attachment(request_id=request.id, message_id=message.id, filename="trou.jpg", content_type="image/jpeg",
                         source_url="http://127.0.0.1:9/trou.jpg", fetch_state="pending")
        db.add(row)
        db.flush()
        attachment_id, request_id = row.id, request.id
    both_downloading = threading.Barrier(2)

    class Photo:
        def fetch(self, url, limit):
            both_downloading.wait(10)  # each has seen it pending
            return b"\xff\xd8 jpeg " * 1000, "image/jpeg"

    monkeypatch.setattr(runtime, "inbound_parser", lambda channel: Photo())
    outcomes, errors = [], []

    def fetch():
        try:
            outcomes.append(attachments.fetch_attachment(runtime, attachment_id))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    workers = [threading.Thread(target=fetch) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(20)

    assert errors == [] and sorted(outcomes, key=str) == [None, "stored"]
    with runtime.db.session() as db:
        stored = db.get(Attachment, attachment_id)
        events = db.scalars(select(Event.type).where(Event.request_id == request_id,
                                                     Event.type == "attachment_stored")).all()
    assert stored.fetch_state == "stored" and Path(stored.storage_path).read_bytes() == b"\xff\xd8 jpeg " * 1000
    assert events == ["attachment_stored"]
    assert [p.name for p in Path(stored.storage_path).parent.iterdir()] == [Path(stored.storage_path).name]
