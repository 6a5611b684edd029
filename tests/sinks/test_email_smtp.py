"""E-mail sink against a real SMTP server (aiosmtpd): the routed message and follow-up notices."""

from __future__ import annotations

import pytest

from adapters.errors import (
    AdapterMisconfiguredError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from adapters.sinks.email_smtp import EmailSmtpSink

from ..support.servers import free_port


def sink(port: int, host: str | None = "127.0.0.1") -> EmailSmtpSink:
    return EmailSmtpSink.from_settings({"SMTP_HOST": host, "SMTP_PORT": port, "SMTP_FROM": "311@bellerive.example.org"})


def test_routed_request_subject_carries_code_and_reply_path(smtp_server, summary):
    receipt = sink(smtp_server.port).deliver(summary, {"to": "travaux.publics@bellerive.example.org"}, "R-2026-4821735:route1:0:email_smtp")

    [mail] = smtp_server.to("travaux.publics@bellerive.example.org")
    assert mail["Subject"] == "[R-2026-4821735] Nid-de-poule — 145, rue Wellington (courante)"
    assert mail["Reply-To"] == "311@bellerive.example.org" and receipt.external_id == mail["Message-ID"]


def test_notice_is_a_follow_up_not_a_new_request(smtp_server, summary):
    notice = {"kind": "sla_breached", "text": "Échéance dépassée — R-2026-4821735\nLes superviseurs 311 sont avisés."}

    sink(smtp_server.port).deliver(summary, {"to": "travaux.publics@bellerive.example.org", "notice": notice}, "k")

    [mail] = smtp_server.to("travaux.publics@bellerive.example.org")
    assert mail["Subject"].startswith("Échéance dépassée — R-2026-4821735 — [R-2026-4821735]")
    assert mail.get_content().replace("\r\n", "\n").startswith("Échéance dépassée — R-2026-4821735\nLes superviseurs 311 sont avisés.")


def test_failures_are_classified(smtp_server, summary):
    smtp_server.reject_with = 550
    with pytest.raises(PermanentDeliveryError):
        sink(smtp_server.port).deliver(summary, {"to": "x@bellerive.example.org"}, "k")
    smtp_server.reject_with = 451
    with pytest.raises(TransientDeliveryError):
        sink(smtp_server.port).deliver(summary, {"to": "x@bellerive.example.org"}, "k")
    with pytest.raises(TransientDeliveryError):
        sink(free_port()).deliver(summary, {"to": "x@bellerive.example.org"}, "k")


@pytest.mark.parametrize("host, target, message", [
    ("127.0.0.1", {}, "needs a 'to' address"),
    (None, {"to": "x@bellerive.example.org"}, "SMTP_HOST and SMTP_FROM must be set"),
])
def test_check_reports_misconfiguration_without_sending(smtp_server, host, target, message):
    with pytest.raises(AdapterMisconfiguredError, match=message):
        sink(smtp_server.port, host).check(target)
    assert smtp_server.messages == []


def test_a_kept_session_the_server_closed_is_replaced_and_the_message_sent_once(smtp_server, summary):
    mail_sink = sink(smtp_server.port)
    mail_sink.deliver(summary, {"to": "travaux.publics@bellerive.example.org"}, "first")
    smtp_server.stop()  # the kept session dies with the server (as after its idle timeout)
    smtp_server.start()

    mail_sink.deliver(summary, {"to": "travaux.publics@bellerive.example.org"}, "second")

    keys = [str(m["Message-ID"]).split("@")[0] for m in smtp_server.messages]
    assert keys == ["<first", "<second"]
