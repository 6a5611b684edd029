"""The staff side: sign-in, the unified inbox, the request page, the counter's walk-in form.

Routes here read and render; what agents do to a request lives in actions.py, the list's
filters and pagination in queries.py.
"""

from __future__ import annotations

import segno
from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import force_locale
from markupsafe import Markup
from sqlalchemy import select

from adapters.errors import MalformedPayloadError

from .. import intake, ratelimit
from ..auth import authenticate, current_user, require_role
from ..forms import submission_from_form
from ..i18n import LANGUAGES, current_language
from ..ids import database_id
from ..models import Request, User, utcnow
from ..permissions import ANSWERS_CITIZENS, SEES_ADDRESS, SEES_CONTACTS, can, scope
from . import queries

bp = Blueprint("inbox", __name__, url_prefix="/inbox")
COUNTER_ROLES = ANSWERS_CITIZENS


def runtime():
    return current_app.extensions["runtime"]


def remember_language() -> None:
    """A signed-in user's choice of language is kept with their account (for every page but the
    webhooks: gateway/app.py ``_checks``)."""
    user_id = session.get("user_id")
    if user_id is None:  # visitors and provider webhooks: their query string is not parsed for this
        return
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        with runtime().db.session() as db:
            user = db.get(User, user_id)
            if user is not None and user.language != chosen:
                user.language = chosen


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        return render_template("login.html", error=None)
    email = request.form.get("email", "")
    keys = ratelimit.keys(request.remote_addr, email)
    limit = int(runtime().settings["GATEWAY_LOGIN_FAILURES"])
    with runtime().db.session() as db:
        if ratelimit.blocked(db, keys, limit):
            return render_template("login.html", error="throttled"), 429, {"Retry-After": "900"}
    user = authenticate(runtime(), email, request.form.get("password", ""))
    with runtime().db.session() as db:
        if user is None:
            ratelimit.record_failure(db, keys)
            return render_template("login.html", error="wrong"), 401
        ratelimit.forget(db, keys)
        chosen = session.get("lang")  # picked on the sign-in page: kept with the account
        if chosen in LANGUAGES and chosen != user.language:
            db.get(User, user.id).language = chosen
    session.clear()
    session["user_id"] = user.id
    session["lang"] = chosen if chosen in LANGUAGES else user.language
    target = request.args.get("next", "")
    safe = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return redirect(target if safe else url_for("inbox.index"))


@bp.post("/logout")
def logout():
    session.pop("user_id", None)
    return redirect(url_for("inbox.login"))


def _listing(filters: queries.Filters):
    user = current_user()
    book = runtime().rules.current
    where = scope(user) + queries.conditions(filters, user.id, utcnow(), book.city.phone_region,
                                             can(user, SEES_CONTACTS))
    return user, book, where


@bp.get("/")
@require_role()
def index():
    filters = queries.Filters.from_args(request.args)
    user, book, where = _listing(filters)
    cache = queries.cached_counts
    cache.ttl = float(runtime().settings["GATEWAY_INBOX_COUNTS_SECONDS"])
    seen = f"{runtime().db.url}|{user.department if scope(user) else ''}"  # a department member's counts are theirs
    key = f"{seen}|{user.id if filters.mine else ''}|{sorted(filters.args(sort='newest').items())}"
    with runtime().db.session() as db:
        page = queries.list_page(db, filters, where, counts=cache, count_key=key)
        counts = cache.get(f"{seen}|facets", lambda: queries.facet_counts.compute(db, scope(user)))
        mine = queries.capped_count(db, [queries.assigned_to(user.id), Request.status.in_(queries.OPEN_STATUSES)])
        return render_template(
            "inbox.html", page=page, filters=filters, counts=counts, mine=mine, book=book, user=user,
            poll_seconds=runtime().settings["GATEWAY_INBOX_POLL_SECONDS"],
            last_id=max((r.id for r in page.rows), default=0), cap=queries.COUNT_CAP,
            sees_contacts=can(user, SEES_CONTACTS), sees_address=can(user, SEES_ADDRESS), counter=can(user, COUNTER_ROLES),
            choices=_choices(book), now=utcnow(),
            reports=queries.reports_again(db, page.rows),
        )


def _choices(book) -> dict:
    """(code, name) pairs for the filters whose values come from config/."""
    lang = current_language()
    return {
        "category": sorted(((c, v.name.get(lang)) for c, v in book.categories.items()), key=lambda p: p[1]),
        "department": sorted(((c, v.name.get(lang)) for c, v in book.departments.items()), key=lambda p: p[1]),
        "district": sorted(((c, d.name) for c, d in book.areas.districts.items()), key=lambda p: p[1]),
    }


@bp.get("/poll")
@require_role()
def poll():
    """New requests matching the inbox's filters since ``since`` (an id), as table rows."""
    filters = queries.Filters.from_args(request.args)
    user, book, where = _listing(filters)
    since = request.args.get("since", type=database_id) or 0
    with runtime().db.session() as db:
        rows = queries.newer_than(db, where, since)
        html = render_template("_inbox_rows.html", rows=rows, book=book, user=user, now=utcnow(),
                               reports=queries.reports_again(db, rows), sees_address=can(user, SEES_ADDRESS))
    return jsonify(count=len(rows), last_id=max((r.id for r in rows), default=since), html=html)


@bp.route("/walk-in", methods=["GET", "POST"])
@require_role(*COUNTER_ROLES)
def walk_in():
    book = runtime().rules.current
    if request.method == "GET":
        return render_template("walk_in.html", form={}, error=None, book=book, user=current_user())
    document = submission_from_form(request.form, channel="walk_in", language=None)
    try:
        outcome = intake.submit(runtime(), document)
    except MalformedPayloadError as exc:
        return render_template("walk_in.html", form=request.form, error=exc, book=book, user=current_user()), 400
    with runtime().db.session() as db:
        created = db.scalar(select(Request).where(Request.code == outcome.code))
        return render_template("walk_in_done.html", request_=created, code=outcome.code, book=book,
                               user=current_user(), joined=outcome.joined)


@bp.get("/walk-in/receipt/<code>")
@require_role(*COUNTER_ROLES)
def walk_in_receipt(code: str):
    """A receipt to print for the citizen at the counter (SPEC: "printed/emailed receipt"), in
    their language (``?in=`` another): the tracking code, what they reported, and where to
    follow it, as a link and its QR code."""
    book = runtime().rules.current
    with runtime().db.session() as db:
        found = db.scalar(select(Request).where(Request.code == code.upper()))
        if found is None:
            abort(404)
        wanted = request.args.get("in")
        language = wanted if wanted in LANGUAGES else found.language or book.city.default_language
        track_url = runtime().public_url(f"/track/{found.code}")
        with force_locale(language):
            return render_template("walk_in_receipt.html", r=found, book=book, lang=language, track_url=track_url,
                                   qr=Markup(segno.make(track_url, error="m").svg_inline(scale=4, title=None)),
                                   other="en" if language == "fr" else "fr")


from . import detail  # noqa: E402,F401  (registers the request page's routes on bp)
