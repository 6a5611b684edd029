"""Open311 GeoReport v2 server at /open311/v2/: the standard door for the city's 311 apps.

Spec: http://wiki.open311.org/GeoReport_v2 (frozen). Resources: discovery, services,
services/{code} (service definitions from the catalogue's ``attributes``), requests (GET,
and POST with an api_key: created through ``intake.submit``, the same path as every channel),
requests/{id}, tokens/{token}, and mySociety's ``servicerequestupdates`` extension
(https://github.com/mysociety/open311-adapter) for status changes. Every resource answers in
XML or JSON by its extension. Quirks kept on purpose: GET requests is open to anyone, so the
citizen's words are shown only to keyed clients; rejected (spam) requests are not published;
there is no zipcode; datetimes are UTC with a Z.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from flask import Blueprint, current_app, request
from sqlalchemy import select

from adapters.errors import MalformedPayloadError

from .. import intake
from ..models import Event, InboundMessage, Request, utcnow
from . import documents
from .formats import FORMATS, error, respond, utc
from .keys import client_for
from .submission import Open311Error, document_from_form

log = logging.getLogger(__name__)
bp = Blueprint("open311", __name__, url_prefix="/open311/v2")
WINDOW = timedelta(days=90)
MAX_RESULTS = 1000
LANGUAGES = ("fr", "en")


@bp.errorhandler(Open311Error)
def _spec_error(exc: Open311Error):
    fmt = (request.view_args or {}).get("fmt", "xml")
    return error(fmt, exc.status, exc.description)


@bp.before_request
def _check_format_and_jurisdiction():
    fmt = (request.view_args or {}).get("fmt")
    if fmt is not None and fmt not in FORMATS:
        return error("xml", 404, f"format '{fmt[:10]}' is not served: use .xml or .json")
    expected = current_app.config.get("OPEN311_JURISDICTION_ID")
    given = request.values.get("jurisdiction_id")
    if expected and given and given != expected:
        raise Open311Error(404, f"jurisdiction_id '{given[:64]}' was not found")
    return None


@bp.get("/discovery.<fmt>")
def discovery(fmt: str):
    runtime = _runtime()
    changeset = utc(runtime.rules.current.loaded_at)
    contact = str(runtime.settings.get("OPEN311_CONTACT") or runtime.public_url("/"))
    return respond(fmt, "discovery", documents.discovery(runtime.public_url("/open311/v2/"), changeset, contact))


@bp.get("/services.<fmt>")
def services(fmt: str):
    book, language = _runtime().rules.current, _language()
    return respond(fmt, "services", [documents.service(book, c, language) for c in book.categories.values()])


@bp.get("/services/<code>.<fmt>")
def service_definition(code: str, fmt: str):
    category = _runtime().rules.current.categories.get(code)
    if category is None:
        raise Open311Error(404, f"service_code '{code[:64]}' was not found")
    return respond(fmt, "service_definition", documents.definition(category, _language()))


@bp.post("/requests.<fmt>")
def create_request(fmt: str):
    runtime = _runtime()
    client = client_for(runtime.settings, request.values.get("api_key"))
    if client is None:
        raise Open311Error(403, "a valid api_key is required to create a request")
    document = document_from_form(request.values, runtime.rules.current, _language())
    token = uuid.uuid4().hex
    try:
        outcome = intake.submit(runtime, document, idempotency_key=f"open311:{token}")
    except MalformedPayloadError as exc:
        raise Open311Error(400, str(exc)) from None
    if outcome.request_id is not None:
        with runtime.db.session() as session:
            session.add(Event(request_id=outcome.request_id, actor=f"open311:{client}", type="open311_client",
                              data={"client": client, "token": token}))
    log.info("open311 client %s created request %s", client, outcome.code)
    return respond(fmt, "service_requests", [{
        "service_request_id": outcome.code, "token": token, "service_notice": None, "account_id": None}])


@bp.get("/requests.<fmt>")
def list_requests(fmt: str):
    query = select(Request).where(Request.status != "rejected")
    ids = _csv(request.args.get("service_request_id"))
    if ids:  # overrides every other filter (spec)
        query = query.where(Request.code.in_([i.upper() for i in ids[:MAX_RESULTS]]))
    else:
        start, end = _window(request.args.get("start_date"), request.args.get("end_date"))
        query = query.where(Request.created_at >= start, Request.created_at <= end)
        codes = _csv(request.args.get("service_code"))
        if codes:
            query = query.where(Request.category.in_(codes))
        query = _status_filter(query, _csv(request.args.get("status")))
    query = query.order_by(Request.created_at.desc()).limit(MAX_RESULTS)
    return _requests_answer(fmt, query)


@bp.get("/requests/<code>.<fmt>")
def get_request(code: str, fmt: str):
    query = select(Request).where(Request.code == code.upper(), Request.status != "rejected")
    return _requests_answer(fmt, query, not_found=f"service_request_id '{code[:40]}' was not found")


@bp.get("/tokens/<token>.<fmt>")
def get_token(token: str, fmt: str):
    runtime = _runtime()
    with runtime.db.session() as session:
        inbound = session.scalar(select(InboundMessage).where(
            InboundMessage.channel == "web_form", InboundMessage.provider_id == f"key:open311:{token}"))
        if inbound is None:
            raise Open311Error(404, f"token '{token[:40]}' was not found")
        code = inbound.reserved_code
        if inbound.request_id is not None:
            code = session.scalar(select(Request.code).where(Request.id == inbound.request_id))
    return respond(fmt, "service_requests", [{"service_request_id": code, "token": token}])


@bp.get("/servicerequestupdates.<fmt>")
def request_updates(fmt: str):
    runtime = _runtime()
    start, end = _window(request.args.get("start_date"), request.args.get("end_date"))
    with runtime.db.session() as session:
        rows = session.execute(
            select(Event, Request.code).join(Request, Request.id == Event.request_id)
            .where(Event.type == "status_changed", Event.public.is_(True), Event.at >= start, Event.at <= end,
                   Request.status != "rejected")
            .order_by(Event.at, Event.id).limit(MAX_RESULTS)
        ).all()
        updates = [documents.update_record(event, code) for event, code in rows]
    return respond(fmt, "service_request_updates", updates)


def _requests_answer(fmt: str, query, not_found: str | None = None):
    runtime = _runtime()
    book, language = runtime.rules.current, _language()
    keyed = client_for(runtime.settings, request.args.get("api_key")) is not None
    with runtime.db.session() as session:
        found = session.scalars(query).unique().all()
        if not found and not_found:
            raise Open311Error(404, not_found)
        notes = _status_notes(session, found)
        records = [documents.request_record(book, r, language, notes.get(r.id), keyed) for r in found]
    return respond(fmt, "service_requests", records)


def _status_notes(session, found: list[Request]) -> dict[int, str]:
    """The last public note on each request's status, or what a duplicate points to."""
    notes: dict[int, str] = {}
    ids = [r.id for r in found]
    for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
        for event in session.scalars(select(Event).where(Event.request_id.in_(chunk), Event.type == "status_changed",
                                                         Event.public.is_(True)).order_by(Event.id)):
            if (event.data or {}).get("note"):
                notes[event.request_id] = event.data["note"]
    for r in found:
        if r.status == "duplicate" and r.duplicate_of_id and r.id not in notes:
            master = session.scalar(select(Request.code).where(Request.id == r.duplicate_of_id))
            notes[r.id] = f"Duplicate of {master}"
    return notes


