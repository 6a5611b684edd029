"""The request page (conversation, audit trail, citizen, location, SLA) and the actions on it.

Every action is a POST with a CSRF token, answered by a redirect back to the page with a
message (post/redirect/get), or by the page again with the error and status 400/409.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from flask import abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from .. import duplicates, retention, tracking
from ..auth import current_user, require_role
from ..i18n import current_language
from ..ids import database_id
from ..models import Attachment, DedupSuggestion, Event, Follower, GivenCode, Request, User, utcnow
from ..notify import render
from ..permissions import (
    ADMINISTERS,
    ANSWERS_CITIZENS,
    REPORTS_PROGRESS,
    SEES_ADDRESS,
    SEES_CONTACTS,
    can,
    may_see,
)
from ..status import TRANSITIONS, StatusError, change_status
from . import actions, bp, runtime


def _load(db, code: str) -> Request:
    """The request with ``code``; 404 when there is none or the user may not see it (another
    department's, for a department member: as if it did not exist)."""
    found = db.scalar(select(Request).where(Request.code == code.upper()))
    if found is None or not may_see(current_user(), found):
        abort(404)
    return found


def actor() -> str:
    return f"agent:{current_user().email}"


@bp.get("/r/<code>")
@require_role()
def show(code: str):
    user = current_user()
    book = runtime().rules.current
    with runtime().db.session() as db:
        found = db.scalar(select(Request).where(Request.code == code.upper()))
        if found is None:
            joined = tracking.joined(db, code)  # a code the citizen was given, read out on the phone
            if joined is None or not may_see(user, joined):
                abort(404)
            return redirect(url_for("inbox.show", code=joined.code))
        if not may_see(user, found):
            abort(404)
        return render_template(
            "request.html", r=found, book=book, user=user, now=utcnow(),
            timeline=_timeline(found), followers=_followers(db, found),
            given_codes=list(db.scalars(select(GivenCode.code).where(GivenCode.request_id == found.id)
                                        .order_by(GivenCode.created_at))),
            duplicates=list(db.scalars(select(Request).where(Request.duplicate_of_id == found.id))),
            suggestions=_pending_suggestions(db, found),
            staff=[u for u in db.scalars(select(User).where(User.active.is_(True), User.role.in_(REPORTS_PROGRESS))
                                         .order_by(User.email)) if may_see(u, found)],  # who can open it
            next_statuses=sorted(TRANSITIONS.get(found.status, set()) - {"duplicate"}),
            replies=[(name, _reply_title(book, name), render(runtime(), name, found, {"text": ""})[1])
                     for name in actions.reply_templates(book)] if found.citizen else [],
            destination=_destination, administers=can(user, ADMINISTERS), sees_contacts=can(user, SEES_CONTACTS), sees_address=can(user, SEES_ADDRESS),
            answers=can(user, ANSWERS_CITIZENS), reports=can(user, REPORTS_PROGRESS),
        )


def _destination(delivery) -> str | None:
    """Where a department's delivery goes, for the agent to tell two of them apart: the
    address, the Slack channel, or the web server of a webhook or an Open311 endpoint."""
    if delivery.purpose != "sink":
        return None  # a citizen's address is personal data, shown (or not) with the citizen
    settings = delivery.settings or {}
    where = settings.get("to") or settings.get("channel") or settings.get("url") or settings.get("endpoint")
    if isinstance(where, str) and "://" in where:
        return urlsplit(where).netloc or where
    return where


def _reply_title(book, name: str) -> str:
    """A ready-made reply as agents know it: its title in the page's language (else in the
    other), else its name ("reply_need_details" → "need details")."""
    versions = book.templates[name]
    for language in (current_language(), *versions):
        if language in versions and versions[language].title:
            return versions[language].title
    return name.removeprefix("reply_").replace("_", " ")


def _pending_suggestions(db, found: Request) -> list[tuple[DedupSuggestion, Request]]:
    """Possible duplicates dedup found for this request, waiting for an agent's decision."""
    rows = db.scalars(select(DedupSuggestion).where(DedupSuggestion.request_id == found.id,
                                                    DedupSuggestion.state == "pending")
                      .order_by(DedupSuggestion.score.desc())).all()
    return [(row, db.get(Request, row.candidate_id)) for row in rows]


def _timeline(found: Request) -> list[dict]:
    """Messages and events in the order they happened."""
    items = [{"at": m.created_at, "kind": "message", "item": m} for m in found.messages]
    items += [{"at": e.at, "kind": "event", "item": e} for e in found.events]
    return sorted(items, key=lambda i: (i["at"], i["kind"] == "event"))


def _followers(db, found: Request) -> int:
    return len(db.scalars(select(Follower.id).where(Follower.request_id == found.id)).all())


def _act(code: str, roles: tuple[str, ...], work, done_message: str):
    """Runs ``work(db, request)`` for a user allowed to, then sends what it queued."""
    if not can(current_user(), roles):
        abort(403)
    deliveries: list[int] = []
    try:
        with runtime().db.session() as db:  # ids, or the Delivery rows duplicates.* return
            deliveries = [d if isinstance(d, int) else d.id for d in work(db, _load(db, code)) or []]
    except (actions.ActionError, duplicates.DuplicateError) as exc:
        flash(str(exc), "error")
        return redirect(url_for("inbox.show", code=code)), 303
    except StatusError as exc:
        flash(_("This status change is not allowed: %(detail)s", detail=str(exc)), "error")
        return redirect(url_for("inbox.show", code=code)), 303
    for delivery_id in deliveries:
        runtime().jobs.enqueue("deliver", delivery_id)
    flash(done_message, "ok")
    return redirect(url_for("inbox.show", code=code)), 303


@bp.post("/r/<code>/reply")
@require_role()
def reply(code: str):
    return _act(code, ANSWERS_CITIZENS, lambda db, r: actions.reply(
        db, runtime(), r, request.form.get("text", ""), request.form.get("template", ""), actor()),
        _("Reply sent to the citizen's channel."))


@bp.post("/r/<code>/status")
@require_role()
def status(code: str):
    return _act(code, REPORTS_PROGRESS, lambda db, r: change_status(
        db, runtime(), r, request.form.get("status", ""), actor(), request.form.get("note", "").strip() or None),
        _("Status changed."))


@bp.post("/r/<code>/reroute")
@require_role()
def reroute(code: str):
    return _act(code, ANSWERS_CITIZENS, lambda db, r: actions.reroute(
        db, runtime(), r, request.form.get("category", ""), request.form.get("department", ""), actor()),
        _("Routed again; the decision is in the history."))


@bp.post("/r/<code>/assign")
@require_role()
def assign(code: str):
    target = request.form.get("user_id", type=database_id)
    if request.form.get("to") == "me":
        target = current_user().id
    return _act(code, ANSWERS_CITIZENS, lambda db, r: actions.assign(db, r, target, actor()), _("Assignment saved."))


@bp.post("/r/<code>/note")
@require_role()
def note(code: str):
    return _act(code, REPORTS_PROGRESS, lambda db, r: actions.add_note(db, r, request.form.get("text", ""), actor()),
                _("Note added."))


@bp.post("/r/<code>/spam")
@require_role()
def spam(code: str):
    return _act(code, ANSWERS_CITIZENS, lambda db, r: actions.mark_spam(db, r, actor()), _("Marked as spam."))


@bp.post("/r/<code>/forget")
@require_role(*ADMINISTERS)
def forget(code: str):
    """A citizen asking to be forgotten (Québec's access act): an administrator erases their
    name and contact points at once (gateway/retention.py), once the box is ticked."""
    def work(db, r):
        if r.citizen is None or r.citizen.forgotten_at is not None:
            raise actions.ActionError(_("This request's citizen has no personal data left to erase."))
        if request.form.get("confirm") != "yes":
            raise actions.ActionError(_("Tick the box to confirm that the citizen asked for it: nothing was erased."))
        retention.forget(db, r.citizen_id)
        db.add(Event(request_id=r.id, actor=actor(), type="citizen_forgotten", data={}))

    return _act(code, ADMINISTERS, work, _("The citizen's name and contact details were erased."))


@bp.post("/r/<code>/link")
@require_role()
def link(code: str):
    def work(db, r):
        typed = request.form.get("original", "").strip()
        master = db.scalar(select(Request).where(Request.code == typed.upper()))
        if master is None:
            raise duplicates.DuplicateError(_("No request has the code %(code)s.", code=typed))
        return duplicates.link(db, runtime(), r, master, actor())

    return _act(code, ANSWERS_CITIZENS, work, _("Linked as a duplicate."))


@bp.post("/r/<code>/unlink")
@require_role()
def unlink(code: str):
    return _act(code, ANSWERS_CITIZENS, lambda db, r: duplicates.unlink(db, runtime(), r, actor()),
                _("Unlinked: the request is handled on its own again."))


@bp.post("/r/<code>/suggestions/<candidate>/<decision>")
@require_role()
def suggestion(code: str, candidate: str, decision: str):
    """Confirm (merge) or reject a duplicate that dedup suggested."""
    if decision not in ("confirm", "reject"):
        abort(404)
    act = duplicates.confirm if decision == "confirm" else duplicates.reject

    def work(db, r):
        return act(db, runtime(), r, _load(db, candidate), actor())

    done = _("Confirmed: linked as a duplicate.") if decision == "confirm" else _("Suggestion rejected.")
    return _act(code, ANSWERS_CITIZENS, work, done)


@bp.get("/attachments/<int:attachment_id>")
@require_role()
def attachment(attachment_id: int):
    """A photo or a voice recording, stored under GATEWAY_DATA_DIR."""
    with runtime().db.session() as db:
        found = db.get(Attachment, attachment_id)
        if found is None or not may_see(current_user(), db.get(Request, found.request_id)):
            abort(404)
        if not found.storage_path:
            return redirect(found.source_url) if found.source_url else abort(404)
        root = Path(str(runtime().settings["GATEWAY_DATA_DIR"])).resolve()
        path = (root / found.storage_path).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            abort(404)
        return send_file(path, mimetype=found.content_type, download_name=found.filename, conditional=True)
