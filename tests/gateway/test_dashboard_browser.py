"""The dashboards in a real headless Chromium: every chart is drawn by the served Chart.js."""

from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from gateway.auth import add_user
from tests.support.staff import fixture, submit

from .test_dashboard import PERIOD, load

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        yield chromium
        chromium.close()


def test_every_chart_is_drawn_and_nothing_is_fetched_from_elsewhere(live_server, runtime, settings, browser):
    load(settings["DATABASE_URL"])
    add_user(runtime, "maire@bellerive.example.org", "manager", "un mot de passe solide")
    page = browser.new_page(locale="fr-CA")
    errors, outside = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(live_server.url) else None)

    page.goto(f"{live_server.url}/dashboard/?{PERIOD}")
    page.fill("#email", "maire@bellerive.example.org")
    page.fill("#password", "un mot de passe solide")
    page.locator("main form button[type=submit]").click()
    page.wait_for_url("**/dashboard/**")

    for name in ("volumes", "delays", "recurring", "channels"):
        page.goto(f"{live_server.url}/dashboard/{name}?{PERIOD}")
        page.wait_for_function("document.querySelectorAll('canvas[data-chart]').length > 0")
        drawn = page.evaluate("Array.from(document.querySelectorAll('canvas[data-chart]'))"
                              ".map(c => !!window.Chart.getChart(c))")
        assert drawn and all(drawn), name
    page.goto(f"{live_server.url}/dashboard/report?month=2026-10")
    assert page.locator("h1").inner_text().startswith("Rapport 311 au conseil")
    assert errors == [] and outside == []


def test_a_chart_of_a_few_requests_counts_them_in_whole_numbers(live_server, runtime, browser):
    for name in ("request__pothole_fr", "request__streetlight_en"):
        submit(runtime, fixture(name))
    add_user(runtime, "maire@bellerive.example.org", "manager", "un mot de passe solide")
    page = browser.new_page(locale="fr-CA")
    page.goto(f"{live_server.url}/dashboard/")
    page.fill("#email", "maire@bellerive.example.org")
    page.fill("#password", "un mot de passe solide")
    page.locator("main form button[type=submit]").click()
    page.wait_for_url("**/dashboard/**")
    page.wait_for_function("document.querySelectorAll('canvas[data-chart]').length > 0")

    ticks = page.evaluate("Array.from(document.querySelectorAll('canvas[data-chart]')).map(c => {"
                          " const chart = window.Chart.getChart(c), axis = chart.options.indexAxis === 'y' ? 'x' : 'y';"
                          " return chart.scales[axis].ticks.map(t => t.value); })")
    assert ticks and all(ticks)
    assert all(value == int(value) for axis in ticks for value in axis), ticks  # 0, 1, 2: not 0.2, 0.4…
