"""The administrators' console: routing rules, channels and sinks' health, dead deliveries,
users and roles. Administrators only; every change is recorded with who and when."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from router import tried

from .. import outbox, retention
from ..auth import add_user, checked_department, current_user, require_role
from ..models import ROLES, ConfigVersion, Delivery, User, utcnow
from ..permissions import ADMINISTERS
from . import config_files, health

bp = Blueprint("admin", __name__, url_prefix="/admin")


def runtime():
    return current_app.extensions["runtime"]


def actor() -> str:
    return f"admin:{current_user().email}"


@bp.get("/")
@require_role(*ADMINISTERS)
def index():
    return redirect(url_for("admin.rules"))


@bp.get("/rules")
@require_role(*ADMINISTERS)
def rules():
    name = _editable(request.args.get("file", "rules.yaml"))
    text = config_files.read(runtime().rules.directory, name)
    return _rules_page(name, text)


def _editable(name: str) -> str:
    if name not in config_files.EDITABLE:
        abort(404)
    return name


def _rules_page(name: str, text: str, problems=None, checked=False, trial=None, status: int = 200):
    holder = runtime().rules
    with runtime().db.session() as db:
        versions = config_files.history(db, name)
        return render_template(
            "admin_rules.html", user=current_user(), book=holder.current, name=name, text=text,
            problems=problems or [], checked=checked, trial=trial, versions=versions,
            files=config_files.EDITABLE, reload_error=holder.last_error,
            excerpt=_around({p.line for p in problems or [] if p.file == name and p.line}, text),
        ), status


def _around(bad: set[int], text: str, context: int = 3) -> list[tuple[int, str, bool]]:
    """The lines with problems and a few around them: (number, text, is_bad); 0 marks a gap."""
    rows: list[tuple[int, str, bool]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if any(abs(number - b) <= context for b in bad):
            if rows and rows[-1][0] != number - 1:
                rows.append((0, "…", False))
            rows.append((number, line, number in bad))
    return rows


@bp.post("/rules")
@require_role(*ADMINISTERS)
def rules_post():
    name = _editable(request.form.get("file", ""))
    text = request.form.get("text", "").replace("\r\n", "\n")
    action = request.form.get("action", "validate")
    holder = runtime().rules
    if action == "apply":
        with runtime().db.session() as db:
            problems = config_files.apply(runtime(), db, name, text, current_user().email)
        if problems:
            return _rules_page(name, text, problems, checked=True, status=422)
        flash(_("%(file)s applied and reloaded: the new rules are in force.", file=name), "ok")
        return redirect(url_for("admin.rules", file=name), 303)
    book, problems = config_files.validate(holder.directory, name, text, holder.sink_types)
    trial = _try_sentence(book) if action == "try" and book is not None else None
    return _rules_page(name, text, problems, checked=True, trial=trial, status=422 if problems else 200)


def _try_sentence(book) -> dict | None:
    sentence = request.form.get("sentence", "").strip()
    if not sentence:
        return None
    decision, place = tried(book, sentence, request.form.get("language", "fr"), request.form.get("channel", "web"),
                            utcnow(), request.form.get("lat", type=float), request.form.get("lon", type=float))
    return {"sentence": sentence, "decision": decision, "place": place, "book": book}


@bp.post("/rules/rollback")
@require_role(*ADMINISTERS)
def rules_rollback():
    name = request.form.get("file", "")
    try:
        with runtime().db.session() as db:
            problems = config_files.rollback(runtime(), db, name, current_user().email)
    except config_files.ConfigEditError:
        flash(_("No earlier version of %(file)s was recorded here.", file=name), "error")
        return redirect(url_for("admin.rules", file=name if name in config_files.EDITABLE else "rules.yaml"), 303)
    if problems:
        flash(_("The previous version no longer loads: %(problem)s", problem=problems[0]), "error")
    else:
        flash(_("%(file)s rolled back to its previous version.", file=name), "ok")
    return redirect(url_for("admin.rules", file=name), 303)


@bp.get("/rules/version/<int:version_id>")
@require_role(*ADMINISTERS)
def rules_version(version_id: int):
    with runtime().db.session() as db:
        version = db.get(ConfigVersion, version_id)
        if version is None:
            abort(404)
        return _rules_page(version.filename, version.content)


@bp.get("/health")
@require_role(*ADMINISTERS)
def health_page():
    with runtime().db.session() as db:
        days = float(runtime().settings.get("GATEWAY_RETENTION_DAYS") or 0)
        return render_template("admin_health.html", user=current_user(), book=runtime().rules.current,
                               rows=health.report(runtime(), db), dead=health.dead_deliveries(db),
                               retention=retention.summary(db, days))


@bp.post("/deliveries/<int:delivery_id>/retry")
@require_role(*ADMINISTERS)
def retry(delivery_id: int):
    if outbox.retry_dead(runtime(), delivery_id, actor()):
        flash(_("Delivery %(id)s sent again.", id=delivery_id), "ok")
    else:
        flash(_("Delivery %(id)s is not a dead delivery.", id=delivery_id), "error")
    return redirect(url_for("admin.health_page"), 303)


@bp.post("/deliveries/retry-all")
@require_role(*ADMINISTERS)
def retry_all():
    with runtime().db.session() as db:
        ids = list(db.scalars(select(Delivery.id).where(Delivery.state == "dead")))
    sent = sum(outbox.retry_dead(runtime(), delivery_id, actor()) for delivery_id in ids)
    flash(_("%(n)s dead deliveries sent again.", n=sent), "ok")
    return redirect(url_for("admin.health_page"), 303)


@bp.get("/users")
@require_role(*ADMINISTERS)
def users():
    return _users_page()


def _users_page(form=None, error=None, status: int = 200):
    with runtime().db.session() as db:
        accounts = list(db.scalars(select(User).order_by(User.email)))
        return render_template("admin_users.html", user=current_user(), book=runtime().rules.current,
                               accounts=accounts, roles=ROLES, form=form or {}, error=error), status


@bp.post("/users")
@require_role(*ADMINISTERS)
def users_add():
    form = request.form
    try:
        add_user(runtime(), form.get("email", ""), form.get("role", ""), form.get("password", ""),
                 form.get("name") or None, form.get("department") or None)
    except ValueError as exc:
        return _users_page(form, str(exc), 400)
    flash(_("Account created for %(email)s.", email=form.get("email", "").strip().lower()), "ok")
    return redirect(url_for("admin.users"), 303)


@bp.post("/users/<int:user_id>")
@require_role(*ADMINISTERS)
def users_update(user_id: int):
    role = request.form.get("role", "")
    active = request.form.get("active") == "1"
    with runtime().db.session() as db:
        account = db.get(User, user_id)
        if account is None:
            abort(404)
        if account.id == current_user().id and (role != "admin" or not active):
            flash(_("You cannot remove your own administrator access."), "error")
            return redirect(url_for("admin.users"), 303)
        if role not in ROLES:
            abort(400)
        try:
            department = checked_department(runtime(), role, request.form.get("department") or None)
        except ValueError as exc:
            flash(str(exc), "error")
            return redirect(url_for("admin.users"), 303)
        account.role, account.active, account.department = role, active, department
        email = account.email
    flash(_("Account %(email)s updated.", email=email), "ok")
    return redirect(url_for("admin.users"), 303)
