"""Agents in a real browser: sign-in, filters, live arrivals, reply, duplicates, walk-in,
French and English."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from gateway.models import Delivery, Request
from tests.support.servers import wait_until
from tests.support.staff import fixture, submit

from .conftest import shoot, sign_in
from .seed import seed

SUBMIT = "main form button[type=submit]"  # the header has a "Sign out" button too


@pytest.fixture
def codes(runtime, settings):
    return seed(runtime, Path(settings["GATEWAY_DATA_DIR"]))


def test_agent_signs_in_filters_and_sees_new_requests_arrive(browse, runtime, codes, agent_email):
    page = browse(locale="en-CA")
    page.goto("/inbox/login?lang=en")
    shoot(page, "login")
    sign_in(page, agent_email)

    rows = page.locator("#requests tbody tr")
    assert rows.count() == 7
    assert page.locator(".filters option[value=sms]").inner_text() == "Text message (1)"
    shoot(page, "inbox_en")

    page.select_option("#f-priority", "urgent")
    page.click(".filters button[type=submit]")
    page.wait_for_url("**priority=urgent**")
    assert rows.count() == 1 and codes["water"] in rows.first.inner_text()

    page.fill("#q", "Maple")
    page.select_option("#f-priority", "")
    page.click(".filters button[type=submit]")
    assert rows.count() == 1 and codes["light"] in rows.first.inner_text()

    page.click("text=Clear filters")
    new = submit(runtime, {"channel": "web", "description": "Le banc du parc Laurier est cassé en deux",
                           "citizen": {"email": "nouveau@example.org"}})  # a new problem, not a duplicate
    page.locator(f"#requests tbody tr >> text={new}").wait_for()  # no reload: the page polls
    assert "1 new request" in page.locator("#live").inner_text()
    assert rows.first.inner_text().startswith(new)


def test_agent_replies_and_the_citizen_receives_it_on_their_channel(browse, runtime, codes, agent_email, smtp_server):
    page = browse(locale="en-CA")
    sign_in(page, agent_email)
    page.goto("/inbox/?lang=en")
    page.click(f"text={codes['light']}")
    page.wait_for_url(f"**/inbox/r/{codes['light']}")

    page.fill("#reply-text", "The bulb will be replaced on Thursday morning.")
    page.click("#reply-form button[type=submit]")

    assert "Reply sent" in page.locator(".notice").first.inner_text()
    mail = wait_until(lambda: [m for m in smtp_server.to("john.smith@example.org") if "Thursday" in m.get_body(("plain",)).get_content()])
    assert codes["light"] in mail[0]["Subject"]
    page.reload()
    assert page.locator(".msg.out", has_text="Thursday morning").count() == 1
    shoot(page, "request_reply")


def test_agent_sees_photos_and_voice_messages_in_the_conversation(browse, codes, agent_email):
    page = browse()
    sign_in(page, agent_email)
    page.goto(f"/inbox/r/{codes['sms']}")
    image = page.locator(".attachments img")
    assert image.evaluate("img => img.complete && img.naturalWidth") == 320  # really served and decoded
    shoot(page, "request_photo")
    page.goto(f"/inbox/r/{codes['telegram']}")
    duration = page.locator("audio").evaluate(
        "a => new Promise(ok => { a.onloadedmetadata = () => ok(a.duration); a.load(); })")
    assert duration == pytest.approx(1.0, abs=0.05)  # a playable recording


def test_agent_unlinks_an_automatic_duplicate_and_links_it_again(browse, runtime, codes, agent_email):
    # A neighbour reports the same pothole in the same words: dedup links it automatically.
    again = submit(runtime, {**fixture("request__pothole_fr"), "citizen": {"email": "voisin2@example.org"}})
    with runtime.db.session() as db:
        assert db.scalar(select(Request.status).where(Request.code == again)) == "duplicate"
    page = browse(locale="en-CA")
    sign_in(page, agent_email)
    page.goto(f"/inbox/r/{again}?lang=en")
    assert page.locator(".notice", has_text="Linked as a duplicate of").count() == 1

    page.click(f"text=Unlink from {codes['pothole']}")
    page.locator("#original").wait_for()  # the link form replaces the unlink button
    with runtime.db.session() as db:
        assert db.scalar(select(Request.status).where(Request.code == again)) == "routed"

    page.fill("#original", codes["pothole"])
    page.click("text=Link as duplicate")
    page.locator(".notice", has_text="Linked as a duplicate of").wait_for()
    with runtime.db.session() as db:
        assert db.scalar(select(Request.status).where(Request.code == again)) == "duplicate"
    shoot(page, "request_duplicate")
    page.goto(f"/inbox/r/{codes['pothole']}")
    assert again in page.locator(".notice").first.inner_text()  # the original lists it

    page.set_viewport_size({"width": 1280, "height": 900})  # the list: reported twice, and still fits
    page.goto("/inbox/?lang=fr")
    assert "+1 signalement" in page.locator("tr", has_text=codes["pothole"]).inner_text()
    shoot(page, "inbox_1280")
    assert page.evaluate("(el => el.scrollWidth <= el.clientWidth)(document.querySelector('.results'))")  # no scrolling sideways


def test_walk_in_on_a_tablet_gives_the_code(browse, runtime, agent_email):
    page = browse(width=820, height=1180)  # a tablet at the counter, portrait
    sign_in(page, agent_email)
    page.goto("/inbox/walk-in?lang=fr")
    page.select_option("#channel", "walk_in")
    page.fill("#description", "Lampadaire éteint devant le 12, rue des Érables depuis trois jours")
    page.fill("#address", "12, rue des Érables")
    page.fill("#email", "client.comptoir@example.org")
    shoot(page, "walk_in_tablet")
    page.click(SUBMIT)

    code = page.locator("#code").inner_text()
    with runtime.db.session() as db:
        assert db.scalar(select(Request.channel).where(Request.code == code)) == "walk_in"
    assert page.evaluate("document.documentElement.scrollWidth") <= 820  # nothing wider than the screen


def test_a_failing_delivery_s_error_stays_inside_the_request_page(browse, runtime, codes, agent_email):
    with runtime.db.session() as db:  # what an SMTP server unreachable for days leaves on the outbox rows
        request_id = db.scalar(select(Request.id).where(Request.code == codes["pothole"]))
        db.execute(update(Delivery).where(Delivery.request_id == request_id).values(
            state="dead", attempts=5, last_error="SMTP server unreachable: ConnectionRefusedError"))
    page = browse(width=1280)
    sign_in(page, agent_email)
    page.goto(f"/inbox/r/{codes['pothole']}")

    assert "ConnectionRefusedError" in page.locator("#deliveries-title + table").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # the attempts column not cut off


def test_french_and_english_and_the_choice_is_kept(browse, codes, agent_email):
    page = browse(locale="fr-CA")
    sign_in(page, agent_email)
    page.goto("/inbox/?lang=fr")
    assert page.locator("h1").inner_text() == "Boîte de réception"
    assert "Texto (SMS) (1)" in page.locator(".filters option[value=sms]").inner_text()
    shoot(page, "inbox_fr")
    page.goto(f"/inbox/r/{codes['water']}")
    assert "Conversation et historique" in page.content()
    shoot(page, "request_fr")

    page.click("header >> text=English")
    assert page.locator("h1").first.inner_text() == codes["water"]
    page.goto("/inbox/")
    assert page.locator("h1").inner_text() == "Inbox"

    later = browse(locale="fr-CA")  # another device: the account remembers English
    sign_in(later, agent_email)
    assert later.locator("h1").inner_text() == "Inbox"
