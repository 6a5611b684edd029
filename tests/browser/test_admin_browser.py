"""Administrators in a real browser: a rules edit with a deliberate error then a fix, a dead
delivery retried, users and roles."""

from __future__ import annotations

from sqlalchemy import select

from gateway.models import Delivery
from tests.support.servers import wait_until
from tests.support.staff import fixture, submit

from .conftest import shoot, sign_in

NEW_RULE = """
  - name: nids-de-poule-centre
    description: Potholes downtown are urgent during the spring thaw.
    when:
      category: [{category}]
      district: [centre]
    then:
      priority: urgent
"""


def test_rules_edit_with_an_error_then_a_fix(browse, runtime, admin_email, settings):
    rules_file = runtime.rules.directory / "rules.yaml"
    original = rules_file.read_text()
    page = browse(locale="en-CA")
    sign_in(page, admin_email)
    page.goto("/admin/rules?lang=en")
    assert page.locator("#text").input_value() == original

    page.fill("#text", original + NEW_RULE.format(category="nid_de_poule"))
    page.click("#rules-form button[value=apply]")

    problem = page.locator("#problems li").first.inner_text()
    line = (original + NEW_RULE).splitlines().index("      category: [{category}]") + 1
    assert f"rules.yaml, line {line}" in problem and "unknown category 'nid_de_poule'" in problem
    assert page.locator(f"#line-{line}.bad").count() == 1  # the line is marked in the listing
    assert rules_file.read_text() == original  # nothing applied
    shoot(page, "admin_rules_error")

    page.fill("#text", original + NEW_RULE.format(category="pothole"))
    page.fill("#sentence", "Nid-de-poule profond devant l'hôtel de ville")
    page.fill("#try-lat", "45.4435")
    page.fill("#try-lon", "-75.7035")
    page.click("#rules-form button[value=try]")
    decision = page.locator("#trial").inner_text()
    assert "nids-de-poule-centre" in decision and "Urgent" in decision

    page.click("#rules-form button[value=apply]")
    assert "applied and reloaded" in page.locator(".notice").inner_text()
    assert "nids-de-poule-centre" in [r.name for r in runtime.rules.current.rules]
    assert admin_email in page.locator("table.plain").inner_text()  # who and when
    shoot(page, "admin_rules")

    page.click("#rollback-form button")
    assert rules_file.read_text() == original


def test_a_dead_delivery_is_retried_from_the_console(browse, runtime, admin_email, smtp_server):
    smtp_server.reject_with = 550
    submit(runtime, fixture("request__streetlight_en"))
    with runtime.db.session() as db:
        wait_until(lambda: len(db.scalars(select(Delivery).where(Delivery.state == "dead")).all()) == 2)
    page = browse(locale="en-CA")
    sign_in(page, admin_email)
    page.goto("/admin/health?lang=en")
    dead = page.locator("#dead tbody tr")
    assert dead.count() == 2 and "recipient refused (550)" in dead.first.inner_text()
    shoot(page, "admin_health")

    smtp_server.reject_with = None
    dead.first.locator("button").click()

    assert "sent again" in page.locator(".notice").inner_text()
    wait_until(lambda: smtp_server.messages)
    page.goto("/admin/health")
    assert page.locator("#dead tbody tr").count() == 1  # the other one still waits for its turn
    page.click("#retry-all button")
    wait_until(lambda: len(smtp_server.messages) == 2)
    page.goto("/admin/health")
    assert "No dead delivery" in page.locator("#dead").inner_text()


def test_administrator_adds_an_account(browse, runtime, admin_email):
    page = browse(locale="fr-CA")
    sign_in(page, admin_email)
    page.goto("/admin/users?lang=fr")
    page.fill("#new-email", "ombudsman@bellerive.example.org")
    page.select_option("#new-role", "readonly")
    page.fill("#new-password", "un long mot de passe")
    page.click("#new-user button[type=submit]")
    assert "Compte créé" in page.locator(".notice").inner_text()
    assert "Lecture seule (ombudsman)" in page.locator("#accounts").inner_text()
    shoot(page, "admin_users_fr")


UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !(e.innerText || '').trim())
  .map(e => e.outerHTML.slice(0, 80))"""


def test_every_control_of_the_staff_pages_has_a_label(browse, runtime, admin_email):
    code = submit(runtime, fixture("request__streetlight_en"))
    page = browse()
    sign_in(page, admin_email)
    for url in ("/inbox/", f"/inbox/r/{code}", "/inbox/walk-in", "/admin/rules", "/admin/health", "/admin/users"):
        page.goto(url)
        assert page.evaluate(UNLABELLED) == [], url
        assert page.evaluate("document.documentElement.lang") in ("fr", "en")
        page.keyboard.press("Tab")  # the first stop is the skip link, then the page in reading order
        assert page.evaluate("document.activeElement.className") == "skip"
