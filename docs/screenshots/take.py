"""Screenshots of the dashboards for the README: ``.venv/bin/python docs/screenshots/take.py``.

Generates 60 000 requests (tests/bench/generate.py) into var/screenshots.db, serves the app on
loopback, signs in as a manager in headless Chromium and captures each page.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gateway import create_app  # noqa: E402
from gateway.auth import add_user  # noqa: E402
from gateway.db import upgrade  # noqa: E402
from tests.bench.generate import generate  # noqa: E402
from tests.support.servers import LiveServer  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = [("dashboard-volumes-fr.png", "/dashboard/?lang=fr&by=category", "fr-CA"),
         ("dashboard-delays-en.png", "/dashboard/delays?lang=en", "en-CA"),
         ("dashboard-recurring-fr.png", "/dashboard/recurring?lang=fr", "fr-CA"),
         ("dashboard-channels-en.png", "/dashboard/channels?lang=en", "en-CA"),
         ("report-council-fr.png", "/dashboard/report?lang=fr", "fr-CA"),
         ("open-data-en.png", "/dashboard/open-data?lang=en", "en-CA")]


def main() -> None:
    database = ROOT / "var" / "screenshots.db"
    database.unlink(missing_ok=True)
    url = f"sqlite:///{database}"
    upgrade(url)
    generate(url, 60_000)
    app = create_app({"DATABASE_URL": url, "GATEWAY_INLINE_JOBS": False, "GATEWAY_SECRET_KEY": "shots"})
    add_user(app.extensions["runtime"], "direction@bellerive.example.org", "manager", "un mot de passe solide")
    server = LiveServer(app).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{server.url}/inbox/login")
            page.fill("#email", "direction@bellerive.example.org")
            page.fill("#password", "un mot de passe solide")
            page.locator("main form button[type=submit]").click()
            for name, path, _locale in SHOTS:
                page.goto(server.url + path)
                page.wait_for_timeout(800)  # the charts' short animation
                page.screenshot(path=str(Path(__file__).parent / name), full_page=True)
            page.emulate_media(media="print")
            page.goto(server.url + "/dashboard/report?lang=fr")
            page.wait_for_timeout(800)
            page.pdf(path=str(Path(__file__).parent / "report-council-fr.pdf"), format="A4", print_background=True)
            browser.close()
    finally:
        server.stop()
        app.extensions["runtime"].jobs.shutdown()


if __name__ == "__main__":
    main()
