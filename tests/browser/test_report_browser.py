"""A citizen reports from their phone in a real browser: the position comes from the phone."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from gateway.models import Request

from .conftest import sign_in


def test_a_citizen_adds_their_phone_s_position_to_the_report(browse, runtime):
    page = browse(width=390, height=844)  # a phone
    page.context.grant_permissions(["geolocation"])
    page.context.set_geolocation({"latitude": 45.440512, "longitude": -75.718934, "accuracy": 12})
    page.goto("/report?lang=fr")
    page.fill("#description", "Nid-de-poule profond au milieu de la rue, devant le dépanneur")
    page.fill("#email", "au.coin@example.org")

    assert page.locator("legend", has_text="Comment vous joindre?").count() == 1  # the citizen fills it in
    page.click("text=Utiliser ma position actuelle")

    expect(page.locator("#locate-status")).to_contain_text("Position ajoutée (à 12 m près)")  # the fix is asynchronous
    assert (page.input_value("#lat"), page.input_value("#lon")) == ("45.44051", "-75.71893")
    page.click("main form button[type=submit]")
    page.wait_for_url("**/track/R-*")
    code = page.url.split("/track/")[1].split("?")[0]
    with runtime.db.session() as db:
        found = db.execute(select(Request.lat, Request.lon, Request.district).where(Request.code == code)).one()
    assert (round(found.lat, 5), round(found.lon, 5)) == (45.44051, -75.71893) and found.district


def test_the_counter_s_form_speaks_of_the_citizen_and_does_not_offer_the_counter_s_position(browse, agent_email):
    page = browse()
    sign_in(page, agent_email)
    page.goto("/inbox/walk-in?lang=fr")
    assert page.locator("#locate").count() == 0 and page.locator("#lat").count() == 1
    assert page.locator("legend", has_text="Comment joindre le citoyen?").count() == 1  # the agent fills it in
    assert page.locator("label[for=preferred_channel]").inner_text() == "Le tenir informé par"
