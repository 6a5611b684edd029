"""The way back: what a department's tool reports about a request, from any sink.

Slack buttons, signed webhook callbacks, Open311 polling, e-mail replies and the city's own
scripts all end here: the status change (with its allowed transitions, audit event and
citizen notifications, see status.py), and the department's Slack message refreshed so that
everyone in the channel sees the new state. "Not ours" sends the request back to the 311
triage department, which gets it in its own tools.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from adapters.errors import AdapterMisconfiguredError, SignatureError
from adapters.signing import verify

from .models import Delivery, Event, Request
from .outbox import add_delivery
from .status import change_status

log = logging.getLogger(__name__)


def report(session, runtime, request: Request, status: str, actor: str, note: str | None = None,
           external: dict | None = None) -> list[int]:
    """Apply a department's status; returns the deliveries to send (citizens, Slack refresh).

    Raises status.StatusError when the transition is not allowed (nothing changed)."""
    before = request.status
    ids = change_status(session, runtime, request, status, actor, note, external)
    if request.status != before:
        ids += refresh_slack(session, request, actor)
    return ids


def refresh_slack(session, request: Request, actor: str) -> list[int]:
    """Queue a chat.update of every Slack message posted for ``request``."""
    ids = []
    serial = len(request.events)
    for posted in _slack_posts(session, request):
        channel, _, ts = posted.external_id.partition(":")
        settings = {**posted.settings, "channel": channel, "update_ts": ts, "actor": actor}
        settings.pop("notice", None)
        delivery = add_delivery(session, request, "sink", "slack", settings,
                                f"{request.code}:slack:update:{posted.id}:{serial}")
        ids.append(delivery.id)
    return ids


def _slack_posts(session, request: Request) -> list[Delivery]:
    rows = session.scalars(select(Delivery).where(
        Delivery.request_id == request.id, Delivery.target == "slack", Delivery.purpose == "sink",
        Delivery.state == "delivered", Delivery.external_id.is_not(None))).all()
    return [d for d in rows if not d.settings.get("update_ts") and not d.settings.get("notice")]


def decline(session, runtime, request: Request, actor: str, note: str | None = None) -> list[int]:
    """The department says "not ours": back to the 311 triage department and its sinks."""
    book = runtime.rules.current
    triage = book.city.triage_department
    if request.department == triage:
        session.add(Event(request_id=request.id, actor=actor, type="decline_ignored",
                          data={"reason": "already with the triage department"}))
        return refresh_slack(session, request, actor)
    previous = request.department
    request.department = triage
    rounds = 1 + sum(1 for e in request.events if e.type == "declined")
    session.add(Event(request_id=request.id, actor=actor, type="declined", public=False,
                      data={"from": previous, "to": triage, "note": note}))
    department = book.departments[triage]
    ids = []
    for i, sink in enumerate(department.sinks):
        settings = {"language": department.language, **sink.settings()}
        key = f"{request.code}:decline{rounds}:{i}:{sink.type}"
        ids.append(add_delivery(session, request, "sink", sink.type, settings, key).id)
    return ids + refresh_slack(session, request, actor)


def find(session, code: str) -> Request | None:
    return session.scalar(select(Request).where(Request.code == code.strip().upper()))


def webhook_secret(runtime, request: Request) -> str:
    """The secret of the request's department's webhook sink.

    Raises AdapterMisconfiguredError when that department has no webhook or no secret set."""
    department = runtime.rules.current.departments.get(request.department or "")
    sinks = [s.settings() for s in (department.sinks if department else []) if s.type == "webhook"]
    sinks += [d.settings for d in request.deliveries if d.target == "webhook" and d.purpose == "sink"]
    for sink in sinks:
        name = sink.get("secret_env")
        if name and runtime.settings.get(name):
            return str(runtime.settings[name])
    raise AdapterMisconfiguredError(f"no webhook secret configured for department {request.department!r}")


def verify_callback(runtime, request: Request, body: bytes, headers) -> None:
    """Raises SignatureError (wrong, missing or stale signature, or no secret to check it)."""
    try:
        secret = webhook_secret(runtime, request)
    except AdapterMisconfiguredError as exc:
        raise SignatureError(str(exc)) from exc
    verify(secret, body, headers)


def notify_department(session, runtime, request: Request, kind: str, extra: dict | None = None) -> list[int]:
    """Tell the department's tools about ``request`` again (SLA warning, reopened): one notice
    per sink the request was delivered to, from the `department_<kind>` template in its language.
    On Slack the notice is a reply in the request's thread."""
    from .notify import render

    book = runtime.rules.current
    department = book.departments.get(request.department or "")
    language = department.language if department else book.city.default_language
    template = f"department_{kind}" if f"department_{kind}" in book.templates else "status_update"
    subject, body = render(runtime, template, request, {"status_label": kind, "note": "", **(extra or {})},
                           language=language)
    text = "\n".join(filter(None, [subject, body.strip()]))
    serial = len(request.events)
    ids = []
    for original in _original_sink_deliveries(session, request):
        settings = {**original.settings, "notice": {"kind": kind, "text": text}}
        if original.target == "slack" and original.external_id:
            settings["channel"], _, settings["thread_ts"] = original.external_id.partition(":")
        key = f"{request.code}:notice:{kind}:{original.id}:{serial}"
        ids.append(add_delivery(session, request, "sink", original.target, settings, key).id)
    return ids


def _original_sink_deliveries(session, request: Request) -> list[Delivery]:
    rows = session.scalars(select(Delivery).where(Delivery.request_id == request.id, Delivery.purpose == "sink")
                           .order_by(Delivery.id)).all()
    return [d for d in rows if not d.settings.get("update_ts") and not d.settings.get("notice")]
