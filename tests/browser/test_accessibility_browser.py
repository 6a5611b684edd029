"""WCAG 2.1 A and AA (and axe's best practices), as axe-core checks them, on every page
people use: the citizens' public pages and the staff's, with a seeded inbox, in French on a
phone and in English on a desktop screen, error states included.

axe-core (Deque's engine, bundled in axe-playwright-python) runs inside the real page in
Chromium: contrast of every text against what is really behind it, names of controls and
links, table headers, landmarks, headings, language, ARIA, and regions that scroll but
cannot be reached by keyboard; and, beside it, that no page is wider than the phone's screen. A violation is a page someone with a screen reader, a
keyboard or low vision cannot use as others do."""

from __future__ import annotations

from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.support.staff import fixture, submit

from .conftest import sign_in
from .seed import seed

PUBLIC = ["/report", "/track", "/track/{pothole}", "/track/{pothole_again}", "/track/R-0000-000000", "/inbox/login", "/nowhere"]
STAFF = ["/inbox/", "/inbox/?status=routed&priority=urgent", "/inbox/r/{pothole}", "/inbox/r/{pothole_again}",
         "/inbox/r/{water}",
         "/inbox/walk-in", "/inbox/walk-in/receipt/{graffiti}", "/admin/rules", "/admin/health", "/admin/users", "/dashboard/",
         "/dashboard/volumes", "/dashboard/delays", "/dashboard/recurring", "/dashboard/channels",
         "/dashboard/report", "/dashboard/open-data"]
SCREENS = [("fr", 390, 844), ("en", 1366, 900)]  # a phone, a desk


@pytest.fixture
def codes(runtime, settings):
    codes = seed(runtime, Path(settings["GATEWAY_DATA_DIR"]))
    again = fixture("request__pothole_fr")  # another citizen, the same problem: followed under the first
    return {**codes, "pothole_again": submit(runtime, {**again, "citizen": {"email": "voisine@example.org"}})}


def _violations(page) -> list[str]:
    results = Axe().run(page)  # axe's default rules: WCAG 2.0, 2.1, 2.2 A and AA, and best practices
    found = [f"{v['id']} ({v['impact']}): {v['help']} — " + "; ".join(n["html"][:90] for n in v["nodes"][:4])
             for v in results.response["violations"]]
    # WCAG 1.4.10 Reflow, which axe cannot see: the page fits the screen's width (a wide
    # table scrolls inside its own region, reachable by keyboard), never the whole page sideways.
    width, screen = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return found + ([f"reflow: the page is {width} px wide on a {screen} px screen"] if width > screen else [])


def _audit(page, urls: list[str], codes: dict, locale: str) -> dict[str, list[str]]:
    found = {}
    for url in urls:
        page.goto(url.format(**codes) + ("&" if "?" in url else "?") + f"lang={locale}")
        found[url] = _violations(page)
    return {url: violations for url, violations in found.items() if violations}


@pytest.mark.parametrize(("locale", "width", "height"), SCREENS)
def test_the_public_pages_have_no_accessibility_violation(browse, codes, locale, width, height):
    page = browse(width, height, f"{locale}-CA")
    found = _audit(page, PUBLIC, codes, locale)

    page.goto(f"/report?lang={locale}")
    page.fill("#description", "Lampadaire éteint devant le 12, rue des Pins")
    page.fill("#phone", "123")  # not a phone number: the form comes back with its error
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert page.locator("#form-error").count() == 1
    found["/report (refused)"] = _violations(page)

    page.goto(f"/inbox/login?lang={locale}")
    page.fill("#email", "nobody@bellerive.example.org")
    page.fill("#password", "not the password")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    found["/inbox/login (refused)"] = _violations(page)
    assert {url: v for url, v in found.items() if v} == {}


@pytest.mark.parametrize(("locale", "width", "height"), SCREENS)
def test_the_staff_pages_have_no_accessibility_violation(browse, codes, admin_email, locale, width, height):
    page = browse(width, height, f"{locale}-CA")
    sign_in(page, admin_email)
    assert _audit(page, STAFF, codes, locale) == {}
