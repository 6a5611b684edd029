"""The public /report page and the counter's walk-in form, through the HTML forms."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from gateway.auth import add_user
from gateway.models import Request
from tests.support.servers import wait_until
from tests.support.staff import submit


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def count(runtime) -> int:
    with runtime.db.session() as session:
        return session.scalar(select(func.count(Request.id)))


@pytest.fixture
def agent(runtime):
    add_user(runtime, "agent@bellerive.example.org", "agent", "un mot de passe solide")
    return ("agent@bellerive.example.org", "un mot de passe solide")


def sign_in(client, agent):
    token = csrf(client.get("/inbox/login").get_data(as_text=True))
    return client.post("/inbox/login", data={"email": agent[0], "password": agent[1], "csrf_token": token})


def test_citizen_reports_on_the_web_and_lands_on_the_tracking_page(client, runtime, smtp_server):
    token = csrf(client.get("/report?lang=fr").get_data(as_text=True))

    response = client.post("/report", data={
        "csrf_token": token, "description": "Le lampadaire devant chez moi clignote toute la nuit",
        "address": "8, rue des Érables", "email": "voisine@example.org", "preferred_channel": "email"})

    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    code = re.search(r"R-\d{4}-\d{7}", page).group(0)
    assert "Merci! Votre demande a été reçue" in page and "Lampadaire" in page
    ack = wait_until(lambda: smtp_server.to("voisine@example.org"))
    assert code in ack[0]["Subject"]


def test_reporting_the_same_problem_again_says_it_was_added_to_the_open_request(client, runtime, agent):
    def report(text: str):
        token = csrf(client.get("/report?lang=fr").get_data(as_text=True))
        response = client.post("/report", data={"csrf_token": token, "description": text, "email": "voisine@example.org",
                                                "address": "8, rue des Érables", "preferred_channel": "email"})
        return client.get(response.headers["Location"]).get_data(as_text=True)

    first = report("Le lampadaire devant chez moi clignote toute la nuit")
    again = report("Le lampadaire devant chez moi clignote encore toute la nuit")

    code = re.search(r"R-\d{4}-\d{7}", first).group(0)
    assert count(runtime) == 1 and code in again
    assert "Vous nous aviez déjà signalé ce problème : votre message a été ajouté à votre demande" in again
    assert "Merci! Votre demande a été reçue" not in again

    sign_in(client, agent)  # at the counter, the same citizen by phone: the agent is told too
    token = csrf(client.get("/inbox/walk-in?lang=fr").get_data(as_text=True))
    counter = client.post("/inbox/walk-in", data={
        "csrf_token": token, "channel": "phone", "language": "fr", "category": "", "address": "8, rue des Érables",
        "description": "Le lampadaire devant chez elle clignote toute la nuit", "email": "voisine@example.org"})
    page = counter.get_data(as_text=True)
    assert count(runtime) == 1 and f'id="code">{code}<' in page
    assert "Ajouté à une demande ouverte" in page and "Demande enregistrée" not in page


def test_report_without_description_shows_error_and_stores_nothing(client, runtime):
    token = csrf(client.get("/report?lang=en").get_data(as_text=True))

    response = client.post("/report", data={"csrf_token": token, "description": "  ", "email": "a@example.org"})

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "describe the problem" in page and 'aria-invalid="true"' in page
    assert 'value="a@example.org"' in page  # what was typed is kept
    assert count(runtime) == 0


def test_report_without_csrf_token_is_refused(client, runtime):
    response = client.post("/report", data={"description": "Nid-de-poule rue King"})
    assert response.status_code == 400
    assert count(runtime) == 0


def test_walk_in_needs_a_signed_in_agent(client, runtime, agent):
    assert client.get("/inbox/walk-in").status_code == 302
    wrong = client.post("/inbox/login", data={"email": agent[0], "password": "nope",
                                              "csrf_token": csrf(client.get("/inbox/login").get_data(as_text=True))})
    assert wrong.status_code == 401

    assert sign_in(client, agent).status_code == 302
    assert client.get("/inbox/walk-in").status_code == 200


def test_agent_records_walk_in_and_gets_the_code_to_give(client, runtime, agent, smtp_server):
    sign_in(client, agent)
    token = csrf(client.get("/inbox/walk-in?lang=fr").get_data(as_text=True))

    response = client.post("/inbox/walk-in", data={
        "csrf_token": token, "channel": "walk_in", "language": "en", "category": "",
        "description": "My recycling bin was not emptied on Tuesday", "phone": "613-555-0123"})

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    code = re.search(r'id="code">(R-\d{4}-\d{7})<', page).group(1)
    assert "Collecte du recyclage" in page and "Environnement" in page
    wait_until(lambda: smtp_server.to("collectes@bellerive.example.org"))
    with runtime.db.session() as session:
        request = session.scalar(select(Request).where(Request.code == code))
        assert request.channel == "walk_in" and request.language == "en"
        assert request.acknowledged_at is not None  # the code was given at the counter


def test_the_counter_prints_a_receipt_in_the_citizen_s_language(client, runtime, agent):
    sign_in(client, agent)
    token = csrf(client.get("/inbox/walk-in?lang=fr").get_data(as_text=True))  # the agent works in French
    done = client.post("/inbox/walk-in", data={
        "csrf_token": token, "channel": "walk_in", "language": "en", "category": "",
        "description": "The swing in Laurier park is broken", "address": "40 rue Laurier"}).get_data(as_text=True)
    code = re.search(r'id="code">(R-\d{4}-\d{7})<', done).group(1)
    link = re.search(r'id="receipt" href="([^"]+)"', done).group(1)
    assert "Imprimer un reçu pour le citoyen" in done
    assert 'id="place">40, rue Laurier — Plateau-Nord<' in done  # the place the register found, read back to the citizen

    receipt = client.get(link).get_data(as_text=True)
    assert '<html lang="en">' in receipt and "Your request has been received" in receipt  # the citizen's language
    assert code in receipt and "The swing in Laurier park is broken" in receipt and "40, rue Laurier" in receipt  # the register's way of writing it
    track = f"{runtime.settings['GATEWAY_PUBLIC_URL'].rstrip('/')}/track/{code}"
    assert track in receipt and '<svg width="' in receipt  # the tracking page, as a link and its QR code
    assert "csrf_token" not in receipt and "Boîte de réception" not in receipt  # a sheet for the citizen only
    french = client.get(f"{link}?in=fr").get_data(as_text=True)
    assert '<html lang="fr">' in french and "Votre demande a été reçue" in french

    assert client.get("/inbox/walk-in/receipt/R-2026-0000000").status_code == 404


def test_only_the_counter_s_roles_print_receipts(client, runtime):
    code = submit(runtime, {"channel": "walk_in", "description": "Lampadaire éteint rue des Pins"})
    add_user(runtime, "ombudsman@bellerive.example.org", "readonly", "un mot de passe solide")
    sign_in(client, ("ombudsman@bellerive.example.org", "un mot de passe solide"))
    assert client.get(f"/inbox/walk-in/receipt/{code}").status_code == 403


def test_pages_exist_in_french_and_english(client):
    assert "Signaler un problème" in client.get("/?lang=fr").get_data(as_text=True)
    assert "Report a problem" in client.get("/?lang=en").get_data(as_text=True)
    assert 'lang="fr"' in client.get("/report?lang=fr").get_data(as_text=True)
