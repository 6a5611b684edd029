"""The `scheduler` process: one pass every GATEWAY_SWEEP_SECONDS.

Each pass: the sweeper (due and abandoned work back on the queue), SLA checks (requests
approaching or past ``sla_due_at`` are marked, the department's tools are told, and past-due
ones are escalated to the 311 supervisors), closing of requests resolved long enough ago,
polling of departments' Open311 servers for status changes, and, once an hour, the retention
of citizens' personal data (gateway/retention.py). One step failing is logged and
does not stop the others; whatever it left undone is found again on the next pass.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select

from adapters.errors import AdapterError
from adapters.sinks.open311 import TOKEN_PREFIX, RemoteStatus

from . import closure, jobs, retention
from .department import notify_department, report
from .models import LOCK_REQUEST, OPEN_STATUSES, Delivery, Event, Request, User, utcnow
from .notify import render
from .outbox import add_delivery
from .status import StatusError

log = logging.getLogger(__name__)


def run_once(runtime, now: datetime | None = None) -> None:
    """One pass of every periodic task."""
    for step in (jobs.sweep, check_sla, closure.close_resolved, poll_open311, forget_the_past):
        try:
            ids = step(runtime) if step is jobs.sweep else step(runtime, now)
        except Exception:
            log.exception("scheduler step %s failed; retried on the next pass", step.__name__)
            continue
        for delivery_id in ids or []:
            runtime.jobs.enqueue("deliver", delivery_id)
    runtime.db.turns.checkpoint(runtime.db.engine)  # SQLite: its log copied even while no pipeline runs


def forget_the_past(runtime, now: datetime | None = None) -> list[int]:
    """Citizens' personal data past GATEWAY_RETENTION_DAYS erased (at most once an hour)."""
    retention.purge(runtime, now)
    return []


# --- SLA ---------------------------------------------------------------------------------

def check_sla(runtime, now: datetime | None = None) -> list[int]:
    """Mark requests approaching (GATEWAY_SLA_WARN_RATIO of the time used) or past their SLA.

    The requests to mark are chosen by a read (no lock), the earliest due first, and marked in
    short transactions (``Database.in_short_transactions``): the day after a storm, hundreds
    come due together."""
    now = now or utcnow()
    ratio = float(runtime.settings.get("GATEWAY_SLA_WARN_RATIO", 0.8))
    with runtime.db.session() as session:
        rows = session.execute(select(Request.id, Request.created_at, Request.sla_due_at, Request.sla_state).where(
            Request.status.in_(OPEN_STATUSES), Request.sla_due_at.is_not(None),
            (Request.sla_state.is_(None)) | (Request.sla_state != "breached"))
            .order_by(Request.sla_due_at, Request.id).limit(1000)).all()
    changing = [row.id for row in rows if _sla_state(row, now, ratio) not in (None, row.sla_state)]

    def mark_sla(session, request_id: int) -> list[int]:
        return _mark_sla(session, runtime, request_id, now, ratio)

    return runtime.db.in_short_transactions(changing, mark_sla)


def _mark_sla(session, runtime, request_id: int, now: datetime, ratio: float) -> list[int]:
    """One request's mark, its department told and, past due, the supervisors; nothing if it
    was closed or marked meanwhile."""
    request = session.get(Request, request_id, with_for_update=LOCK_REQUEST)
    if request is None or request.status not in OPEN_STATUSES or request.sla_due_at is None:
        return []
    state = _sla_state(request, now, ratio)
    if state is None or state == request.sla_state:
        return []
    request.sla_state = state
    session.add(Event(request_id=request.id, actor="system:sla", type=f"sla_{state}",
                      data={"due": request.sla_due_at.isoformat()}))
    ids = notify_department(session, runtime, request, f"sla_{state}")
    return ids + (_escalate(session, runtime, request) if state == "breached" else [])


def _sla_state(request, now: datetime, ratio: float) -> str | None:
    if now >= request.sla_due_at:
        return "breached"
    warn_at = request.created_at + (request.sla_due_at - request.created_at) * ratio
    return "approaching" if now >= warn_at else None


def _escalate(session, runtime, request: Request) -> list[int]:
    """E-mail every active 311 supervisor, and record the escalation."""
    supervisors = session.scalars(select(User).where(User.role == "supervisor", User.active.is_(True))).all()
    ids = []
    for user in supervisors:
        subject, body = render(runtime, "supervisor_sla_breached", request, {"status_label": "", "note": ""},
                               language=user.language)
        message = {"to": user.email, "text": body, "subject": subject, "language": user.language}
        ids.append(add_delivery(session, request, "staff", "email", {"kind": "sla_escalation", "message": message},
                                f"{request.code}:sla:escalation:user:{user.id}").id)
    session.add(Event(request_id=request.id, actor="system:sla", type="escalated",
                      data={"supervisors": [u.id for u in supervisors], "department": request.department}))
    return ids


