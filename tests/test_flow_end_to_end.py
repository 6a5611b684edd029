"""The whole path over real HTTP: POST → department and citizen e-mails (real SMTP) → /track."""

from __future__ import annotations

import json

import httpx

from .conftest import FIXTURES
from .support.servers import wait_until


def load(name: str) -> dict:
    return json.loads((FIXTURES / "web_form" / f"{name}.json").read_text(encoding="utf-8"))


def test_api_request_reaches_department_inbox_and_citizen_gets_code(live_server, smtp_server, auth):
    response = httpx.post(f"{live_server.url}/api/v1/requests", json=load("request__pothole_fr"), headers=auth)

    assert response.status_code == 201
    created = response.json()
    assert created["category"] == "pothole"
    assert created["department"] == "travaux_publics"
    assert created["status"] == "routed"
    code = created["code"]

    department = wait_until(lambda: smtp_server.to("travaux.publics@bellerive.example.org"))
    assert code in department[0]["Subject"]
    assert "Nid-de-poule" in department[0]["Subject"]
    body = department[0].get_content()
    assert "145, rue Wellington" in body and "nid-de-poule" in body
    assert department[0]["Reply-To"] == "311@bellerive.example.org"

    acknowledgement = wait_until(lambda: smtp_server.to("marie.tremblay@example.org"))
    assert code in acknowledgement[0]["Subject"]
    assert "Votre numéro de suivi est " + code in acknowledgement[0].get_body(("plain",)).get_content()  # French, like the request

    page = httpx.get(f"{live_server.url}/track/{code}?lang=fr")
    assert page.status_code == 200
    assert code in page.text and "Nid-de-poule" in page.text and "Travaux publics" in page.text
    # No personal data: the name, the e-mail, the phone number in any form ("555" alone also
    # occurs in a timestamp's microseconds).
    assert "marie" not in page.text.lower() and not any(form in page.text for form in ("5550142", "555-0142", "555 0142"))


def test_english_request_gets_english_acknowledgement(live_server, smtp_server, auth):
    response = httpx.post(f"{live_server.url}/api/v1/requests", json=load("request__streetlight_en"), headers=auth)

    assert response.status_code == 201
    assert response.json()["category"] == "streetlight"
    acknowledgement = wait_until(lambda: smtp_server.to("john.smith@example.org"))[0]
    assert "Your tracking code is " + response.json()["code"] in acknowledgement.get_body(("plain",)).get_content()
    assert acknowledgement["Content-Language"] == "en"


def test_urgent_keyword_rule_routes_to_water_with_short_sla(client, smtp_server, auth):
    response = client.post("/api/v1/requests", json=load("request__water_main_urgent"), headers=auth)
    created = response.get_json()

    assert response.status_code == 201
    assert created["category"] == "water_main_break"
    assert created["priority"] == "urgent"
    detail = client.get(f"/api/v1/requests/{created['code']}", headers=auth).get_json()
    routed = next(e for e in detail["events"] if e["type"] == "routed")
    assert routed["data"]["rule"] == "bris-aqueduc"
    assert detail["rule"] == "bris-aqueduc"
    assert wait_until(lambda: smtp_server.to("aqueduc@bellerive.example.org"))


def test_anonymous_walk_in_is_routed_without_acknowledgement(client, smtp_server, auth):
    response = client.post("/api/v1/requests", json=load("request__anonymous_walk_in"), headers=auth)

    assert response.status_code == 201
    code = response.get_json()["code"]
    assert response.get_json()["category"] == "graffiti"
    wait_until(lambda: smtp_server.to("travaux.publics@bellerive.example.org"))
    detail = client.get(f"/api/v1/requests/{code}", headers=auth).get_json()
    skipped = [e for e in detail["events"] if e["type"] == "notification_skipped"]
    assert skipped and skipped[0]["data"]["reason"] == "no contact given"
    assert len(smtp_server.messages) == 1  # the department only


def test_status_change_by_city_system_reaches_citizen_in_their_language(client, smtp_server, auth):
    created = client.post("/api/v1/requests", json=load("request__pothole_fr"), headers=auth).get_json()
    wait_until(lambda: smtp_server.to("marie.tremblay@example.org"))

    response = client.post(f"/api/v1/requests/{created['code']}/status", headers=auth,
                           json={"status": "resolved", "note": "Le trou a été rebouché ce matin."})

    assert response.status_code == 200 and response.get_json()["status"] == "resolved"
    mails = wait_until(lambda: [m for m in smtp_server.to("marie.tremblay@example.org") if "résolue" in m["Subject"]])
    assert "Le trou a été rebouché ce matin." in mails[0].get_body(("plain",)).get_content()
    page = client.get(f"/track/{created['code']}?lang=fr").get_data(as_text=True)
    assert "Résolue" in page


def test_illegal_status_transition_is_refused_and_changes_nothing(client, auth):
    created = client.post("/api/v1/requests", json=load("request__pothole_fr"), headers=auth).get_json()
    client.post(f"/api/v1/requests/{created['code']}/status", headers=auth, json={"status": "resolved"})
    client.post(f"/api/v1/requests/{created['code']}/status", headers=auth, json={"status": "closed"})

    response = client.post(f"/api/v1/requests/{created['code']}/status", headers=auth, json={"status": "new"})

    assert response.status_code == 409
    assert client.get(f"/api/v1/requests/{created['code']}", headers=auth).get_json()["status"] == "closed"
