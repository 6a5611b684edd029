"""Requests as JSON: the full record for authenticated callers, a public view for /track."""

from __future__ import annotations

from .models import Request

PUBLIC_EVENTS = ("received", "routed", "status_changed", "resolved", "closed", "duplicate_linked",
                 "duplicate_unlinked", "split_from")


def iso(value):
    return value.isoformat().replace("+00:00", "Z") if value else None


def request_to_dict(request: Request, book) -> dict:
    return {
        "code": request.code,
        "status": request.status,
        "kind": request.kind,
        "channel": request.channel,
        "language": request.language,
        "category": request.category,
        "category_name": book.category_name(request.category, request.language),
        "department": request.department,
        "priority": request.priority,
        "district": request.district,
        "location": {"lat": request.lat, "lon": request.lon, "address": request.address},
        "subject": request.subject,
        "description": request.description,
        "rule": request.rule,
        "sla_due_at": iso(request.sla_due_at),
        "duplicate_of": request.duplicate_of.code if request.duplicate_of else None,
        "sla_state": request.sla_state,
        "related_to": request.related_to.code if request.related_to else None,
        "suggested_duplicates": suggested_duplicates(request),
        "created_at": iso(request.created_at),
        "acknowledged_at": iso(request.acknowledged_at),
        "routed_at": iso(request.routed_at),
        "resolved_at": iso(request.resolved_at),
        "closed_at": iso(request.closed_at),
        "messages": [
            {"direction": m.direction, "channel": m.channel, "subject": m.subject, "body": m.body,
             "at": iso(m.created_at)}
            for m in request.messages
        ],
        "events": [
            {"at": iso(e.at), "actor": e.actor, "type": e.type, "data": e.data} for e in request.events
        ],
        "deliveries": [
            {"target": d.target, "purpose": d.purpose, "state": d.state, "attempts": d.attempts,
             "last_error": d.last_error}
            for d in request.deliveries
        ],
    }


def public_history(request: Request) -> list:
    """What anyone holding the code may see: no names, no contact points, no message bodies."""
    return [e for e in request.events if e.public and e.type in PUBLIC_EVENTS]


def suggested_duplicates(request: Request) -> list[dict]:
    """Possible masters shown to agents (and urgent automatic links awaiting a check)."""
    return [{"code": s.candidate.code, "score": s.score, "kind": s.kind, "state": s.state, "scores": s.scores}
            for s in request.suggestions]
