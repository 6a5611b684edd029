"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright against the app
served over HTTP on 127.0.0.1. `playwright install` is never needed.

Screenshots of the main pages go to docs/screenshots/ for the README with UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import ROOT
from tests.support.staff import PASSWORD, make_user

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Written over docs/screenshots/ only when asked (UPDATE_SCREENSHOTS=1 make test), so that an
# ordinary run leaves the tree clean; otherwise they go to a temporary folder.
SCREENSHOTS = (ROOT / "docs" / "screenshots" if os.environ.get("UPDATE_SCREENSHOTS")
               else Path(tempfile.gettempdir()) / "gateway-screenshots")


@pytest.fixture(scope="module")
def chromium():
    """One browser per test module; Playwright's event loop stops with it."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def settings(settings, tmp_path):
    """A copy of config/ (the console writes to it), fast polling, counts never cached."""
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    return {**settings, "GATEWAY_CONFIG_DIR": str(config), "GATEWAY_INBOX_POLL_SECONDS": 0.5,
            "GATEWAY_INBOX_COUNTS_SECONDS": 0}


@pytest.fixture
def browse(chromium, live_server):
    """browse(width, height, locale) → a fresh page (own cookies) on the live server."""
    contexts = []

    def open_page(width: int = 1366, height: int = 900, locale: str = "fr-CA"):
        context = chromium.new_context(viewport={"width": width, "height": height}, locale=locale,
                                       base_url=live_server.url)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def sign_in(page, email: str, password: str = PASSWORD) -> None:
    """With the keyboard only: the form must be usable without a mouse."""
    page.goto("/inbox/login")
    page.focus("#email")
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)


def shoot(page, name: str, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


@pytest.fixture
def agent_email(runtime):
    return make_user(runtime, "agent", "julie.agent@bellerive.example.org")


@pytest.fixture
def admin_email(runtime):
    return make_user(runtime, "admin", "admin@bellerive.example.org")