# --- Open311 ------------------------------------------------------------------------------

def poll_open311(runtime, now: datetime | None = None) -> list[int]:
    """Bring back status changes from the departments' Open311 servers."""
    now = now or utcnow()
    every = timedelta(seconds=float(runtime.settings.get("GATEWAY_OPEN311_POLL_SECONDS", 300)))
    with runtime.db.session() as session:
        rows = session.execute(select(Delivery.id, Delivery.settings).join(Request).where(
            Delivery.target == "open311", Delivery.purpose == "sink", Delivery.state == "delivered",
            Delivery.external_id.is_not(None), Request.status.in_(OPEN_STATUSES + ("resolved",)),
            (Delivery.polled_at.is_(None)) | (Delivery.polled_at <= now - every))).all()
    groups: dict[str, list[int]] = defaultdict(list)
    targets: dict[str, dict] = {}
    for delivery_id, settings in rows:
        if settings.get("notice") or not settings.get("endpoint"):
            continue
        groups[settings["endpoint"]].append(delivery_id)
        targets[settings["endpoint"]] = settings
    ids: list[int] = []
    sink = runtime.sink("open311")
    for endpoint, delivery_ids in groups.items():
        try:
            ids += _poll_server(runtime, sink, targets[endpoint], delivery_ids, now)
        except AdapterError as exc:
            runtime.record_health("sink:open311", ok=False, detail=f"polling: {type(exc).__name__}: {exc}")
            log.warning("open311 polling of %s failed, next pass retries: %s", endpoint, exc)
    return ids


def _poll_server(runtime, sink, target: dict, delivery_ids: list[int], now: datetime) -> list[int]:
    with runtime.db.session() as session:
        deliveries = session.scalars(select(Delivery).where(Delivery.id.in_(delivery_ids))).all()
        by_remote = {}
        for delivery in deliveries:
            if delivery.external_id.startswith(TOKEN_PREFIX):
                found = sink.resolve_token(target, delivery.external_id[len(TOKEN_PREFIX):])
                if found is None:
                    continue  # the server has not created it yet
                delivery.external_id = found
            by_remote[delivery.external_id] = delivery
        session.flush()
        since = min((d.polled_at or d.delivered_at or now) for d in deliveries) - timedelta(minutes=1)
    current = {status.service_request_id: status for status in sink.statuses(target, list(by_remote))} \
        if by_remote else {}
    updates: dict[str, list[RemoteStatus]] = defaultdict(list)
    for status in (sink.updates(target, since, now) if target.get("updates") else []):
        if status.service_request_id in by_remote:
            updates[status.service_request_id].append(status)

    def apply_remote(session, delivery_id: int) -> list[int]:
        """What the server says of one request: its status (when it changed) and its updates."""
        delivery = session.get(Delivery, delivery_id)
        ids = []
        status = current.get(delivery.external_id)
        if status is not None and status.remote != delivery.remote_status:  # GET requests repeats itself
            delivery.remote_status = status.remote[:64]
            ids += _apply_remote(session, runtime, delivery, status)
        for status in updates.get(delivery.external_id, []):
            if not _seen_before(status, delivery.polled_at):
                ids += _apply_remote(session, runtime, delivery, status)
        delivery.polled_at = now
        return ids

    ids = runtime.db.in_short_transactions([delivery.id for delivery in by_remote.values()], apply_remote)
    runtime.record_health("sink:open311", ok=True)
    return ids


def _seen_before(status: RemoteStatus, polled_at: datetime | None) -> bool:
    """An update already read by the previous poll (the query window overlaps by a minute)."""
    try:
        updated = datetime.fromisoformat(status.updated or "")
    except ValueError:
        return False
    return polled_at is not None and updated.tzinfo is not None and updated <= polled_at


def _apply_remote(session, runtime, delivery: Delivery, status: RemoteStatus) -> list[int]:
    request = delivery.request
    if status.status is None or status.status == request.status:
        return []
    external = {"external_status_code": status.remote, "service_request_id": status.service_request_id}
    try:
        return report(session, runtime, request, status.status, f"open311:{request.department}", status.note, external)
    except StatusError as exc:
        session.add(Event(request_id=request.id, actor=f"open311:{request.department}", type="status_refused",
                          data={"status": status.status, "remote": status.remote, "reason": str(exc)}))
        return []
