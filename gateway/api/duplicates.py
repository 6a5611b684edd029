"""Agents' decisions on duplicates, for the inbox and other city systems (token as /api/v1).

    POST   /api/v1/requests/<code>/duplicate-of   {"master": "R-…", "actor", "note"}  merge
    DELETE /api/v1/requests/<code>/duplicate-of   {"actor", "note"}                   unmerge
    POST   /api/v1/requests/<code>/suggestions/<candidate>/confirm   {"actor"}
    POST   /api/v1/requests/<code>/suggestions/<candidate>/reject    {"actor"}
    POST   /api/v1/requests/<code>/split          {"message_id": 12, "actor"}
    GET    /api/v1/duplicates/suggestions         pending suggestions, most recent first
    POST   /api/v1/requests/<code>/contacts       {"kind": "phone", "value": "…", "actor"}
           the requester is also reachable there: the same person on another channel

Answers 404 for an unknown code, 409 when the operation is impossible (nothing changed),
400 for a malformed body or contact point.
"""

from __future__ import annotations

from flask import current_app, jsonify, request
from sqlalchemy import select

from .. import citizens, duplicates
from ..models import DedupSuggestion, Request
from ..serialize import request_to_dict
from . import bp


def _body() -> dict | None:
    document = request.get_json(silent=True) if request.data else {}
    return document if isinstance(document, dict) else None


def _actor(document: dict) -> str:
    actor = document.get("actor")
    return f"agent:{actor}"[:120] if isinstance(actor, str) and actor.strip() else "api"


def _run(code: str, operation):
    """Find the request, apply ``operation(session, runtime, found, document)``, send what it
    queued, answer with the request."""
    runtime = current_app.extensions["runtime"]
    document = _body()
    if document is None:
        return jsonify(error="the body must be a JSON object", field="body"), 400
    with runtime.db.session() as session:
        found = session.scalar(select(Request).where(Request.code == code.upper()))
        if found is None:
            return jsonify(error=f"no request {code}"), 404
        try:
            deliveries = operation(session, runtime, found, document)
        except duplicates.DuplicateError as exc:
            session.rollback()
            return jsonify(error=str(exc)), 409
        except citizens.CitizenError as exc:
            session.rollback()
            return jsonify(error=str(exc), field="value"), 400
        except LookupError as exc:
            session.rollback()
            return jsonify(error=str(exc.args[0])), 404
        session.flush()
        session.refresh(found)
        body = request_to_dict(found, runtime.rules.current)
        ids = [d.id for d in deliveries]
    for delivery_id in ids:
        runtime.jobs.enqueue("deliver", delivery_id)
    return jsonify(body)


def _other(session, code) -> Request:
    if not isinstance(code, str):
        raise duplicates.DuplicateError("a request code is required")
    other = session.scalar(select(Request).where(Request.code == code.upper()))
    if other is None:
        raise LookupError(f"no request {code}")
    return other


@bp.post("/requests/<code>/duplicate-of")
def merge(code: str):
    def operation(session, runtime, found, document):
        master = _other(session, document.get("master"))
        return duplicates.link(session, runtime, found, master, _actor(document), note=document.get("note"))
    return _run(code, operation)


@bp.delete("/requests/<code>/duplicate-of")
def unmerge(code: str):
    return _run(code, lambda session, runtime, found, document: duplicates.unlink(
        session, runtime, found, _actor(document), document.get("note")))


@bp.post("/requests/<code>/suggestions/<candidate>/<verdict>")
def decide_suggestion(code: str, candidate: str, verdict: str):
    if verdict not in ("confirm", "reject"):
        return jsonify(error="confirm or reject"), 404
    action = duplicates.confirm if verdict == "confirm" else duplicates.reject

    def operation(session, runtime, found, document):
        return action(session, runtime, found, _other(session, candidate), _actor(document))
    return _run(code, operation)


@bp.post("/requests/<code>/split")
def split(code: str):
    created = {}

    def operation(session, runtime, found, document):
        if not isinstance(document.get("message_id"), int):
            raise duplicates.DuplicateError("message_id (an integer) is required")
        new, deliveries = duplicates.split(session, runtime, found, document["message_id"], _actor(document))
        created["code"] = new.code
        return deliveries
    response = _run(code, operation)
    if isinstance(response, tuple):
        return response
    body = response.get_json()
    body["split_into"] = created["code"]
    return jsonify(body), 201


@bp.post("/requests/<code>/contacts")
def link_contact(code: str):
    def operation(session, runtime, found, document):
        kind, value = document.get("kind"), document.get("value")
        if not isinstance(kind, str) or not isinstance(value, str):
            raise citizens.CitizenError("kind and value (strings) are required")
        region = runtime.rules.current.city.phone_region
        citizens.add_contact(session, found, kind, value, region, _actor(document))
        return []
    return _run(code, operation)


@bp.get("/duplicates/suggestions")
def pending_suggestions():
    runtime = current_app.extensions["runtime"]
    with runtime.db.session() as session:
        rows = session.scalars(select(DedupSuggestion).where(DedupSuggestion.state == "pending")
                               .order_by(DedupSuggestion.created_at.desc()).limit(200)).all()
        return jsonify(suggestions=[
            {"request": s.request.code, "candidate": s.candidate.code, "kind": s.kind, "score": s.score,
             "scores": s.scores, "created_at": s.created_at.isoformat()} for s in rows])
