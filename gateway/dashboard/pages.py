"""Each dashboard page as key figures and tables; every table can be a chart and a CSV.

A Table keeps raw values (counts, hours, ratios): the template formats them for people,
the CSV writes them as numbers, the chart plots them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l

from .. import labels
from . import queries
from .queries import AGE_BANDS, Filters

TOP_SERIES = 6


@dataclass
class Column:
    key: str
    label: object
    kind: str = "int"  # int | text | hours | ratio | change | number


@dataclass
class Table:
    key: str
    title: object
    columns: list[Column]
    rows: list[dict]
    chart: dict | None = None  # {"type": "bar"|"line"|"doughnut", "x": key, "series": [keys], "stacked", "horizontal"}
    note: object | None = None


@dataclass
class Page:
    key: str
    title: object
    figures: list[tuple[object, str]] = field(default_factory=list)  # (label, formatted value)
    tables: list[Table] = field(default_factory=list)

    def table(self, key: str) -> Table | None:
        return next((t for t in self.tables if t.key == key), None)


class Names:
    """People's names for stored codes, in the page's language."""

    def __init__(self, book, language: str):
        self.book, self.language = book, language

    def __call__(self, dimension: str, key) -> str:
        if key is None:
            return str(_l("(none)"))
        if dimension == "channel":
            return str(labels.CHANNEL.get(key, key))
        if dimension == "category":
            return self.book.category_name(key, self.language)
        if dimension == "department":
            department = self.book.departments.get(key)
            return department.name.get(self.language) if department else key
        if dimension == "district":
            district = self.book.areas.districts.get(key)
            return district.name if district else key
        return str(key)


DIMENSION_TITLES = {"channel": _l("Channel"), "category": _l("Category"), "department": _l("Department"),
                    "district": _l("District")}


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def volumes_page(connection, filters: Filters, names: Names, now, by: str = "channel") -> Page:
    page = Page("volumes", _l("Volumes"))
    tables = queries.all_volumes(connection, filters)
    total = sum(r["count"] for r in tables["channel"])
    previous = sum(r["previous"] for r in tables["channel"])
    page.figures = [
        (_l("Requests in the period"), f"{total:,}".replace(",", " ")),
        (_l("Previous period"), f"{previous:,}".replace(",", " ")),
        (_l("Change"), _change(total, previous)),
        (_l("Open today"), f"{sum(r['count'] for r in queries.backlog(connection, filters, now)):,}".replace(",", " ")),
    ]
    page.tables.append(_series_table(connection, filters, names, by))
    for dimension, rows in tables.items():
        page.tables.append(_volume_table(dimension, rows, names))
    return page


def _change(current: int, previous: int) -> str:
    if not previous:
        return "—"
    return f"{(current - previous) / previous * 100:+.1f} %"


def _volume_table(dimension: str, rows: list[dict], names: Names) -> Table:
    rows = [{"name": names(dimension, r["key"]), "count": r["count"], "previous": r["previous"],
             "change": ratio(r["count"] - r["previous"], r["previous"])} for r in rows]
    return Table(
        f"by_{dimension}", _l("Requests by %(dimension)s", dimension=str(DIMENSION_TITLES[dimension]).lower()),
        [Column("name", DIMENSION_TITLES[dimension], "text"), Column("count", _l("Period")),
         Column("previous", _l("Previous period")), Column("change", _l("Change"), "change")],
        rows, {"type": "bar", "x": "name", "series": ["count", "previous"], "horizontal": len(rows) > 8},
    )


def _series_table(connection, filters: Filters, names: Names, by: str) -> Table:
    counts: dict[str, dict] = defaultdict(dict)
    totals: dict = defaultdict(int)
    for day, key, count in queries.series(connection, filters, by):
        counts[day][key] = counts[day].get(key, 0) + count
        totals[key] += count
    top = sorted(totals, key=lambda k: -totals[k])[:TOP_SERIES]
    keys = [f"k{i}" for i in range(len(top))]
    columns = [Column("day", _l("Period starting"), "text")] + [Column(k, names(by, t)) for k, t in zip(keys, top, strict=True)]
    if len(totals) > TOP_SERIES:
        keys.append("other")
        columns.append(Column("other", _l("Others")))
    rows = []
    for day in sorted(counts):
        row = {"day": day, **{k: counts[day].get(t, 0) for k, t in zip(keys, top, strict=False)}}
        if "other" in keys:
            row["other"] = sum(v for key, v in counts[day].items() if key not in top)
        rows.append(row)
    return Table("over_time", _l("Requests over time by %(dimension)s", dimension=str(DIMENSION_TITLES[by]).lower()),
                 columns, rows, {"type": "bar", "x": "day", "series": keys, "stacked": True})


def delays_page(connection, filters: Filters, names: Names, now, by: str = "channel") -> Page:
    page = Page("delays", _l("Delays and SLA"))
    found, read, step = queries.delays(connection, filters)
    overall = found.get(("all", None), {})
    sla_rows = queries.sla(connection, filters, now)
    due, on_time = sum(r["due"] for r in sla_rows), sum(r["on_time"] for r in sla_rows)
    page.figures = [
        (_l("Time to acknowledge (median)"), _duration(overall.get("acknowledge"))),
        (_l("Time to resolve (median)"), _duration(overall.get("resolve"))),
        (_l("Time to resolve (90th percentile)"), _duration(overall.get("resolve"), 1)),
        (_l("SLA compliance"), percent(ratio(on_time, due))),
    ]
    note = _l("Estimated from a sample of %(n)s requests (1 in %(step)s).", n=read, step=step) if step > 1 else None
    for dimension in ("department", "category"):
        page.tables.append(_delay_table(dimension, found, names, note))
    page.tables.append(Table(
        "sla", _l("SLA compliance by department"),
        [Column("name", _l("Department"), "text"), Column("due", _l("Due in the period")),
         Column("on_time", _l("Resolved on time")), Column("rate", _l("Compliance"), "ratio"),
         Column("overdue_open", _l("Open and overdue"))],
        [{"name": names("department", r["key"]), "due": r["due"], "on_time": r["on_time"],
          "rate": ratio(r["on_time"], r["due"]), "overdue_open": r["overdue_open"]} for r in sla_rows],
        {"type": "bar", "x": "name", "series": ["rate"], "percent": True},
    ))
    page.tables.append(_backlog_table(queries.backlog(connection, filters, now), names))
    return page


def _duration(triple, index: int = 0) -> str:
    if not triple:
        return "—"
    return human_hours(triple[index] / 3600)


def human_hours(hours: float | None) -> str:
    if hours is None:
        return "—"
    if hours * 60 < 1:
        return f"{hours * 3600:.0f} s"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"


def _delay_table(dimension: str, found: dict, names: Names, note) -> Table:
    rows = []
    for (kind, key), values in found.items():
        if kind != dimension:
            continue
        row = {"name": names(dimension, key), "n": max((v[2] for v in values.values()), default=0)}
        for stage in ("acknowledge", "route", "resolve"):
            p50, p90, _n = values.get(stage, (None, None, 0))
            row[f"{stage}_p50"] = p50 / 3600 if p50 is not None else None
            row[f"{stage}_p90"] = p90 / 3600 if p90 is not None else None
        rows.append(row)
    rows.sort(key=lambda r: (-r["n"], r["name"]))
    return Table(
        f"delays_by_{dimension}", _l("Delays by %(dimension)s (hours)", dimension=str(DIMENSION_TITLES[dimension]).lower()),
        [Column("name", DIMENSION_TITLES[dimension], "text"), Column("n", _l("Requests")),
         Column("acknowledge_p50", _l("Acknowledge, median"), "hours"), Column("acknowledge_p90", _l("Acknowledge, p90"), "hours"),
         Column("route_p50", _l("Route, median"), "hours"), Column("route_p90", _l("Route, p90"), "hours"),
         Column("resolve_p50", _l("Resolve, median"), "hours"), Column("resolve_p90", _l("Resolve, p90"), "hours")],
        rows, {"type": "bar", "x": "name", "series": ["resolve_p50", "resolve_p90"], "horizontal": len(rows) > 8}, note,
    )


def _backlog_table(rows: list[dict], names: Names) -> Table:
    bands = [label for _days, label in AGE_BANDS]
    departments = sorted({r["key"] for r in rows}, key=lambda k: str(k))
    keys = [f"d{i}" for i in range(len(departments))]
    by_band = {band: {"band": band, "total": 0, **dict.fromkeys(keys, 0)} for band in bands}
    for r in rows:
        cell = by_band[r["band"]]
        cell[keys[departments.index(r["key"])]] += r["count"]
        cell["total"] += r["count"]
    columns = [Column("band", _l("Age"), "text"), Column("total", _l("Open requests"))] + [
        Column(k, names("department", d)) for k, d in zip(keys, departments, strict=True)]
    return Table("backlog", _l("Backlog by age (open requests today)"), columns, list(by_band.values()),
                 {"type": "bar", "x": "band", "series": keys, "stacked": True})


def recurring_page(connection, filters: Filters, names: Names, now, by: str = "channel") -> Page:
    page = Page("recurring", _l("Duplicates and recurring problems"))
    total, duplicates = queries.duplicate_share(connection, filters)
    spots = queries.recurring(connection, min(filters.end, now), filters=filters)
    growing = queries.rising(queries.volumes(connection, filters, "category"))
    page.figures = [
        (_l("Requests linked as duplicates"), percent(ratio(duplicates, total))),
        (_l("Hot spots (8 weeks)"), str(len(spots))),
        (_l("Rising categories"), str(len(growing))),
    ]
    page.tables.append(Table(
        "hot_spots", _l("Hot spots: the same problem at the same place, week after week"),
        [Column("category", _l("Category"), "text"), Column("district", _l("District"), "text"),
         Column("near", _l("Near"), "text"),
         Column("lat", _l("Latitude"), "number"), Column("lon", _l("Longitude"), "number"),
         Column("weeks", _l("Weeks with requests")), Column("count", _l("Requests"))],
        [{**s, "category": names("category", s["category"]), "district": names("district", s["district"]),
          "near": names.book.addresses.near(s["lat"], s["lon"]) or "—"}  # street names, never a house
         for s in spots[:25]],
        None, _l("Cells of about 100 m over the 8 weeks before the end of the period: reported in 3 weeks or more, "
            "5 times or more, and, for a category reported all over the city, 6 times more than in its average cell."),
    ))
    page.tables.append(Table(
        "rising", _l("Categories on the rise"),
        [Column("name", _l("Category"), "text"), Column("count", _l("Period")), Column("previous", _l("Previous period")),
         Column("growth", _l("Change"), "change")],
        [{"name": names("category", r["key"]), "count": r["count"], "previous": r["previous"], "growth": r["growth"]}
         for r in growing],
        {"type": "bar", "x": "name", "series": ["count", "previous"]},
    ))
    page.tables.append(Table(
        "top_masters", _l("Most reported problems (duplicates linked to them)"),
        [Column("code", _l("Request"), "text"), Column("category", _l("Category"), "text"),
         Column("district", _l("District"), "text"), Column("status", _l("Status"), "text"),
         Column("duplicates", _l("Duplicates")), Column("followers", _l("Followers"))],
        [{**r, "category": names("category", r["category"]), "district": names("district", r["district"]),
          "status": str(labels.STATUS.get(r["status"], r["status"]))} for r in queries.top_masters(connection, filters)],
        {"type": "bar", "x": "code", "series": ["duplicates", "followers"], "horizontal": True},
    ))
    return page


def channels_page(connection, filters: Filters, names: Names, now, by: str = "channel") -> Page:
    page = Page("channels", _l("Channels"))
    rows = queries.own_channel(connection, filters)
    total, own = sum(r["count"] for r in rows), sum(r["own"] for r in rows)
    page.figures = [(_l("Requests in the period"), f"{total:,}".replace(",", " ")),
                    (_l("Acknowledged on the citizen's own channel"), percent(ratio(own, total)))]
    page.tables.append(Table(
        "channel_mix", _l("Channel mix"),
        [Column("name", _l("Channel"), "text"), Column("count", _l("Requests")), Column("share", _l("Share"), "ratio")],
        [{"name": names("channel", r["key"]), "count": r["count"], "share": ratio(r["count"], total)} for r in rows],
        {"type": "doughnut", "x": "name", "series": ["count"]},
    ))
    page.tables.append(Table(
        "own_channel", _l("Acknowledged on the channel the citizen used"),
        [Column("name", _l("Channel"), "text"), Column("count", _l("Requests")), Column("own", _l("Acknowledged there")),
         Column("rate", _l("Share"), "ratio")],
        [{"name": names("channel", r["key"]), "count": r["count"], "own": r["own"], "rate": ratio(r["own"], r["count"])}
         for r in rows],
        {"type": "bar", "x": "name", "series": ["rate"], "percent": True},
        _l("Web, phone, counter, Open311 and API requests get their code in the answer itself."),
    ))
    return page


PAGES = {"volumes": volumes_page, "delays": delays_page, "recurring": recurring_page, "channels": channels_page}
