"""The anonymized open-data export of requests (CSV and GeoJSON), documented column by column.

What is left out, by construction: names, phone numbers, e-mail addresses, the citizen's
words (description, subject: free text may contain any of those), the street address (it
may be someone's home), attributes, messages and contact points. Locations are rounded to
OPEN_DATA_PRECISION decimal places (3 by default: about 110 m north–south). Only
the columns below are read from the database, so a new personal column cannot leak.
"""

from __future__ import annotations

import csv
import io
import json

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import aliased

from ..models import Request
from .queries import Filters

DEFAULT_PRECISION = 3
HIDDEN_STATUSES = ("rejected",)  # spam and abuse are not published
COLUMNS = [
    ("code", _l("Public tracking code of the request (e.g. R-2026-4821735).")),
    ("created_at", _l("When the request was received (UTC, ISO 8601).")),
    ("channel", _l("How it came in: phone, sms, email, messenger, telegram, walk_in, web, open311, api.")),
    ("kind", _l("service_request, complaint, information_request or suggestion.")),
    ("category", _l("Service code from the catalogue (config/catalogue.yaml).")),
    ("category_fr", _l("Category name in French.")),
    ("category_en", _l("Category name in English.")),
    ("department", _l("Code of the department in charge.")),
    ("priority", _l("urgent, routine or deferrable.")),
    ("status", _l("new, acknowledged, routed, in_progress, needs_info, resolved, closed or duplicate.")),
    ("district", _l("District code from config/districts.geojson.")),
    ("lat", _l("Latitude, rounded (WGS 84); empty when not given.")),
    ("lon", _l("Longitude, rounded (WGS 84); empty when not given.")),
    ("sla_due_at", _l("When the request was due under its service level (UTC).")),
    ("acknowledged_at", _l("When the citizen was given the tracking code (UTC).")),
    ("resolved_at", _l("When the problem was reported fixed (UTC).")),
    ("closed_at", _l("When the request was closed (UTC).")),
    ("duplicate_of", _l("Code of the request this one repeats, if any.")),
]
NAMES = [name for name, _doc in COLUMNS]


def precision(config) -> int:
    """OPEN_DATA_PRECISION decimal places (0–6) for coordinates."""
    try:
        value = int(config.get("OPEN_DATA_PRECISION", DEFAULT_PRECISION))
    except (TypeError, ValueError):
        return DEFAULT_PRECISION
    return min(max(value, 0), 6)


def _utc(value) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def export_rows(runtime, filters: Filters, places: int):
    """Yields one dict per published request, oldest first, read in batches."""
    book = runtime.rules.current
    master = aliased(Request)
    query = (
        select(Request.code, Request.created_at, Request.channel, Request.kind, Request.category,
               Request.department, Request.priority, Request.status, Request.district, Request.lat, Request.lon,
               Request.sla_due_at, Request.acknowledged_at, Request.resolved_at, Request.closed_at,
               master.code.label("duplicate_of"))
        .outerjoin(master, master.id == Request.duplicate_of_id)
        .where(filters.where(), Request.status.not_in(HIDDEN_STATUSES))
        .order_by(Request.created_at, Request.id)
    )
    with runtime.db.engine.connect() as connection:
        result = connection.execution_options(yield_per=5000).execute(query)
        for row in result:
            yield {
                "code": row.code, "created_at": _utc(row.created_at), "channel": row.channel, "kind": row.kind,
                "category": row.category, "category_fr": book.category_name(row.category, "fr"),
                "category_en": book.category_name(row.category, "en"), "department": row.department,
                "priority": row.priority, "status": row.status, "district": row.district,
                "lat": round(row.lat, places) if row.lat is not None else None,
                "lon": round(row.lon, places) if row.lon is not None else None,
                "sla_due_at": _utc(row.sla_due_at), "acknowledged_at": _utc(row.acknowledged_at),
                "resolved_at": _utc(row.resolved_at), "closed_at": _utc(row.closed_at),
                "duplicate_of": row.duplicate_of,
            }


def csv_stream(rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=NAMES)
    writer.writeheader()
    for number, row in enumerate(rows):
        writer.writerow(row)
        if number % 1000 == 999:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def geojson_stream(rows):
    """A FeatureCollection; requests without a location have a null geometry (RFC 7946 allows it)."""
    yield '{"type":"FeatureCollection","features":['
    first = True
    for row in rows:
        geometry = ({"type": "Point", "coordinates": [row["lon"], row["lat"]]}
                    if row["lat"] is not None and row["lon"] is not None else None)
        properties = {k: v for k, v in row.items() if k not in ("lat", "lon")}
        feature = {"type": "Feature", "geometry": geometry, "properties": properties}
        yield ("" if first else ",") + json.dumps(feature, ensure_ascii=False, separators=(",", ":"))
        first = False
    yield "]}"
