"""Citizens' phone numbers and e-mail addresses never reach the logs."""

from __future__ import annotations

import json
import logging

from gateway.logs import mask
from tests.conftest import FIXTURES
from tests.support.servers import wait_until


def test_logs_of_a_whole_request_carry_no_contact_details(client, smtp_server, auth, caplog):
    fixture = json.loads((FIXTURES / "web_form" / "request__pothole_fr.json").read_text())
    caplog.set_level(logging.DEBUG)

    created = client.post("/api/v1/requests", json=fixture, headers=auth).get_json()
    wait_until(lambda: len(smtp_server.messages) == 2)
    logging.getLogger("gateway.test").info("a careless line: %s / %s", "marie.tremblay@example.org", "514 555-0142")

    # every record but the test SMTP server's own (aiosmtpd logs the mail it receives)
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail."))
    assert created["code"] in text  # logs carry tracking codes…
    for secret in ("marie.tremblay@example.org", "555-0142", "5145550142", "Tremblay", "nid-de-poule"):
        assert secret not in text  # …not contact details or message bodies


def test_mask_keeps_codes_and_dates_but_hides_contacts():
    line = "R-2026-4821735 at 2026-11-21 from +1 514 555 0142 / jo@example.org"
    assert mask(line) == "R-2026-4821735 at 2026-11-21 from <phone> / <email>"


def test_reprs_show_ids_not_personal_data(runtime):
    from gateway.models import Citizen, ContactPoint

    assert "example" not in repr(ContactPoint(id=3, kind="email", value="x@example.org"))
    assert repr(Citizen(id=7, name="Marie Tremblay")) == "<Citizen 7>"
