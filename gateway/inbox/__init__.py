"""The staff side: sign-in, the counter's walk-in form, the list of requests."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from sqlalchemy import select

from adapters.errors import MalformedPayloadError

from .. import intake
from ..auth import authenticate, current_user, require_role
from ..forms import submission_from_form
from ..models import Request

bp = Blueprint("inbox", __name__, url_prefix="/inbox")
COUNTER_ROLES = ("agent", "supervisor", "admin")


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        user = authenticate(current_app.extensions["runtime"], request.form.get("email", ""),
                            request.form.get("password", ""))
        if user is not None:
            session.clear()
            session["user_id"] = user.id
            target = request.args.get("next", "")
            return redirect(target if target.startswith("/") and not target.startswith("//") else url_for("inbox.index"))
        error = True
    return render_template("login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout():
    session.pop("user_id", None)
    return redirect(url_for("inbox.login"))


@bp.get("/")
@require_role()
def index():
    runtime = current_app.extensions["runtime"]
    with runtime.db.session() as db:
        rows = db.scalars(select(Request).order_by(Request.created_at.desc()).limit(50)).all()
        book = runtime.rules.current
        return render_template("inbox.html", rows=rows, book=book, user=current_user())


@bp.route("/walk-in", methods=["GET", "POST"])
@require_role(*COUNTER_ROLES)
def walk_in():
    runtime = current_app.extensions["runtime"]
    book = runtime.rules.current
    if request.method == "GET":
        return render_template("walk_in.html", form={}, error=None, book=book, user=current_user())
    document = submission_from_form(request.form, channel="walk_in", language=None)
    try:
        outcome = intake.submit(runtime, document)
    except MalformedPayloadError as exc:
        return render_template("walk_in.html", form=request.form, error=exc, book=book, user=current_user()), 400
    with runtime.db.session() as db:
        created = db.scalar(select(Request).where(Request.code == outcome.code))
        return render_template("walk_in_done.html", request_=created, code=outcome.code, book=book,
                               user=current_user())
