"""The anonymized open-data export: documented columns, no personal data, rounded places."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from gateway.dashboard.opendata import NAMES
from gateway.models import Request

from .test_dashboard import sign_in

PERSONAL = {"description": "Lampadaire brûlé devant chez moi, appelez Jean Tremblay au 514-555-0142",
            "subject": "Jean Tremblay, 12 rue des Érables",
            "citizen": {"name": "Jean Tremblay", "email": "jean.tremblay@example.org", "phone": "514-555-0142"},
            "location": {"lat": 45.441234, "lon": -75.721987, "address": "12, rue des Érables"}}


@pytest.fixture
def exported(make_app, auth):
    def run(**overrides):
        app = make_app(**overrides)
        client = app.test_client()
        created = client.post("/api/v1/requests", json=PERSONAL, headers=auth).get_json()
        spam = client.post("/api/v1/requests", json={"description": "BUY CHEAP PILLS", "citizen": {"email": "x@example.org"}},
                           headers=auth).get_json()
        with app.extensions["runtime"].db.session() as session:
            session.execute(update(Request).where(Request.code == spam["code"]).values(status="rejected"))
        sign_in(client, app.extensions["runtime"])
        as_csv = client.get("/dashboard/open-data/requests.csv")
        as_geojson = client.get("/dashboard/open-data/requests.geojson")
        assert as_csv.status_code == as_geojson.status_code == 200
        return created["code"], as_csv, as_geojson
    return run


def test_export_has_documented_columns_and_no_personal_data(exported):
    code, as_csv, as_geojson = exported()

    rows = list(csv.DictReader(io.StringIO(as_csv.get_data(as_text=True))))
    assert as_csv.mimetype == "text/csv" and "attachment" in as_csv.headers["Content-Disposition"]
    assert list(rows[0]) == NAMES
    assert [r["code"] for r in rows] == [code]  # the rejected (spam) request is left out
    row = rows[0]
    assert (row["category"], row["category_fr"], row["category_en"]) == ("streetlight", "Lampadaire", "Streetlight")
    assert (row["lat"], row["lon"]) == ("45.441", "-75.722")
    assert row["created_at"].endswith("Z") and row["channel"] == "api"
    for text in (as_csv.get_data(as_text=True), as_geojson.get_data(as_text=True)):
        for personal in ("Tremblay", "jean", "555-0142", "5550142", "Érables", "brûlé", "45.441234"):
            assert personal not in text


def test_geojson_is_a_feature_collection_of_rounded_points(exported):
    code, _csv, as_geojson = exported(OPEN_DATA_PRECISION="2")

    document = json.loads(as_geojson.get_data(as_text=True))
    assert as_geojson.mimetype == "application/geo+json"
    assert document["type"] == "FeatureCollection" and len(document["features"]) == 1
    feature = document["features"][0]
    assert feature["geometry"] == {"type": "Point", "coordinates": [-75.72, 45.44]}
    assert feature["properties"]["code"] == code
    assert set(feature["properties"]) == set(NAMES) - {"lat", "lon"}


def test_open_data_page_documents_every_column(client, runtime):
    sign_in(client, runtime, "admin")
    page = client.get("/dashboard/open-data?lang=fr").get_data(as_text=True)

    for name in NAMES:
        assert f">{name}<" in page
    assert "arrondies à 3 décimales" in page
    assert client.get("/dashboard/open-data/requests.csv?start=nope").status_code == 400


def test_request_without_location_has_null_geometry(make_app, auth):
    app = make_app()
    client = app.test_client()
    client.post("/api/v1/requests", json={"description": "Question sur mon compte de taxes"}, headers=auth)
    sign_in(client, app.extensions["runtime"])

    document = json.loads(client.get("/dashboard/open-data/requests.geojson").get_data(as_text=True))

    assert document["features"][0]["geometry"] is None
    with app.extensions["runtime"].db.session() as session:
        assert session.scalar(select(Request.lat)) is None


def test_command_line_writes_the_same_export(make_app, auth, settings, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from gateway.cli import main

    app = make_app()
    app.test_client().post("/api/v1/requests", json=PERSONAL, headers=auth)
    for key, value in settings.items():
        monkeypatch.setenv(key, "" if value is None else str(value))
    today = datetime.now(UTC).date().isoformat()
    target = tmp_path / "requests.csv"

    result = CliRunner().invoke(main, ["opendata", "--start", today, "--end", today, "--output", str(target)])
    wrong = CliRunner().invoke(main, ["opendata", "--start", "yesterday", "--end", today])

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert len(rows) == 1 and rows[0]["lat"] == "45.441" and "Tremblay" not in target.read_text()
    assert wrong.exit_code != 0 and "YYYY-MM-DD" in wrong.output
