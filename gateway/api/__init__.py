"""The JSON API for the city's other systems: `Authorization: Bearer <GATEWAY_API_TOKEN>`."""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import select

from adapters.errors import MalformedPayloadError, SignatureError
from adapters.signing import SIGNATURE_HEADER

from .. import department, intake
from ..models import Request
from ..serialize import request_to_dict, suggested_duplicates
from ..status import StatusError

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.before_request
def _authenticate():
    if request.endpoint == "api.set_status" and SIGNATURE_HEADER in request.headers:
        return None  # a department's signed callback: checked against its secret in the view
    expected = current_app.config.get("GATEWAY_API_TOKEN")
    given = request.headers.get("Authorization", "")
    token = given[7:] if given.startswith("Bearer ") else ""
    if not expected or not token or not hmac.compare_digest(token.encode(), str(expected).encode()):
        return jsonify(error="missing or wrong API token"), 401, {"WWW-Authenticate": "Bearer"}
    return None


@bp.post("/requests")
def create_request():
    if request.mimetype != "application/json":
        return jsonify(error="Content-Type must be application/json", field="body"), 415
    runtime = current_app.extensions["runtime"]
    document = request.get_json(silent=True)
    if not isinstance(document, dict):
        return jsonify(error="the body must be a JSON object", field="body"), 400
    try:
        outcome = intake.submit(runtime, document, request.headers.get("Idempotency-Key"))
    except MalformedPayloadError as exc:
        return jsonify(error=str(exc), field=exc.field), 422 if exc.field != "body" else 400
    with runtime.db.session() as session:
        found = session.scalar(select(Request).where(Request.code == outcome.code))
        status = 201 if outcome.created else 200
        if found is None:  # stored, processing later
            return jsonify(code=outcome.code, status="received"), 202
        body = {"code": found.code, "status": found.status, "category": found.category,
                "department": found.department, "priority": found.priority,
                "duplicate_of": found.duplicate_of.code if found.duplicate_of else None,
                "suggested_duplicates": suggested_duplicates(found)}
    return jsonify(body), status, {"Location": f"/api/v1/requests/{outcome.code}"}


@bp.get("/requests/<code>")
def get_request(code: str):
    runtime = current_app.extensions["runtime"]
    with runtime.db.session() as session:
        found = session.scalar(select(Request).where(Request.code == code.upper()))
        if found is None:
            return jsonify(error=f"no request {code}"), 404
        return jsonify(request_to_dict(found, runtime.rules.current))


@bp.post("/requests/<code>/status")
def set_status(code: str):
    """A department's system reports progress: {"status", "note", "external_status_code"}.

    Authenticated by the API token, or signed with the department's webhook secret
    (adapters/signing.py): a bad signature is a 403 and changes nothing."""
    runtime = current_app.extensions["runtime"]
    document = request.get_json(silent=True)
    if not isinstance(document, dict) or not isinstance(document.get("status"), str):
        return jsonify(error="a JSON object with a 'status' string is required", field="status"), 400
    note = document.get("note")
    if note is not None and not isinstance(note, str):
        return jsonify(error="note must be a string", field="note"), 400
    external = {"external_status_code": str(document["external_status_code"])} if document.get("external_status_code") else None
    with runtime.db.session() as session:
        found = session.scalar(select(Request).where(Request.code == code.upper()))
        if found is None:
            return jsonify(error=f"no request {code}"), 404
        actor = "api"
        if SIGNATURE_HEADER in request.headers:
            try:
                department.verify_callback(runtime, found, request.get_data(), request.headers)
            except SignatureError as exc:
                log.warning("status callback for %s refused: %s", found.code, exc)
                return jsonify(error=f"signature refused: {exc}"), 403
            actor = f"webhook:{found.department}"
        try:
            notifications = department.report(session, runtime, found, document["status"], actor, note, external)
        except StatusError as exc:
            session.rollback()
            return jsonify(error=str(exc), field="status"), 409
        body = {"code": found.code, "status": found.status}
    for delivery_id in notifications:
        runtime.jobs.enqueue("deliver", delivery_id)
    return jsonify(body)


from . import duplicates  # noqa: E402,F401 - registers the agents' duplicate routes on bp
