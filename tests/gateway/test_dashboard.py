"""Dashboards: exact figures on a hand-made month, filters, CSV, languages, roles, both databases."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, insert, text

from gateway.auth import add_user
from gateway.models import Citizen, Delivery, Follower, Request
from tests.bench.generate import generate

PERIOD = "start=2026-10-01&end=2026-10-10"  # previous period: 2026-09-21 … 2026-09-30
T0 = datetime(2026, 10, 2, 9, 0, tzinfo=UTC)
HOT = (45.4451, -75.7191)  # by the corner of rue King and rue Wellington (config/addresses.csv)


def request_row(i, created, **values):
    row = {"id": i, "code": f"R-2026-{i:07d}", "status": "routed", "kind": "service_request", "priority": "routine",
           "category": "pothole", "department": "travaux_publics", "channel": "web", "language": "fr",
           "description": "", "district": "centre", "lat": 45.44, "lon": -75.72, "created_at": created,
           "updated_at": created, "routed_at": created + timedelta(seconds=2),
           "acknowledged_at": created, "sla_due_at": created + timedelta(hours=72), "resolved_at": None,
           "closed_at": None, "duplicate_of_id": None}
    row.update(values)
    return row


def month_rows() -> list[dict]:
    hours = timedelta(hours=1)
    rows = [request_row(1 + i, T0 + i * hours, resolved_at=T0 + i * hours + h * hours, status="resolved")
            for i, h in enumerate((10, 20, 30, 40))]  # resolve: median 25 h, p90 37 h
    rows[2]["channel"] = rows[3]["channel"] = "sms"
    rows[2]["acknowledged_at"] = rows[2]["created_at"] + timedelta(seconds=60)
    rows[3]["acknowledged_at"] = rows[3]["created_at"] + timedelta(seconds=120)
    rows += [
        request_row(5, T0, channel="email", acknowledged_at=None, category="garbage", department="environnement",
                    district="nord", sla_due_at=T0 + timedelta(hours=48)),
        request_row(6, T0 + hours, channel="web", category="garbage", department="environnement", district="nord",
                    status="duplicate", duplicate_of_id=5, sla_due_at=T0 + timedelta(hours=49)),
        request_row(7, datetime(2026, 9, 25, tzinfo=UTC)),
        request_row(8, datetime(2026, 9, 26, tzinfo=UTC)),
    ]
    # A hot spot: potholes at one corner in four different weeks before the period's end.
    first = datetime(2026, 8, 17, 12, tzinfo=UTC)
    rows += [request_row(20 + w, first + timedelta(weeks=w), lat=HOT[0], lon=HOT[1], status="closed",
                         resolved_at=first + timedelta(weeks=w, hours=5), closed_at=first + timedelta(weeks=w, hours=6))
             for w in range(5)]
    return rows


def load(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(insert(Citizen), [{"id": 1, "consent": True, "created_at": T0}])
        connection.execute(insert(Request), month_rows())
        connection.execute(insert(Follower), [{"request_id": 5, "citizen_id": 1, "created_at": T0}])
        connection.execute(insert(Delivery), [
            {"request_id": 3, "purpose": "notify", "target": "sms", "settings": {}, "state": "delivered",
             "idempotency_key": "R-2026-0000003:notify:acknowledgement", "next_attempt_at": T0, "created_at": T0},
            {"request_id": 4, "purpose": "notify", "target": "email", "settings": {}, "state": "delivered",
             "idempotency_key": "R-2026-0000004:notify:acknowledgement", "next_attempt_at": T0, "created_at": T0},
        ])
    engine.dispose()


def sign_in(client, runtime, role="manager"):
    email = f"{role}@bellerive.example.org"
    add_user(runtime, email, role, "un mot de passe solide")
    page = client.get("/inbox/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/inbox/login", data={"email": email, "password": "un mot de passe solide", "csrf_token": token})
    return client


@pytest.fixture
def manager(client, runtime, settings):
    load(settings["DATABASE_URL"])
    return sign_in(client, runtime)


def table(client, page, name, query=PERIOD, lang="en"):
    response = client.get(f"/dashboard/{page}.csv?table={name}&{query}&lang={lang}")
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_dashboards_are_for_managers_supervisors_and_admins(client, runtime):
    assert client.get("/dashboard/").status_code == 302  # to the sign-in page
    sign_in(client, runtime, "agent")
    refused = client.get("/dashboard/?lang=fr")
    assert refused.status_code == 403
    assert "Page réservée à d'autres rôles" in refused.get_data(as_text=True)  # a page in their language
    assert client.get("/dashboard/open-data/requests.csv").status_code == 403


def test_volumes_compare_with_previous_period(manager):
    page = manager.get(f"/dashboard/?{PERIOD}&lang=en").get_data(as_text=True)

    assert "Requests in the period" in page and "+200.0 %" in page  # 6 against 2
    by_channel = {r["name"]: (r["count"], r["previous"]) for r in table(manager, "volumes", "by_channel")}
    assert by_channel == {"Web form": ("3", "2"), "Text message": ("2", "0"), "E-mail": ("1", "0")}
    by_department = {r["name"]: r["count"] for r in table(manager, "volumes", "by_department")}
    assert by_department == {"Public Works": "4", "Environment and Waste": "2"}
    days = table(manager, "volumes", "over_time", PERIOD + "&by=category")
    assert days[0]["day"] == "2026-10-02" and sum(int(v) for k, v in days[0].items() if k != "day") == 6


def test_delays_sla_and_backlog(manager):
    by_category = {r["name"]: r for r in table(manager, "delays", "delays_by_category")}
    assert float(by_category["Pothole"]["resolve_p50"]) == pytest.approx(25.0)
    assert float(by_category["Pothole"]["resolve_p90"]) == pytest.approx(37.0)
    assert float(by_category["Pothole"]["acknowledge_p90"]) == pytest.approx(0.0333 * 0.9 + 0.0, abs=0.01)
    sla = {r["name"]: r for r in table(manager, "delays", "sla")}
    assert (sla["Public Works"]["due"], sla["Public Works"]["on_time"], sla["Public Works"]["rate"]) == ("4", "4", "1.0")
    assert (sla["Environment and Waste"]["due"], sla["Environment and Waste"]["overdue_open"]) == ("1", "1")  # the duplicate is not counted
    backlog = {r["band"]: r["total"] for r in table(manager, "delays", "backlog")}
    assert sum(int(v) for v in backlog.values()) == 3  # requests 5, 7 and 8 are still open
    page = manager.get(f"/dashboard/delays?{PERIOD}&lang=en").get_data(as_text=True)
    assert "SLA compliance" in page and "80.0 %" in page  # 4 of 5 due requests on time


def test_duplicates_hot_spots_and_channels(manager):
    masters = table(manager, "recurring", "top_masters")
    assert masters == [{"code": "R-2026-0000005", "category": "Garbage collection", "district": "Plateau-Nord",
                        "status": "Sent to the department", "duplicates": "1", "followers": "1"}]
    spots = table(manager, "recurring", "hot_spots")
    assert spots[0]["category"] == "Pothole" and int(spots[0]["weeks"]) >= 3
    assert abs(float(spots[0]["lat"]) - HOT[0]) < 0.002
    assert spots[0]["near"] == "rue King / rue Wellington"  # the place in street names, from the register
    page = manager.get(f"/dashboard/recurring?{PERIOD}&lang=en").get_data(as_text=True)
    assert "16.7 %" in page  # 1 of 6 requests linked as a duplicate
    own = {r["name"]: (r["count"], r["own"]) for r in table(manager, "channels", "own_channel")}
    assert own == {"Web form": ("3", "3"), "Text message": ("2", "1"), "E-mail": ("1", "0")}


def test_filters_narrow_every_figure(manager):
    by_channel = table(manager, "volumes", "by_channel", PERIOD + "&district=nord")
    assert {r["name"]: r["count"] for r in by_channel} == {"E-mail": "1", "Web form": "1"}
    by_category = table(manager, "volumes", "by_category", PERIOD + "&department=travaux_publics")
    assert [(r["name"], r["count"]) for r in by_category] == [("Pothole", "4")]


@pytest.mark.parametrize("query, words", [
    ("start=2026-13-01", "YYYY-MM-DD"),
    ("start=2026-10-10&end=2026-10-01", "before its start"),
    ("start=2020-01-01&end=2026-01-01", "731"),
    ("district=atlantis", "Unknown district"),
    ("department=nope", "Unknown department"),
    ("unit=fortnight", "Unknown time unit"),
])
def test_bad_filters_say_what_is_wrong(manager, query, words):
    page = manager.get(f"/dashboard/?{query}&lang=en")
    csv_answer = manager.get(f"/dashboard/volumes.csv?table=by_channel&{query}&lang=en")

    assert page.status_code == 400 and words in page.get_data(as_text=True)
    assert csv_answer.status_code == 400 and words in csv_answer.get_data(as_text=True)


def test_unknown_table_or_page(manager):
    assert manager.get("/dashboard/volumes.csv?table=nope").status_code == 400
    assert manager.get("/dashboard/nope").status_code == 404


def test_pages_in_french_and_english_with_local_chart_library(manager):
    french = manager.get(f"/dashboard/?{PERIOD}&lang=fr").get_data(as_text=True)
    english = manager.get(f"/dashboard/?{PERIOD}&lang=en").get_data(as_text=True)

    assert "Demandes par canal" in french and "Requests by channel" in english
    assert "Nid-de-poule" in french and "Pothole" in english
    assert 'src="/static/vendor/chartjs/chart.umd.min.js"' in english
    assert not re.search(r'<script[^>]+src="(https?:)?//', english)  # no CDN
    library = manager.get("/static/vendor/chartjs/chart.umd.min.js")
    assert library.status_code == 200 and b"Chart.js v4" in library.data[:100]
    for name in ("delays", "recurring", "channels"):
        assert manager.get(f"/dashboard/{name}?{PERIOD}&lang=fr").status_code == 200


def test_monthly_report_for_council(manager):
    page = manager.get("/dashboard/report?month=2026-10&lang=fr").get_data(as_text=True)

    assert "Rapport 311 au conseil" in page and "2026-10" in page
    assert "Points chauds" in page and "Nid-de-poule" in page
    assert manager.get("/dashboard/report?month=October").status_code == 400
    assert "@media print" in manager.get("/static/style.css").get_data(as_text=True)



def test_same_figures_on_postgresql_and_sqlite(make_app, settings, pg_url):
    """The generated data (tests/bench/generate.py) gives the same tables on both databases."""
    end = datetime(2026, 11, 1, tzinfo=UTC)
    for url in (settings["DATABASE_URL"], pg_url):
        generate(url, 4000, days=120, end=end)
    answers = []
    for url in (settings["DATABASE_URL"], pg_url):
        app = make_app(DATABASE_URL=url, GATEWAY_INLINE_JOBS=False)  # no sweeper: SLA and closing passes would change one side
        client = sign_in(app.test_client(), app.extensions["runtime"], "admin")
        query = "start=2026-09-01&end=2026-10-31&unit=week"
        answers.append({(page, name): table(client, page, name, query) for page, name in [
            ("volumes", "over_time"), ("volumes", "by_district"), ("delays", "delays_by_department"),
            ("delays", "sla"), ("recurring", "hot_spots"), ("recurring", "rising"), ("recurring", "top_masters"),
            ("channels", "own_channel")]})
    sqlite, postgres = answers
    for key, rows in sqlite.items():
        assert len(rows) == len(postgres[key]), key
        for mine, theirs in zip(rows, postgres[key], strict=True):
            for column, value in mine.items():
                try:
                    assert float(value or 0) == pytest.approx(float(theirs[column] or 0), rel=1e-3), (key, column)
                except ValueError:
                    assert value == theirs[column], (key, column)
    assert sqlite[("volumes", "over_time")][0]["day"] == "2026-08-31"  # weeks start on Monday
    assert sqlite[("recurring", "hot_spots")] and sqlite[("recurring", "rising")][0]["name"] == "Graffiti"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_rollup_gives_the_figures_of_the_requests_themselves(request, settings, backend):
    from gateway.dashboard import queries, rollup
    from gateway.dashboard.queries import Filters

    url = settings["DATABASE_URL"] if backend == "sqlite" else request.getfixturevalue("pg_url")
    now = datetime.now(UTC)
    generate(url, 3000, days=200, end=now)
    engine = create_engine(url)
    midnight = datetime.combine((now + timedelta(days=1)).date(), datetime.min.time(), UTC)
    periods = [Filters(midnight - timedelta(days=90), midnight, unit) for unit in ("day", "week", "month")]
    periods.append(Filters(midnight - timedelta(days=60), midnight, "week", district="nord", department="environnement"))
    with engine.connect() as connection:
        for filters in periods:
            assert queries.all_volumes(connection, filters) == queries.all_volumes(connection, filters, use_rollup=False)
            for by in queries.DIMENSIONS:
                assert queries.series(connection, filters, by) == queries.series(connection, filters, by, use_rollup=False)
        built = connection.scalar(text("SELECT count(*) FROM dashboard_days_built"))
        assert built == (rollup.settled_before() - (midnight - timedelta(days=180))).days  # previous period too
        # A settled request re-categorized later: the roll-up keeps the old count until refreshed.
        old = connection.execute(text("SELECT id FROM requests WHERE created_at < :t ORDER BY created_at DESC LIMIT 1"),
                                 {"t": midnight - timedelta(days=30)}).one()
        connection.execute(text("UPDATE requests SET category = 'danger_public' WHERE id = :id"), {"id": old.id})
        connection.commit()
        stale = {r["key"]: r for r in queries.volumes(connection, periods[0], "category")}
        rollup.refresh(connection, (midnight - timedelta(days=91)).date())
        fresh = {r["key"]: r for r in queries.volumes(connection, periods[0], "category")}
    engine.dispose()
    assert "danger_public" not in stale
    assert fresh["danger_public"]["count"] + fresh["danger_public"]["previous"] == 1


def test_refresh_command_forgets_built_days(manager, settings, monkeypatch):
    from click.testing import CliRunner

    from gateway.cli import main

    assert table(manager, "volumes", "by_channel")  # builds the roll-up of the settled days shown
    for key, value in settings.items():
        monkeypatch.setenv(key, "" if value is None else str(value))

    done = CliRunner().invoke(main, ["dashboards", "refresh", "--since", "2026-09-01"])
    wrong = CliRunner().invoke(main, ["dashboards", "refresh", "--since", "last week"])

    assert done.exit_code == 0 and done.output.startswith("20 days will be rebuilt"), done.output
    assert wrong.exit_code != 0 and "YYYY-MM-DD" in wrong.output
    by_channel = {r["name"]: r["count"] for r in table(manager, "volumes", "by_channel")}
    assert by_channel == {"Web form": "3", "Text message": "2", "E-mail": "1"}  # built again, same figures
