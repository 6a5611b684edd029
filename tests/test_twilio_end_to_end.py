"""SMS end to end over real HTTP: a signed SMS webhook → the department's e-mail (real SMTP) →
an agent changes the status → the citizen's SMS goes out through the real twilio client."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx

from normalizer.codes import find_codes

from .conftest import API_TOKEN
from .support.servers import LiveServer, wait_until
from .support.twilio import PUBLIC_URL, TwilioStandIn, load, sign, twilio_settings


def test_sms_request_is_routed_then_the_citizen_gets_the_new_status_by_sms(make_app, smtp_server):
    twilio = TwilioStandIn().start()
    server = LiveServer(make_app(**twilio_settings(twilio))).start()
    try:
        fixture = load("twilio_sms", "sms__pothole_fr")
        params = fixture["params"]
        # Twilio signs the public URL; the gateway is reached on its internal address (a proxy).
        response = httpx.post(f"{server.url}/webhooks/twilio/sms", content=urlencode(params),
                              headers={"Content-Type": "application/x-www-form-urlencoded",
                                       "X-Twilio-Signature": sign(PUBLIC_URL + "/webhooks/twilio/sms", params)})
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/xml")
        code = find_codes(response.text, "R")[0]
        assert "Votre numéro de suivi est " + code in response.text

        department = wait_until(lambda: smtp_server.to("travaux.publics@bellerive.example.org"))
        assert code in department[0]["Subject"] and "nid de poule" in department[0].get_content()

        changed = httpx.post(f"{server.url}/api/v1/requests/{code}/status",
                             headers={"Authorization": f"Bearer {API_TOKEN}"},
                             json={"status": "resolved", "note": "Le trou a été rebouché ce matin."})
        assert changed.status_code == 200

        texts = wait_until(lambda: twilio.sent(params["From"]))
        assert len(texts) == 1
        assert code in texts[0]["Body"] and "résolue" in texts[0]["Body"]
        assert "Le trou a été rebouché ce matin." in texts[0]["Body"]
        assert texts[0]["From"] == twilio_settings(twilio)["TWILIO_FROM_NUMBER"]
        assert texts[0]["StatusCallback"] == PUBLIC_URL + "/webhooks/twilio/sms/status"
        page = httpx.get(f"{server.url}/track/{code}?lang=fr")
        # Not the citizen's number, in any form ("555" alone also occurs in a timestamp's microseconds).
        assert "Résolue" in page.text and not any(form in page.text for form in ("5550142", "555-0142", "555 0142"))
    finally:
        server.stop()
        twilio.stop()
