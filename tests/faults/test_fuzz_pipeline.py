"""Bad input that gets in: what the doors accept, the pipeline must finish with.

`test_fuzz.py` checks the doors (no 5xx, a refusal stores nothing). A payload a door accepts
is stored and answered before anything reads it; if the pipeline then raises on it, the
message is retried and fails five times, and the citizen's request is never made. Here the
same kind of mutated real payloads, correctly signed (so they get in), are stored through
each door and then processed, on SQLite and on PostgreSQL (stricter: bounded VARCHARs, no
NUL, 32-bit integers). For every example: the pipeline does not raise, and every stored
message ends processed, ignored, or failed at once as unreadable (its attempts uncounted:
a clear refusal, not a crash).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gateway import pipeline
from gateway.intake import store_inbound
from gateway.models import InboundMessage

from ..conftest import API_TOKEN, FIXTURES
from ..support.twilio import PUBLIC_URL, twilio_settings
from ..support.twilio import sign as twilio_sign
from .test_fuzz import (
    FUZZ,
    MESSENGER_SECRET,
    OPEN311_KEY,
    TELEGRAM_SECRET,
    RecordingQueue,
    fixture_documents,
    mutated,
    open311_fields,
)

PIPELINE_FUZZ = settings(FUZZ, max_examples=60)  # the fuzz settings, fewer examples (each runs the pipeline)
ENDED = {"processed", "ignored", "failed"}
long_text = st.text(max_size=120) | st.text(min_size=190, max_size=420)  # around the columns' lengths


@pytest.fixture(params=["sqlite", "postgresql"])
def pipeline_app(request, make_app):
    database = {"DATABASE_URL": request.getfixturevalue("pg_url")} if request.param == "postgresql" else {}
    app = make_app(**database, **twilio_settings(None), MESSENGER_APP_SECRET=MESSENGER_SECRET,
                   MESSENGER_VERIFY_TOKEN="v", MESSENGER_PAGE_TOKEN="p", TELEGRAM_BOT_TOKEN="5550199:fuzz",
                   TELEGRAM_SECRET_TOKEN=TELEGRAM_SECRET, OPEN311_API_KEY=OPEN311_KEY)
    runtime = app.extensions["runtime"]
    runtime.jobs.shutdown()
    runtime.jobs = RecordingQueue()  # the test runs the pipeline itself; deliveries are only queued
    return app


def _last_id(runtime) -> int:
    with runtime.db.session() as session:
        return session.scalar(select(func.max(InboundMessage.id))) or 0


def through_the_pipeline(app, store) -> None:
    """``store()`` one payload (through a door); every message it stored is processed (the
    API, forms and Open311 have already run it inline), and must end without a crash."""
    runtime = app.extensions["runtime"]
    before = _last_id(runtime)
    response = store()
    assert getattr(response, "status_code", 200) < 500
    with runtime.db.session() as session:
        stored = list(session.scalars(select(InboundMessage.id).where(InboundMessage.id > before)))
    for inbound_id in stored:
        pipeline.process_inbound(runtime, inbound_id)  # an unexpected error is raised here: the test fails on it
    with runtime.db.session() as session:
        for row in session.scalars(select(InboundMessage).where(InboundMessage.id > before)):
            assert row.state in ENDED and not (row.state == "failed" and row.attempts), (row.state, row.error)


@PIPELINE_FUZZ
@given(data=st.data())
def test_signed_sms_that_get_in_are_processed(pipeline_app, data):
    params = dict(data.draw(st.sampled_from(fixture_documents("twilio_sms", "params"))))
    for key in ("Body", "From", "MessageSid", "NumMedia", "MediaUrl0", "MediaContentType0"):
        if data.draw(st.integers(0, 3)) == 0:
            params[key] = data.draw(long_text)
    params = {k: v.replace("\x00", "") for k, v in params.items()}
    path = "/webhooks/twilio/sms"
    through_the_pipeline(pipeline_app, lambda: pipeline_app.test_client().post(
        path, data=urlencode(params), content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": twilio_sign(PUBLIC_URL + path, params)}))


@PIPELINE_FUZZ
@given(document=st.sampled_from(fixture_documents("messenger")).flatmap(mutated))
def test_signed_messenger_events_that_get_in_are_processed(pipeline_app, document):
    body = json.dumps(document).encode()
    digest = hmac.new(MESSENGER_SECRET.encode(), body, hashlib.sha256).hexdigest()
    through_the_pipeline(pipeline_app, lambda: pipeline_app.test_client().post(
        "/webhooks/messenger", data=body, content_type="application/json",
        headers={"X-Hub-Signature-256": f"sha256={digest}"}))


@PIPELINE_FUZZ
@given(document=st.sampled_from(fixture_documents("telegram")).flatmap(mutated))
def test_telegram_updates_that_get_in_are_processed(pipeline_app, document):
    through_the_pipeline(pipeline_app, lambda: pipeline_app.test_client().post(
        "/webhooks/telegram", data=json.dumps(document), content_type="application/json",
        headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}))


@PIPELINE_FUZZ
@given(document=st.sampled_from(fixture_documents("web_form")).flatmap(mutated), fields=open311_fields)
def test_api_and_open311_requests_that_get_in_are_processed(pipeline_app, document, fields):
    client = pipeline_app.test_client()
    through_the_pipeline(pipeline_app, lambda: client.post(
        "/api/v1/requests", json=document, headers={"Authorization": f"Bearer {API_TOKEN}"}))
    through_the_pipeline(pipeline_app, lambda: client.post(
        "/open311/v2/requests.json", data={**fields, "api_key": OPEN311_KEY}))


EMAILS = sorted((FIXTURES / "email").glob("*.eml"))
EMAIL_PIECES = [b"\r\n", b"\n\n", b"=?utf-8?b?", b"=?iso-8859-1?q?=E9t=E9?=", b"?=", b"--", b"\xff\xfe\x00",
                b"Content-Type: multipart/mixed; boundary=x\r\n", b'charset="unknown-8bit"',
                b"Subject: " + b"Nid de poule " * 30 + b"\r\n", b"From: " + b"n" * 300 + b"@example.org\r\n"]


@st.composite
def mutated_email(draw) -> bytes:
    """A real e-mail with a few byte runs inserted, deleted or overwritten."""
    data = bytearray(draw(st.sampled_from(EMAILS)).read_bytes())
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data)))
        piece = draw(st.sampled_from(EMAIL_PIECES) | st.binary(min_size=1, max_size=40))
        operation = draw(st.integers(0, 2))
        if operation == 0:
            data[at:at] = piece
        elif operation == 1:
            del data[at:at + len(piece)]
        else:
            data[at:at + len(piece)] = piece
    return bytes(data)


@PIPELINE_FUZZ
@given(raw=mutated_email())
def test_emails_as_the_poller_stores_them_are_processed(pipeline_app, raw):
    runtime = pipeline_app.extensions["runtime"]
    key = hashlib.sha256(raw).hexdigest()
    through_the_pipeline(pipeline_app, lambda: store_inbound(runtime, "email", key, raw, "message/rfc822"))


# --- what random runs of this pass found (each failed the pipeline at every retry before) ----------

def _mail(*lines: bytes, body: bytes = b"Nid de poule devant le 12 rue Principale.") -> bytes:
    """An e-mail with ``lines`` among its headers (replacing the usual ones of the same name)."""
    given = {line.split(b":")[0].lower() for line in lines}
    usual = [b"From: Jean <jean@example.org>", b"To: 311@ville.example", b"Subject: Nid de poule",
             b"Message-ID: <found@example.org>"]
    head = [line for line in usual if line.split(b":")[0].lower() not in given] + list(lines)
    return b"\r\n".join(head) + b"\r\n\r\n" + body + b"\r\n"


MULTIPART = b'Content-Type: multipart/mixed; boundary="b"'
FOUND_EMAILS = {
    # a raw 8-bit byte in a part's header: the parser gave an email.header.Header, not text
    "8-bit Content-Disposition": _mail(MULTIPART, body=b'--b\r\nContent-Type: text/plain\r\n\r\nNid de poule rue '
                                       b'Principale\r\n--b\r\nContent-Type: text/plain\r\nContent-Disposition: '
                                       b'attachment; filename="caf\xe9.txt"\r\n\r\nbonjour\r\n--b--'),
    "encoded word in a charset not ASCII": _mail(b"Subject: =?\xb5\xf7dows-1250?q?caf=E9?= nid"),
    "NUL in the charset label": _mail(b'Content-Type: text/plain; charset="utf\x00-8"'),
    "NUL in the Message-ID": _mail(b"Message-ID: <12345@example.\x00com>"),
    "NUL in an attachment's content type": _mail(MULTIPART, body=b"--b\r\nContent-Type: text/plain\r\n\r\nNid de "
                                                b"poule\r\n--b\r\nContent-Type: text/x-\x00log\r\nContent-Disposition: "
                                                b"attachment; filename=a.log\r\n\r\nhello there\r\n--b--"),
    "NUL in the error it is refused with": _mail(b"Content-Type: multipart/report; report-type=feedbac\x00k-report; "
                                                 b'boundary="b"', body=b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--"),
}


@pytest.mark.parametrize("raw", FOUND_EMAILS.values(), ids=FOUND_EMAILS.keys())
def test_emails_the_random_pass_found(pipeline_app, raw):
    runtime = pipeline_app.extensions["runtime"]
    through_the_pipeline(pipeline_app, lambda: store_inbound(runtime, "email", hashlib.sha256(raw).hexdigest(), raw,
                                                             "message/rfc822"))


TELEGRAM_MESSAGE = {"message_id": 7, "date": 1764000000, "chat": {"id": 5550100, "type": "private"},
                    "from": {"id": 5550100, "is_bot": False, "first_name": "A"}, "text": "Nid de poule rue Principale"}
FOUND_UPDATES = {
    "a text that is a list": {**TELEGRAM_MESSAGE, "text": ["Nid de poule"]},
    "a latitude that is an object": {**TELEGRAM_MESSAGE, "location": {"latitude": {"a": 1}, "longitude": -75.7}},
    "a date past what the clock can hold": {**TELEGRAM_MESSAGE, "date": 10**20},
    "a first name that is an object": {**TELEGRAM_MESSAGE, "from": {"id": 5550100, "is_bot": False,
                                                                  "first_name": {"a": 1}}},
}


@pytest.mark.parametrize("message", FOUND_UPDATES.values(), ids=FOUND_UPDATES.keys())
def test_telegram_updates_the_random_pass_found(pipeline_app, message):
    through_the_pipeline(pipeline_app, lambda: pipeline_app.test_client().post(
        "/webhooks/telegram", json={"update_id": 9001, "message": message},
        headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}))


FOUND_EVENTS = {
    "a postback that is a list": {"postback": ["TRACK_REQUEST"]},
    "an attachment type that is an object": {"message": {"mid": "m.found", "text": "Nid de poule",
                                                         "attachments": [{"type": {"a": 1}, "payload": {"url": "x"}}]}},
}


@pytest.mark.parametrize("event", FOUND_EVENTS.values(), ids=FOUND_EVENTS.keys())
def test_messenger_events_the_random_pass_found(pipeline_app, event):
    body = json.dumps({"object": "page", "entry": [{"id": "PAGE", "time": 1764000000, "messaging": [
        {"sender": {"id": "5550100"}, "recipient": {"id": "PAGE"}, "timestamp": 1764000000, **event}]}]}).encode()
    digest = hmac.new(MESSENGER_SECRET.encode(), body, hashlib.sha256).hexdigest()
    through_the_pipeline(pipeline_app, lambda: pipeline_app.test_client().post(
        "/webhooks/messenger", data=body, content_type="application/json",
        headers={"X-Hub-Signature-256": f"sha256={digest}"}))
