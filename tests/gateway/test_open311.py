"""The Open311 GeoReport v2 server: spec formats, the published JSON schemas, bad input."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import httpx
import pytest
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from sqlalchemy import func, select

from gateway.models import Event, InboundMessage, Request
from gateway.status import change_status

from ..conftest import FIXTURES

KEY = "open311-test-key-0123456789"
BASE = "/open311/v2"
UTC_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
POTHOLE = {"api_key": KEY, "service_code": "pothole", "lat": "45.44", "long": "-75.72",
           "attribute[size]": "large", "description": "Gros trou devant le 12 rue Principale",
           "email": "open311.citizen@example.org", "first_name": "Anne", "last_name": "Roy"}


def _validator(name: str) -> Draft4Validator:
    schemas = {p.name: json.loads(p.read_text()) for p in (FIXTURES / "open311").glob("*.json")}
    registry = Registry().with_resources(
        (file, Resource.from_contents(schema, default_specification=DRAFT4)) for file, schema in schemas.items())
    return Draft4Validator(schemas[name], registry=registry)


def valid(name: str, document) -> None:
    errors = sorted(_validator(name).iter_errors(document), key=str)
    assert not errors, [e.message for e in errors]


@pytest.fixture
def app(make_app):
    return make_app(OPEN311_API_KEY=KEY, OPEN311_KEY_FIXMYSTREET="fms-key-abcdefghij")


def stored(runtime) -> tuple[int, int]:
    with runtime.db.session() as session:
        return session.scalar(select(func.count(InboundMessage.id))), session.scalar(select(func.count(Request.id)))


def xml(response):
    assert response.headers["Content-Type"] == "text/xml"
    assert response.data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ElementTree.fromstring(response.data)


def post(client, fmt="json", **changes):
    form = {**POTHOLE, **changes}
    return client.post(f"{BASE}/requests.{fmt}", data={k: v for k, v in form.items() if v is not None})


def test_discovery_has_exact_content_types_over_http(live_server):
    as_json = httpx.get(f"{live_server.url}{BASE}/discovery.json")
    as_xml = httpx.get(f"{live_server.url}{BASE}/discovery.xml")

    assert as_json.headers["content-type"] == "application/json"
    assert as_xml.headers["content-type"] == "text/xml"
    endpoint = as_json.json()["endpoints"][0]
    assert endpoint["url"].endswith("/open311/v2/") and endpoint["formats"] == ["text/xml", "application/json"]
    root = ElementTree.fromstring(as_xml.content)
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == ["text/xml", "application/json"]
    assert UTC_Z.match(root.findtext("changeset"))


def test_services_follow_schema_in_the_callers_language(client):
    french = client.get(f"{BASE}/services.json")
    english = client.get(f"{BASE}/services.json", headers={"Accept-Language": "en-CA,en;q=0.9"})

    valid("services.json", french.get_json())
    valid("services.json", english.get_json())
    assert french.headers["Content-Type"] == "application/json"
    by_code = {s["service_code"]: s for s in french.get_json()}
    assert by_code["pothole"]["service_name"] == "Nid-de-poule" and by_code["pothole"]["metadata"] is True
    assert by_code["streetlight"]["metadata"] is False
    assert {s["service_code"]: s for s in english.get_json()}["pothole"]["service_name"] == "Pothole"
    root = xml(client.get(f"{BASE}/services.xml?lang=en"))
    assert root.tag == "services"
    assert "Pothole" in [s.findtext("service_name") for s in root.findall("service")]


def test_service_definition_lists_catalogue_attributes(client):
    answer = client.get(f"{BASE}/services/pothole.json?lang=en").get_json()

    valid("service-definition.json", answer)
    size = answer["attributes"][0]
    assert (size["code"], size["datatype"], size["required"]) == ("size", "singlevaluelist", True)
    assert [v["key"] for v in size["values"]] == ["small", "medium", "large"]
    assert size["values"][2]["name"] == "Larger than a tyre"
    root = xml(client.get(f"{BASE}/services/pothole.xml"))
    assert root.tag == "service_definition"
    assert root.find("attributes/attribute/values/value/key").text == "small"
    assert client.get(f"{BASE}/services/streetlight.json").get_json() == {"service_code": "streetlight", "attributes": []}


def test_post_creates_request_through_the_intake_and_citizen_is_acknowledged(client, runtime, smtp_server):
    from tests.support.servers import wait_until

    root = xml(post(client, "xml"))

    code = root.findtext("request/service_request_id")
    token = root.findtext("request/token")
    with runtime.db.session() as session:
        created = session.scalar(select(Request).where(Request.code == code))
        assert (created.channel, created.category, created.department) == ("open311", "pothole", "travaux_publics")
        assert created.attributes == {"size": "large"}
        assert created.acknowledged_at is not None  # the code is in the answer itself
        assert created.citizen.name == "Anne Roy"
        client_event = session.scalar(select(Event).where(Event.request_id == created.id, Event.type == "open311_client"))
        assert client_event.data["client"] == "default"
    acknowledgement = wait_until(lambda: smtp_server.to("open311.citizen@example.org"))
    assert code in acknowledgement[0]["Subject"]
    tokens = client.get(f"{BASE}/tokens/{token}.json").get_json()
    assert tokens == [{"service_request_id": code, "token": token}]


def test_get_request_follows_schema_and_shows_words_only_to_keyed_clients(client):
    code = post(client).get_json()[0]["service_request_id"]

    public = client.get(f"{BASE}/requests/{code}.json").get_json()
    keyed = client.get(f"{BASE}/requests/{code}.json?api_key={KEY}").get_json()

    valid("requests.json", public)
    valid("requests.json", keyed)
    record = public[0]
    assert record["status"] == "open" and record["service_code"] == "pothole"
    assert record["description"] is None and keyed[0]["description"].startswith("Gros trou")
    assert "zipcode" not in record
    assert (record["lat"], record["long"]) == (45.44, -75.72)
    assert UTC_Z.match(record["requested_datetime"]) and UTC_Z.match(record["expected_datetime"])
    root = xml(client.get(f"{BASE}/requests/{code}.xml"))
    assert root.find("request/zipcode") is None and root.findtext("request/status") == "open"
    assert "Anne" not in json.dumps(keyed) and "example.org" not in json.dumps(keyed)


def test_key_declared_in_config_is_accepted(client):
    response = post(client, api_key="fms-key-abcdefghij")

    assert response.status_code == 200
    valid("requests.json", client.get(f"{BASE}/requests.json").get_json())


def _age(runtime, code, days, status=None):
    with runtime.db.session() as session:
        found = session.scalar(select(Request).where(Request.code == code))
        found.created_at = datetime.now(UTC) - timedelta(days=days)
        if status:
            found.status = status


def test_get_requests_filters_and_defaults(client, runtime):
    # Different citizens: one citizen's second report of the same problem joins the first.
    fresh = post(client, email="a@example.org").get_json()[0]["service_request_id"]
    old = post(client, email="b@example.org").get_json()[0]["service_request_id"]
    closed = post(client, service_code="streetlight", **{"attribute[size]": None}).get_json()[0]["service_request_id"]
    spam = post(client, email="c@example.org").get_json()[0]["service_request_id"]
    assert len({fresh, old, closed, spam}) == 4
    _age(runtime, old, 120)
    _age(runtime, closed, 2, status="resolved")
    _age(runtime, spam, 1, status="rejected")

    def codes(query=""):
        response = client.get(f"{BASE}/requests.json{query}")
        assert response.status_code == 200, response.data
        valid("requests.json", response.get_json()) if response.get_json() else None
        return {r["service_request_id"] for r in response.get_json()}

    assert codes() == {fresh, closed}  # last 90 days, no spam
    assert codes("?status=closed") == {closed}
    assert codes("?status=open") == {fresh}
    assert codes("?service_code=streetlight") == {closed}
    start = (datetime.now(UTC) - timedelta(days=150)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert codes(f"?start_date={start}") == {old}
    assert codes(f"?service_request_id={old},{fresh}&status=closed") == {old, fresh}  # overrides the rest


def test_get_requests_returns_at_most_1000(client, runtime):
    now = datetime.now(UTC)
    with runtime.db.session() as session:
        session.add_all(Request(code=f"R-2026-{i:07d}", channel="web", category="pothole", status="routed",
                                created_at=now - timedelta(minutes=i)) for i in range(1005))

    answer = client.get(f"{BASE}/requests.json").get_json()

    assert len(answer) == 1000
    assert answer[0]["service_request_id"] == "R-2026-0000000"  # newest first


@pytest.mark.parametrize("query, status, words", [
    ("?start_date=yesterday", 400, "start_date"),
    ("?end_date=2026-13-45", 400, "end_date"),
    ("?start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z", 400, "90 days"),
    ("?start_date=2026-06-01&end_date=2026-05-01", 400, "before"),
    ("?status=pending", 400, "status"),
])
def test_get_requests_bad_filters_get_spec_errors(client, query, status, words):
    for fmt in ("json", "xml"):
        response = client.get(f"{BASE}/requests.{fmt}{query}")
        assert response.status_code == status
        if fmt == "json":
            valid_error = response.get_json()
            assert valid_error[0]["code"] == status and words in valid_error[0]["description"]
        else:
            root = xml(response)
            assert root.tag == "errors" and root.findtext("error/code") == str(status)


@pytest.mark.parametrize("changes, status, words", [
    ({"api_key": None}, 403, "api_key"),
    ({"api_key": "wrong-key"}, 403, "api_key"),
    ({"service_code": None}, 400, "service_code"),
    ({"service_code": "unicorns"}, 404, "service_code"),
    ({"lat": None, "long": None}, 400, "location"),
    ({"lat": None, "long": None, "address_id": "A-17"}, 400, "address_id"),
    ({"long": None}, 400, "lat and long"),
    ({"lat": "north"}, 400, "lat"),
    ({"long": "-200"}, 400, "long"),
    ({"attribute[size]": None}, 400, "attribute[size] is required"),
    ({"attribute[size]": "enormous"}, 400, "not one of"),
    ({"attribute[colour]": "red"}, 400, "no such attribute"),
    ({"attribute[size": "large"}, 400, "malformed attribute"),
    ({"attribute": "size=large"}, 400, "malformed attribute"),
    ({"email": "not-an-address"}, 400, "citizen.email"),
    ({"description": "x" * 10_001}, 400, "description"),
])
def test_bad_post_gets_spec_error_and_stores_nothing(client, runtime, changes, status, words):
    response = post(client, **changes)

    assert response.status_code == status
    error = response.get_json()
    assert error[0]["code"] == status and words in error[0]["description"], error
    assert stored(runtime) == (0, 0)


def test_two_values_for_a_single_value_attribute_are_refused(client, runtime):
    from werkzeug.datastructures import MultiDict

    form = MultiDict(list(POTHOLE.items()) + [("attribute[size]", "small")])
    response = client.post(f"{BASE}/requests.xml", data=form)

    assert response.status_code == 400
    assert "one value" in xml(response).findtext("error/description")
    assert stored(runtime) == (0, 0)


def test_unknown_request_token_and_format_are_404(client):
    assert xml(client.get(f"{BASE}/requests/R-2026-0000001.xml")).findtext("error/code") == "404"
    assert client.get(f"{BASE}/tokens/nothing.json").status_code == 404
    assert client.get(f"{BASE}/services.csv").status_code == 404
    assert client.get(f"{BASE}/nothing-here.json").get_json() == [{"code": 404, "description": "not found"}]
    assert xml(client.put(f"{BASE}/requests.xml")).findtext("error/code") == "405"


def test_status_changes_are_published_as_mysociety_updates(client, runtime):
    code = post(client).get_json()[0]["service_request_id"]
    with runtime.db.session() as session:
        found = session.scalar(select(Request).where(Request.code == code))
        change_status(session, runtime, found, "in_progress", "agent:test", "Équipe en route")
        change_status(session, runtime, found, "resolved", "agent:test", "Trou rebouché")

    updates = client.get(f"{BASE}/servicerequestupdates.json").get_json()
    root = xml(client.get(f"{BASE}/servicerequestupdates.xml"))
    record = client.get(f"{BASE}/requests/{code}.json").get_json()[0]

    assert [(u["service_request_id"], u["status"], u["description"]) for u in updates] == [
        (code, "in_progress", "Équipe en route"), (code, "fixed", "Trou rebouché")]
    assert all(UTC_Z.match(u["updated_datetime"]) for u in updates)
    assert root.tag == "service_request_updates" and root.findtext("request_update/status") == "in_progress"
    assert (record["status"], record["status_notes"]) == ("closed", "Trou rebouché")
    assert client.get(f"{BASE}/servicerequestupdates.json?start_date=nope").status_code == 400


def test_malformed_client_list_refuses_its_keys_but_keeps_the_main_one(make_app, tmp_path, caplog):
    import shutil

    config = tmp_path / "config"
    shutil.copytree(FIXTURES.parent.parent / "config", config)
    (config / "open311.yaml").write_text("api_keys:\n  - client: fixmystreet\n    environment: OOPS\n")
    client = make_app(GATEWAY_CONFIG_DIR=str(config), OPEN311_API_KEY=KEY, OOPS="oops-key-0123456789").test_client()

    refused = post(client, api_key="oops-key-0123456789")
    accepted = post(client)

    assert refused.status_code == 403 and accepted.status_code == 200
    assert "api_keys item 1 needs 'client' and 'env'" in caplog.text
