"""Pages for citizens: report a problem, follow a request. No sign-in, no personal data shown."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from adapters.errors import MalformedPayloadError
from normalizer.codes import find_codes

from .. import intake, tracking
from ..forms import submission_from_form
from ..i18n import current_language
from ..models import Request
from ..serialize import public_history

bp = Blueprint("public", __name__)


@bp.get("/")
def home():
    return render_template("home.html")


@bp.route("/report", methods=["GET", "POST"])
def report():
    runtime = current_app.extensions["runtime"]
    if request.method == "GET":
        return render_template("report.html", form={}, error=None)
    document = submission_from_form(request.form, channel="web", language=current_language())
    try:
        outcome = intake.submit(runtime, document)
    except MalformedPayloadError as exc:
        return render_template("report.html", form=request.form, error=exc), 400
    shown = {"added": 1} if outcome.joined else {"new": 1}  # added: they had reported it already
    return redirect(url_for("public.track", code=outcome.code, **shown), code=303)


@bp.get("/track")
def track_form():
    typed = request.args.get("code", "")
    if typed:
        prefix = current_app.extensions["runtime"].rules.current.city.code_prefix
        codes = find_codes(typed, prefix)
        if codes:
            return redirect(url_for("public.track", code=codes[0]))
        return render_template("track_form.html", typed=typed, invalid=True), 404
    return render_template("track_form.html", typed="", invalid=False)


@bp.get("/track/<code>")
def track(code: str):
    runtime = current_app.extensions["runtime"]
    with runtime.db.session() as session:
        found = session.scalar(select(Request).where(Request.code == code.upper()))
        if found is None:
            joined = tracking.joined(session, code)
            if joined is None:
                abort(404)
            return redirect(url_for("public.track", code=joined.code, **{"from": code.upper()}))
        given = _given_code(session, found, request.args.get("from", ""))
        book = runtime.rules.current
        language = current_language()
        return render_template(
            "track.html",
            request_=found,
            category=book.category_name(found.category, language),
            department=book.departments[found.department].name.get(language) if found.department in book.departments else "",
            district=book.areas.districts[found.district].name if found.district in book.areas.districts else None,
            history=public_history(found),
            just_created=request.args.get("new") == "1",
            just_added=request.args.get("added") == "1",
            given=given,
            timezone=book.timezone,
        )


def _given_code(session, found: Request, given: str) -> str:
    """The code the citizen came with (``?from=``), when it is another that leads here."""
    given = given.strip().upper()[:32]
    if not given or given == found.code:
        return ""
    joined = tracking.joined(session, given)
    return given if joined is not None and joined.id == found.id else ""


@bp.get("/healthz")
def healthz():
    runtime = current_app.extensions["runtime"]
    checks = {}
    try:
        checks["database"] = runtime.db.ping()
    except Exception as exc:  # any driver error means "not reachable"
        checks["database"] = False
        checks["database_error"] = type(exc).__name__
    if hasattr(runtime.jobs, "ping"):
        try:
            checks["redis"] = runtime.jobs.ping()
        except Exception as exc:
            checks["redis"] = False
            checks["redis_error"] = type(exc).__name__
    checks["rules"] = runtime.rules.last_error is None
    healthy = checks["database"] and checks.get("redis", True)
    return jsonify(status="ok" if healthy else "unavailable", checks=checks), 200 if healthy else 503