def _status_filter(query, statuses: list[str]):
    wrong = [s for s in statuses if s not in ("open", "closed")]
    if wrong:
        raise Open311Error(400, f"status '{wrong[0][:20]}' is not open or closed")
    if set(statuses) == {"open"}:
        return query.where(Request.status.not_in(documents.CLOSED))
    if set(statuses) == {"closed"}:
        return query.where(Request.status.in_(documents.CLOSED))
    return query


def _window(raw_start: str | None, raw_end: str | None) -> tuple[datetime, datetime]:
    """The requested span, 90 days at most; the last 90 days when none is given."""
    start, end = _datetime("start_date", raw_start), _datetime("end_date", raw_end)
    if start is None and end is None:
        end = utcnow()
    if start is None:
        start = end - WINDOW
    if end is None:
        end = start + WINDOW
    if end < start:
        raise Open311Error(400, "end_date is before start_date")
    if end - start > WINDOW:
        raise Open311Error(400, "start_date and end_date may not span more than 90 days")
    return start, end


def _datetime(name: str, raw: str | None) -> datetime | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise Open311Error(400, f"{name} must be an ISO 8601 date and time, e.g. 2026-11-01T00:00:00Z") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _csv(raw: str | None) -> list[str]:
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def _language() -> str:
    chosen = request.values.get("lang")
    if chosen in LANGUAGES:
        return chosen
    default = _runtime().rules.current.city.default_language
    return request.accept_languages.best_match(LANGUAGES, default=default) or default


def _runtime():
    return current_app.extensions["runtime"]
