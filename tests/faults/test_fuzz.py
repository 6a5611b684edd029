"""Bad input at scale: hypothesis over every HTTP endpoint that takes input.

Random and mutated bodies (real fixtures with fields changed, dropped or retyped), random
content types and headers, correctly signed where the provider signs (so the fuzzing gets
past the signature check into the parsing), badly signed otherwise. For every example: no
5xx, and an answer >= 400 leaves the database as it was (no inbound, request, citizen,
message or delivery stored for rejected input).

Background jobs are not run (a recording queue stands in): this suite is about what the
HTTP layer accepts and stores; what the pipeline does with accepted payloads is tested by
the adapters' own tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gateway.auth import add_user
from gateway.models import Citizen, Delivery, InboundMessage, Message, Request

from ..conftest import API_TOKEN, FIXTURES
from ..support.twilio import PUBLIC_URL, twilio_settings
from ..support.twilio import sign as twilio_sign

MESSENGER_SECRET = "fuzz-messenger-secret"
TELEGRAM_SECRET = "fuzz-telegram-secret"
SLACK_SECRET = "fuzz-slack-signing-secret"
OPEN311_KEY = "fuzz-open311-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


class RecordingQueue:
    """Stands in for the job queue: accepted work is only counted, never run."""

    def __init__(self):
        self.jobs: list[tuple[str, int]] = []

    def enqueue(self, job: str, item_id: int) -> None:
        self.jobs.append((job, item_id))

    def shutdown(self) -> None:
        pass


@pytest.fixture(params=["sqlite", "postgresql"])
def fuzz_app(request, make_app):
    """The app on each database: PostgreSQL is stricter than SQLite (32-bit INTEGER ids,
    bounded VARCHARs, no NUL in text), and garbage that SQLite stores can fail there."""
    database = {"DATABASE_URL": request.getfixturevalue("pg_url")} if request.param == "postgresql" else {}
    app = make_app(**database, **twilio_settings(None), MESSENGER_APP_SECRET=MESSENGER_SECRET, MESSENGER_VERIFY_TOKEN="v",
                   MESSENGER_PAGE_TOKEN="p", TELEGRAM_BOT_TOKEN="5550199:fuzz", TELEGRAM_SECRET_TOKEN=TELEGRAM_SECRET,
                   SLACK_SIGNING_SECRET=SLACK_SECRET, GATEWAY_INLINE_JOBS=False, OPEN311_API_KEY=OPEN311_KEY)
    app.config["WTF_CSRF_ENABLED"] = False  # reach the forms' validation, not only the CSRF check
    runtime = app.extensions["runtime"]
    runtime.jobs.shutdown()
    runtime.jobs = RecordingQueue()
    return app


def counts(app) -> dict:
    runtime = app.extensions["runtime"]
    with runtime.db.session() as session:
        return {m.__name__: session.scalar(select(func.count()).select_from(m))
                for m in (InboundMessage, Request, Citizen, Message, Delivery)}


def check(app, send) -> None:
    """Send one request; no 5xx; a refusal stores nothing."""
    before = counts(app)
    response = send()
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])
    if response.status_code >= 400:
        assert counts(app) == before, response.status_code


# --- strategies ------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | st.text(max_size=200)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=20), inner, max_size=6), max_leaves=20)
content_types = st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain",
                                 "multipart/form-data", "application/json; charset=latin-1", "", "*/*"])
garbage_header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


@st.composite
def mutated(draw, document):
    """A real document with some leaves replaced by random values, some keys dropped."""
    if isinstance(document, dict):
        out = {}
        for key, value in document.items():
            choice = draw(st.integers(0, 9))
            if choice == 0:
                continue  # dropped
            out[key] = draw(json_values) if choice == 1 else draw(mutated(value))
        if draw(st.booleans()):
            out[draw(st.text(max_size=10))] = draw(json_values)
        return out
    if isinstance(document, list):
        return [draw(mutated(v)) for v in document[: draw(st.integers(0, len(document)))]]
    return draw(json_values) if draw(st.integers(0, 4)) == 0 else document


def fixture_documents(folder: str, key: str | None = None) -> list:
    found = []
    for path in sorted((FIXTURES / folder).glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        if key is None:
            found.append({k: v for k, v in document.items() if not k.startswith("_")})
        elif isinstance(document, dict) and key in document:
            found.append(document[key])
    return found


def bodies_from(documents: list):
    """Raw bytes: mutated real documents as JSON, random JSON, or random bytes."""
    return (st.sampled_from(documents).flatmap(mutated).map(lambda d: json.dumps(d).encode())
            | json_values.map(lambda d: json.dumps(d).encode())
            | st.binary(max_size=600))


# --- the JSON API --------------------------------------------------------------------------

@FUZZ
@given(body=bodies_from(fixture_documents("web_form")), content_type=content_types,
       key=st.none() | garbage_header_values)
def test_api_create_request(fuzz_app, body, content_type, key):
    headers = {**AUTH, **({"Idempotency-Key": key} if key is not None else {})}
    check(fuzz_app, lambda: fuzz_app.test_client().post("/api/v1/requests", data=body, content_type=content_type,
                                                        headers=headers))


@FUZZ
@given(action=st.sampled_from(["status", "duplicate-of", "split", "contacts"]),
       body=bodies_from([{"status": "resolved", "note": "Réparé"}, {"code": "R-2026-0000000"},
                         {"message_ids": [1]}, {"email": "a@example.org", "phone": "8195550101"}]),
       code=st.sampled_from(["R-2026-0000000", "nope", "%00", "R-" + "9" * 300]) | st.text(
           alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"), min_size=1, max_size=30),
       authorized=st.booleans())
def test_api_request_actions(fuzz_app, action, body, code, authorized):
    client = fuzz_app.test_client()
    created = client.post("/api/v1/requests", headers=AUTH, json=fixture_documents("web_form")[0])
    assert created.status_code == 201
    real = created.get_json()["code"]
    for target in (real, code):
        check(fuzz_app, lambda t=target: client.post(f"/api/v1/requests/{t}/{action}", data=body,
                                                     content_type="application/json",
                                                     headers=AUTH if authorized else {}))
        check(fuzz_app, lambda t=target: client.get(f"/api/v1/requests/{t}", headers=AUTH if authorized else {}))


# --- the public forms ------------------------------------------------------------------------

form_fields = st.dictionaries(st.sampled_from(["description", "email", "phone", "name", "address", "language",
                                               "category", "consent", "latitude", "longitude", "lang", "code"])
                              | st.text(max_size=10), st.text(max_size=300), max_size=10)


@FUZZ
@given(fields=form_fields, lang=st.sampled_from(["", "?lang=fr", "?lang=en", "?lang=zz"]),
       code=st.text(max_size=40))
def test_public_forms(fuzz_app, fields, lang, code):
    client = fuzz_app.test_client()
    check(fuzz_app, lambda: client.post(f"/report{lang}", data=fields))
    check(fuzz_app, lambda: client.get("/track", query_string={"code": code}))
    check(fuzz_app, lambda: client.post("/inbox/login", data=fields))
    check(fuzz_app, lambda: client.post("/inbox/walk-in", data=fields))


# --- the Open311 GeoReport v2 server, and the pages behind a sign-in --------------------------

open311_fields = st.dictionaries(
    st.sampled_from(["service_code", "lat", "long", "address_string", "address_id", "email", "device_id",
                     "account_id", "first_name", "last_name", "phone", "description", "media_url", "jurisdiction_id",
                     "attribute[WHISHETN]", "api_key", "start_date", "end_date", "status", "service_request_id"])
    | st.text(max_size=12),
    st.sampled_from(["pothole", "streetlight", "-91", "181", "45.44", "-75.72", "2026-11-22T10:00:00Z",
                     "open,closed", "nan", "1e308", ""]) | st.text(max_size=120), max_size=10)
formats = st.sampled_from(["json", "xml", "csv", "zz"])


@FUZZ
@given(fields=open311_fields, fmt=formats, keyed=st.booleans(), code=st.text(max_size=30))
def test_open311_server(fuzz_app, fields, fmt, keyed, code):
    client = fuzz_app.test_client()
    fields = {**fields, "api_key": OPEN311_KEY} if keyed else fields
    check(fuzz_app, lambda: client.post(f"/open311/v2/requests.{fmt}", data=fields))
    check(fuzz_app, lambda: client.get(f"/open311/v2/requests.{fmt}", query_string=fields))
    for path in ("discovery", "services", "servicerequestupdates"):
        check(fuzz_app, lambda p=path: client.get(f"/open311/v2/{p}.{fmt}", query_string=fields))
    for path in ("services", "requests", "tokens"):
        check(fuzz_app, lambda p=path: client.get(f"/open311/v2/{p}/{code.replace('/', '')}.{fmt}"))


def admin_client(app):
    """A client signed in as an administrator (who sees the console, dashboards and inbox)."""
    if "fuzz_admin" not in app.config:
        add_user(app.extensions["runtime"], "admin@bellerive.example.org", "admin", "un mot de passe solide")
        app.config["fuzz_admin"] = True
    client = app.test_client()
    signed = client.post("/inbox/login", data={"email": "admin@bellerive.example.org",
                                               "password": "un mot de passe solide"})
    assert signed.status_code == 302, signed.status_code
    return client


@FUZZ
@given(query=st.dictionaries(st.text(max_size=12), st.text(max_size=60), max_size=6),
       path=st.sampled_from(["/dashboard/", "/dashboard/volumes", "/dashboard/report", "/dashboard/open-data",
                             "/dashboard/open-data/requests.csv", "/admin/", "/admin/rules", "/admin/health",
                             "/admin/users", "/inbox/", "/api/v1/duplicates/suggestions"]),
       post=st.booleans(), signed_in=st.booleans())
def test_pages_behind_a_sign_in(fuzz_app, query, path, post, signed_in):
    client = admin_client(fuzz_app) if signed_in else fuzz_app.test_client()
    headers = AUTH if path.startswith("/api/") else {}
    if post:
        check(fuzz_app, lambda: client.post(path, data=query, headers=headers))
    else:
        check(fuzz_app, lambda: client.get(path, query_string=query, headers=headers))


# --- provider webhooks -----------------------------------------------------------------------

TWILIO_PATHS = ["/webhooks/twilio/sms", "/webhooks/twilio/sms/status", "/webhooks/twilio/voice",
                "/webhooks/twilio/voice/language", "/webhooks/twilio/voice/speech",
                "/webhooks/twilio/voice/recorded", "/webhooks/twilio/voice/transcription"]
twilio_params = fixture_documents("twilio_sms", "params") + fixture_documents("twilio_voice", "params")


@st.composite
def mutated_form(draw):
    params = draw(st.sampled_from(twilio_params))
    out = {}
    for key, value in params.items():
        choice = draw(st.integers(0, 7))
        if choice == 0:
            continue
        out[key] = draw(st.text(max_size=120)) if choice == 1 else value
    out.update(draw(st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=40), max_size=3)))
    return out


@FUZZ
@given(path=st.sampled_from(TWILIO_PATHS), params=mutated_form(), signed=st.booleans(),
       content_type=st.sampled_from(["application/x-www-form-urlencoded", "application/json", "text/plain"]))
def test_twilio_webhooks(fuzz_app, path, params, signed, content_type):
    params = {k: v.replace("\x00", "") for k, v in params.items()}
    headers = {"X-Twilio-Signature": twilio_sign(PUBLIC_URL + path, params) if signed else "bm9wZQ=="}
    check(fuzz_app, lambda: fuzz_app.test_client().post(path, data=urlencode(params), content_type=content_type,
                                                        headers=headers))


@FUZZ
@given(body=bodies_from(fixture_documents("messenger")), signed=st.booleans(), content_type=content_types)
def test_messenger_webhook(fuzz_app, body, signed, content_type):
    digest = hmac.new(MESSENGER_SECRET.encode(), body, hashlib.sha256).hexdigest() if signed else "00"
    check(fuzz_app, lambda: fuzz_app.test_client().post(
        "/webhooks/messenger", data=body, content_type=content_type, headers={"X-Hub-Signature-256": f"sha256={digest}"}))


@FUZZ
@given(body=bodies_from(fixture_documents("telegram")), secret=st.sampled_from([TELEGRAM_SECRET, "wrong", ""]),
       content_type=content_types)
def test_telegram_webhook(fuzz_app, body, secret, content_type):
    check(fuzz_app, lambda: fuzz_app.test_client().post(
        "/webhooks/telegram", data=body, content_type=content_type,
        headers={"X-Telegram-Bot-Api-Secret-Token": secret}))


def slack_headers(body: bytes, signed: bool) -> dict:
    timestamp = str(int(time.time()))
    base = b"v0:" + timestamp.encode() + b":" + body
    digest = hmac.new(SLACK_SECRET.encode() if signed else b"wrong", base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}


slack_documents = fixture_documents("slack", "payload") + [
    {"type": "url_verification", "challenge": "abc"},
    {"type": "event_callback", "event": {"type": "message", "channel": "C0PARCS311", "thread_ts": "1764000000.000001",
                                         "ts": "1764000000.000002", "text": "note", "user": "U1"}}]


@FUZZ
@given(document=st.sampled_from(slack_documents).flatmap(mutated), raw=st.none() | st.binary(max_size=300),
       signed=st.booleans(), interactions=st.booleans())
@example(document={"type": "event_callback", "event": 1}, raw=None, signed=True, interactions=False)  # was a 500
def test_slack_webhooks(fuzz_app, document, raw, signed, interactions):
    if interactions:
        path = "/webhooks/slack/interactions"
        body = raw if raw is not None else urlencode({"payload": json.dumps(document)}).encode()
        content_type = "application/x-www-form-urlencoded"
    else:
        path = "/webhooks/slack/events"
        body = raw if raw is not None else json.dumps(document).encode()
        content_type = "application/json"
    check(fuzz_app, lambda: fuzz_app.test_client().post(path, data=body, content_type=content_type,
                                                        headers=slack_headers(body, signed)))


# --- the agents' request page, the console's actions, and the endpoints left -----------------

path_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"),
                    min_size=1, max_size=30)
ids = st.sampled_from([2**31 - 1, 2**31, 2**63, 2**70]) | st.integers(0, 2**70)  # past the id columns' INTEGER too
INBOX_ACTIONS = ["assign", "forget", "link", "note", "reply", "reroute", "spam", "status", "unlink"]
inbox_fields = st.dictionaries(
    st.sampled_from(["text", "template", "status", "note", "category", "department", "user_id", "to", "original",
                     "confirm"])
    | st.text(max_size=10),
    st.sampled_from(["me", "1", "-1", "99999999999999999999999", "resolved", "closed", "in_progress", "new",
                     "R-2026-0000000", "streetlight", "travaux_publics", "", "nan", "yes"]) | st.text(max_size=200),
    max_size=6)


def created_code(app) -> str:
    """A real request (the API's path), so the actions reach their validation."""
    created = app.test_client().post("/api/v1/requests", headers=AUTH, json=fixture_documents("web_form")[0])
    assert created.status_code == 201
    return created.get_json()["code"]


@settings(FUZZ, max_examples=100)
@given(action=st.sampled_from(INBOX_ACTIONS), fields=inbox_fields, code=path_text, candidate=path_text,
       decision=path_text, attachment=ids, signed_in=st.booleans())
def test_inbox_request_page_and_actions(fuzz_app, action, fields, code, candidate, decision, attachment, signed_in):
    real = created_code(fuzz_app)
    client = admin_client(fuzz_app) if signed_in else fuzz_app.test_client()
    for target in (real, code):
        check(fuzz_app, lambda t=target: client.post(f"/inbox/r/{t}/{action}", data=fields))
        check(fuzz_app, lambda t=target: client.post(f"/inbox/r/{t}/suggestions/{candidate}/{decision}", data=fields))
        check(fuzz_app, lambda t=target: client.get(f"/inbox/r/{t}", query_string=fields))
    check(fuzz_app, lambda: client.get("/inbox/poll", query_string=fields))
    check(fuzz_app, lambda: client.get(f"/inbox/attachments/{attachment}"))


admin_fields = st.dictionaries(
    st.sampled_from(["role", "active", "email", "password", "name", "file", "text", "action", "version", "version_id",
                     "sentence", "language", "channel", "lat", "lon"]) | st.text(max_size=10),
    st.sampled_from(["admin", "agent", "manager", "1", "0", "rules.yaml", "save", "validate", "nan", ""])
    | st.text(max_size=120), max_size=6)


@settings(FUZZ, max_examples=100)
@given(fields=admin_fields, delivery=ids, user=ids | st.sampled_from([1, 2]), version=ids, signed_in=st.booleans())
def test_console_actions(fuzz_app, fields, delivery, user, version, signed_in):
    client = admin_client(fuzz_app) if signed_in else fuzz_app.test_client()
    check(fuzz_app, lambda: client.post(f"/admin/deliveries/{delivery}/retry", data=fields))
    check(fuzz_app, lambda: client.post("/admin/deliveries/retry-all", data=fields))
    check(fuzz_app, lambda: client.post("/admin/rules/rollback", data=fields))
    check(fuzz_app, lambda: client.get(f"/admin/rules/version/{version}"))
    check(fuzz_app, lambda: client.post(f"/admin/users/{user}", data=fields))
    if signed_in:  # the administrator kept their access: the next examples sign in again
        assert client.get("/admin/users").status_code == 200


@settings(FUZZ, max_examples=100)
@given(code=path_text, candidate=path_text, verdict=path_text, name=path_text, fmt=path_text,
       query=st.dictionaries(st.sampled_from(["hub.mode", "hub.verify_token", "hub.challenge", "from", "to", "lang"])
                             | st.text(max_size=10), st.text(max_size=60), max_size=5),
       body=bodies_from([{"verdict": "confirm"}, {"code": "R-2026-0000000"}]), signed_in=st.booleans())
def test_remaining_endpoints(fuzz_app, code, candidate, verdict, name, fmt, query, body, signed_in):
    real = created_code(fuzz_app)
    client = admin_client(fuzz_app) if signed_in else fuzz_app.test_client()
    for target in (real, code):
        check(fuzz_app, lambda t=target: client.delete(f"/api/v1/requests/{t}/duplicate-of", headers=AUTH))
        check(fuzz_app, lambda t=target: client.post(f"/api/v1/requests/{t}/suggestions/{candidate}/{verdict}",
                                                     data=body, content_type="application/json", headers=AUTH))
        check(fuzz_app, lambda t=target: client.get(f"/track/{t}", query_string=query))
    check(fuzz_app, lambda: client.get("/webhooks/messenger", query_string=query))
    check(fuzz_app, lambda: client.get(f"/dashboard/{name}", query_string=query))
    check(fuzz_app, lambda: client.get(f"/dashboard/{name}.csv", query_string=query))
    check(fuzz_app, lambda: client.get(f"/dashboard/open-data/requests.{fmt}", query_string=query))
    for page in ("/", "/report", "/healthz", "/inbox/login", "/inbox/walk-in", f"/static/{name}"):
        check(fuzz_app, lambda p=page: client.get(p, query_string=query))
    check(fuzz_app, lambda: client.post("/inbox/logout"))


BEYOND_AN_ID = str(2**31)  # PostgreSQL's INTEGER ends at 2**31 - 1, SQLite's at 2**63 - 1


@pytest.mark.parametrize("method, path, data", [
    ("get", f"/inbox/attachments/{BEYOND_AN_ID}", {}),
    ("get", f"/admin/rules/version/{BEYOND_AN_ID}", {}),
    ("post", f"/admin/deliveries/{BEYOND_AN_ID}/retry", {}),
    ("post", f"/admin/users/{BEYOND_AN_ID}", {"role": "agent", "active": "1"}),
    ("post", "/inbox/r/{code}/assign", {"user_id": BEYOND_AN_ID}),
    ("get", "/inbox/poll", {"since": BEYOND_AN_ID}),
    ("get", "/inbox/", {"after": base64.urlsafe_b64encode(f"2026-11-22T10:00:00|{BEYOND_AN_ID}".encode()).decode()}),
])
def test_an_id_beyond_the_id_columns_is_no_id(fuzz_app, method, path, data):
    """Ids are INTEGER columns (32 bits on PostgreSQL); a larger one in a URL or a field (an
    agent's edited URL, a forged form) finds nothing instead of failing with a 500."""
    client = admin_client(fuzz_app)
    path = path.format(code=created_code(fuzz_app))
    before = counts(fuzz_app)
    response = client.post(path, data=data) if method == "post" else client.get(path, query_string=data)
    assert response.status_code in (200, 303, 404), response.status_code
    assert counts(fuzz_app) == before
