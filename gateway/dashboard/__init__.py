"""Dashboards for managers and council (/dashboard): volumes, delays, recurring problems,
channels, a printable monthly report and the anonymized open-data export.

Every page takes the same filters (start, end, unit, district, department, by), shows each
chart with its table, and offers each table as CSV (``/dashboard/<page>.csv?table=…``).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, Response, current_app, render_template, request
from flask_babel import lazy_gettext as _l

from ..auth import current_user, require_role
from ..i18n import current_language
from ..models import utcnow
from . import opendata, pages
from .queries import DIMENSIONS, Filters

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")
ROLES = ("manager", "supervisor", "admin")
MAX_DAYS = 731
UNITS = ("day", "week", "month")


class FilterError(ValueError):
    """A filter the dashboards cannot use; the page says which."""


@bp.get("/", defaults={"name": "volumes"})
@bp.get("/<name>")
@require_role(*ROLES)
def page(name: str):
    if name not in pages.PAGES:
        return render_template("error.html", status=404), 404
    try:
        filters, by = parse_filters(request.args)
    except FilterError as exc:
        filters, by = default_filters(), "channel"
        return _render(name, filters, by, error=str(exc)), 400
    return _render(name, filters, by)


@bp.get("/<name>.csv")
@require_role(*ROLES)
def table_csv(name: str):
    if name not in pages.PAGES:
        return Response("no such dashboard\n", 404, mimetype="text/plain")
    try:
        filters, by = parse_filters(request.args)
    except FilterError as exc:
        return Response(f"{exc}\n", 400, mimetype="text/plain")
    built = _build(name, filters, by)
    table = built.table(request.args.get("table", ""))
    if table is None:
        return Response("unknown table: one of " + ", ".join(t.key for t in built.tables) + "\n", 400,
                        mimetype="text/plain")
    filename = f"{name}-{table.key}-{filters.start:%Y%m%d}-{(filters.end - timedelta(seconds=1)):%Y%m%d}.csv"
    return Response(to_csv(table), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/report")
@require_role(*ROLES)
def report():
    """The month's report for council: print it, or save it as PDF from the browser."""
    raw = request.args.get("month") or (utcnow().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    try:
        first = datetime.strptime(raw, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        return render_template("error.html", status=400), 400
    following = (first + timedelta(days=32)).replace(day=1)
    filters = Filters(first, following, "day")
    runtime = current_app.extensions["runtime"]
    names = pages.Names(runtime.rules.current, current_language())
    now = min(utcnow(), following)
    with runtime.db.engine.connect() as connection:
        volumes = pages.volumes_page(connection, filters, names, now, "category")
        delays = pages.delays_page(connection, filters, names, now)
        recurring = pages.recurring_page(connection, filters, names, now)
    return render_template("dashboard/report.html", month=first, volumes=volumes, delays=delays,
                           recurring=recurring, fmt=format_cell, chart_data=chart_data, user=current_user(),
                           city=runtime.rules.current.city.name.get(current_language()))


@bp.get("/open-data")
@require_role(*ROLES)
def open_data():
    filters, _by = _filters_or_default()
    return render_template("dashboard/open_data.html", columns=opendata.COLUMNS, filters=filters,
                           precision=opendata.precision(current_app.config), user=current_user(),
                           query=_period_query(filters))


@bp.get("/open-data/requests.<fmt>")
@require_role(*ROLES)
def open_data_export(fmt: str):
    if fmt not in ("csv", "geojson"):
        return Response("format: csv or geojson\n", 404, mimetype="text/plain")
    try:
        filters, _by = parse_filters(request.args)
    except FilterError as exc:
        return Response(f"{exc}\n", 400, mimetype="text/plain")
    runtime = current_app.extensions["runtime"]
    rows = opendata.export_rows(runtime, filters, opendata.precision(current_app.config))
    body = opendata.csv_stream(rows) if fmt == "csv" else opendata.geojson_stream(rows)
    mimetype = "text/csv" if fmt == "csv" else "application/geo+json"
    name = f"requests-{filters.start:%Y%m%d}-{(filters.end - timedelta(seconds=1)):%Y%m%d}.{fmt}"
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _render(name: str, filters: Filters, by: str, error: str | None = None):
    built = _build(name, filters, by)
    book = current_app.extensions["runtime"].rules.current
    names = pages.Names(book, current_language())
    return render_template(
        "dashboard/page.html", page=built, pages=pages.PAGES, filters=filters, by=by, error=error,
        districts=[(c, d.name) for c, d in book.areas.districts.items()],
        departments=[(c, names("department", c)) for c in book.departments],
        dimensions=[(d, pages.DIMENSION_TITLES[d]) for d in DIMENSIONS], units=UNITS,
        fmt=format_cell, chart_data=chart_data, query=_query(filters, by), user=current_user(),
        page_titles={"volumes": _l("Volumes"), "delays": _l("Delays and SLA"),
                     "recurring": _l("Recurring problems"), "channels": _l("Channels")},
    )


def _build(name: str, filters: Filters, by: str) -> pages.Page:
    runtime = current_app.extensions["runtime"]
    names = pages.Names(runtime.rules.current, current_language())
    with runtime.db.engine.connect() as connection:
        return pages.PAGES[name](connection, filters, names, utcnow(), by)


def default_filters() -> Filters:
    end = datetime.combine(utcnow().date() + timedelta(days=1), time(), UTC)
    return Filters(end - timedelta(days=30), end, "day")


def _filters_or_default():
    try:
        return parse_filters(request.args)
    except FilterError:
        return default_filters(), "channel"


def parse_filters(args) -> tuple[Filters, str]:
    """Filters from the query string; dates are whole UTC days, ``end`` included.

    Raises FilterError naming the parameter at fault."""
    default = default_filters()
    start = _day(args, "start") or None
    end = _day(args, "end")
    end = datetime.combine(end + timedelta(days=1), time(), UTC) if end else default.end
    start = datetime.combine(start, time(), UTC) if start else end - (default.end - default.start)
    if end <= start:
        raise FilterError(str(_l("The end of the period is before its start.")))
    if (end - start).days > MAX_DAYS:
        raise FilterError(str(_l("The period may not exceed %(days)s days.", days=MAX_DAYS)))
    unit = args.get("unit") or ("day" if (end - start).days <= 62 else "week" if (end - start).days <= 366 else "month")
    if unit not in UNITS:
        raise FilterError(str(_l("Unknown time unit.")))
    book = current_app.extensions["runtime"].rules.current
    district = args.get("district") or None
    if district and district not in book.areas.districts:
        raise FilterError(str(_l("Unknown district.")))
    department = args.get("department") or None
    if department and department not in book.departments:
        raise FilterError(str(_l("Unknown department.")))
    by = args.get("by") or "channel"
    if by not in DIMENSIONS:
        raise FilterError(str(_l("Unknown breakdown.")))
    return Filters(start, end, unit, district, department), by


def _day(args, name: str) -> date | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise FilterError(str(_l("Dates are written YYYY-MM-DD (%(name)s).", name=name))) from None


def _period_query(filters: Filters) -> dict:
    query = {"start": filters.start.date().isoformat(), "end": (filters.end - timedelta(days=1)).date().isoformat()}
    if filters.district:
        query["district"] = filters.district
    if filters.department:
        query["department"] = filters.department
    return query


def _query(filters: Filters, by: str) -> dict:
    return {**_period_query(filters), "unit": filters.unit, "by": by}


def format_cell(value, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "change":
        return f"{value * 100:+.1f} %"
    if kind == "ratio":
        return f"{value * 100:.1f} %"
    if kind == "hours":
        return pages.human_hours(value)
    if kind == "int":
        return f"{value:,}".replace(",", " ")
    return str(value)


def to_csv(table: pages.Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c.key for c in table.columns])
    for row in table.rows:
        writer.writerow(["" if row.get(c.key) is None else
                         round(row[c.key], 4) if isinstance(row.get(c.key), float) else row[c.key]
                         for c in table.columns])
    return out.getvalue()


def chart_data(table: pages.Table) -> dict | None:
    """What static/dashboard.js needs to draw ``table``'s chart."""
    if not table.chart:
        return None
    spec = table.chart
    labels_by_key = {c.key: str(c.label) for c in table.columns}
    scale = 100 if spec.get("percent") else 1
    datasets = [{"label": labels_by_key[key],
                 "data": [None if row.get(key) is None else round(row[key] * scale, 2) for row in table.rows]}
                for key in spec["series"]]
    return {
        "type": spec["type"], "stacked": bool(spec.get("stacked")), "horizontal": bool(spec.get("horizontal")),
        "percent": bool(spec.get("percent")),
        # Counts of requests: the value axis is graduated in whole numbers (not 0.2, 0.4… for 2 requests).
        "whole": all(isinstance(v, int) for d in datasets for v in d["data"] if v is not None),
        "labels": [str(row.get(spec["x"])) for row in table.rows],
        "datasets": datasets,
    }

