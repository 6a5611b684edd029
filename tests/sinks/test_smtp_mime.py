"""The e-mails built with the email package's compat32 classes (adapters/smtp.py ``mime``)
read, for a recipient, as those EmailMessage built before.

Each case goes through the real adapter to a real SMTP server and is compared with the message
the previous code built with ``email.message.EmailMessage`` (policy.default, kept below as the
reference): the same header fields with the same decoded values, the same parts, and in each
part the same Content-Type, charset and decoded text. The transfer encoding may differ
(quoted-printable now), and so may the bytes.
"""

from __future__ import annotations

import email
import io
from dataclasses import replace
from email import policy
from email.generator import BytesGenerator
from email.message import EmailMessage

import pytest

from adapters.base import OutboundMessage
from adapters.channels.email import EmailChannel, to_html
from adapters.sinks.email_smtp import LABELS, EmailSmtpSink, _body
from adapters.smtp import mime

SENDER = "311@bellerive.example.org"
SETTINGS = {"SMTP_HOST": "127.0.0.1", "SMTP_FROM": SENDER, "GATEWAY_REPLY_TO": "reponses@bellerive.example.org"}
LONG_FR = ("Bonjour Élise,\n\nNous avons bien reçu votre demande « lampadaire éteint à l'angle de la rue "
           "Saint-Denis et du boulevard René-Lévesque » ; l'équipe d'éclairage s'en occupe. "
           "Suivez-la ici : http://127.0.0.1:8311/track/R-2026-4821735.\n\nVille de Bellerive — 311")
SHORT_EN = "Hello Zoë,\n\nWe received your request about the café's sidewalk.\nTrack it: http://127.0.0.1:8311/track/R-2026-4821736\n"
LONG_RU = "Здравствуйте! " * 12 + "\n" + "Ваша заявка получена, спасибо. " * 6 + "\n"  # base64 is shorter than QP

CITIZEN = [
    OutboundMessage(to="elise@example.org", text=LONG_FR, language="fr", idempotency_key="ack:R-2026-4821735",
                    subject="Votre demande R-2026-4821735 a été reçue — éclairage de rue à l'angle Saint-Denis",
                    in_reply_to="<abc.123@mail.example.org>", references=("<first@mail.example.org>",)),
    OutboundMessage(to="zoe@example.org", text=SHORT_EN, language="en", idempotency_key="update:R-2026-4821736:2",
                    subject="Your request R-2026-4821736: café sidewalk", automatic=False),
    OutboundMessage(to="ivan@example.org", text=LONG_RU, language="ru", idempotency_key="ack:R-2026-4821737",
                    subject="Заявка R-2026-4821737"),
    OutboundMessage(to="plain@example.org", text="Short ASCII text.", language="en", idempotency_key="k", subject=""),
]


def old_citizen_message(message: OutboundMessage, reply_to: str, message_id: str) -> EmailMessage:
    """adapters/channels/email.py before the e-mails were written as bytes."""
    mail = EmailMessage()
    mail["To"] = message.to
    mail["Subject"] = message.subject or ""
    mail["Message-ID"] = message_id
    mail["Reply-To"] = reply_to
    references = list(dict.fromkeys([*message.references, *filter(None, [message.in_reply_to])]))
    if message.in_reply_to:
        mail["In-Reply-To"] = message.in_reply_to
    if references:
        mail["References"] = " ".join(references)
    if message.automatic:
        mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(message.text)
    mail.add_alternative(to_html(message.text, message.language), subtype="html")
    mail["Content-Language"] = message.language
    mail["From"] = SENDER
    return mail


def old_department_message(summary, to: str, language: str, message_id: str, notice: dict | None) -> EmailMessage:
    """adapters/sinks/email_smtp.py before the e-mails were written as bytes."""
    words = LABELS[language]
    priority = words["priorities"].get(summary.priority, summary.priority)
    mail = EmailMessage()
    mail["To"] = to
    mail["Reply-To"] = SETTINGS["GATEWAY_REPLY_TO"]
    mail["Subject"] = words["subject"].format(code=summary.code, category=summary.category_name,
                                              where=summary.address or summary.district or words["nowhere"],
                                              priority=priority)
    mail["Message-ID"] = message_id
    mail["X-Gateway-Request"] = summary.code
    if summary.priority == "urgent":
        mail["Importance"] = "high"
    mail.set_content(_body(summary, words, priority))
    if notice:
        subject = mail["Subject"]
        del mail["Subject"]
        mail["Subject"] = f"{notice['text'].splitlines()[0]} — {subject}"
        mail.set_content(notice["text"] + "\n\n" + mail.get_content())
    mail["From"] = SENDER
    return mail


def reparsed(mail: EmailMessage) -> EmailMessage:
    """What a mail client reads: the message flattened as smtplib's send_message did, parsed back."""
    out = io.BytesIO()
    BytesGenerator(out).flatten(mail, linesep="\r\n")
    return email.message_from_bytes(out.getvalue(), policy=policy.default)


# Not seen by a recipient: how each part is encoded for transport, and the MIME-Version that
# the compat32 parts (and EmailMessage's html alternative) repeat.
UNSEEN = {"Content-Type", "Content-Transfer-Encoding", "MIME-Version"}


def fields(part) -> list[tuple[str, str]]:
    """Header fields and their decoded values, in any order; the boundary is random."""
    return sorted((name, str(value)) for name, value in part.items() if name not in UNSEEN) + [
        ("Content-Type", part.get_content_type()), ("charset", str(part.get_param("charset")))]


def seen(part) -> str:
    """A part's decoded text as a mail client shows it: line ends (CRLF on the wire, kept by
    the 8bit parts, not by the base64 or quoted-printable ones) and a final line end aside."""
    return part.get_content().replace("\r\n", "\n").rstrip("\n")


def assert_same(received: EmailMessage, expected: EmailMessage) -> None:
    assert fields(received) == fields(expected)
    received_parts, expected_parts = list(received.walk()), list(expected.walk())
    assert len(received_parts) == len(expected_parts)
    for got, want in zip(received_parts, expected_parts, strict=True):
        assert fields(got) == fields(want)
        if not got.is_multipart():
            assert seen(got) == seen(want)  # the same text
            assert got["Content-Transfer-Encoding"] == "quoted-printable"
    assert not received.defects and all(not part.defects for part in received_parts)


@pytest.mark.parametrize("message", CITIZEN, ids=["fr-long-accents", "en-accents", "ru-base64", "ascii"])
def test_citizen_email_parses_as_the_email_package_built_it(smtp_server, message):
    channel = EmailChannel.from_settings({**SETTINGS, "SMTP_PORT": smtp_server.port})

    receipt = channel.send(message)

    [received] = smtp_server.to(message.to)
    expected = reparsed(old_citizen_message(message, SETTINGS["GATEWAY_REPLY_TO"], receipt.external_id))
    assert_same(received, expected)
    assert received["Message-ID"] == channel.transport.message_id(message.idempotency_key)
    html = received.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert html.startswith(f'<!DOCTYPE html>\n<html lang="{message.language}">')


@pytest.mark.parametrize("language, changes, notice", [
    ("fr", {}, None),
    ("fr", {"priority": "urgent", "description": "Lampadaire tombé sur la chaussée, fils électriques à nu près de "
                                                  "l'école Sainte-Thérèse : danger immédiat pour les élèves."}, None),
    ("en", {"category_name": "Pothole", "address": "12 Côte-des-Neiges Road"},
     {"kind": "sla_breached", "text": "Overdue — R-2026-4821735\nThe 311 supervisors have been told."}),
    ("fr", {}, {"kind": "sla_warning", "text": "Échéance proche — R-2026-4821735\nIl reste 4 h."}),
], ids=["fr", "fr-urgent-long-line", "en-notice", "fr-notice"])
def test_department_email_parses_as_the_email_package_built_it(smtp_server, summary, language, changes, notice):
    summary = replace(summary, **changes)
    target = {"to": "travaux.publics@bellerive.example.org", "language": language, **({"notice": notice} if notice else {})}
    sink = EmailSmtpSink.from_settings({**SETTINGS, "SMTP_PORT": smtp_server.port})

    receipt = sink.deliver(summary, target, "R-2026-4821735:route1:0:email_smtp")

    [received] = smtp_server.to("travaux.publics@bellerive.example.org")
    assert_same(received, reparsed(old_department_message(summary, target["to"], language, receipt.external_id, notice)))


@pytest.mark.parametrize("name, value", [
    ("Subject", "Votre demande — reçue"),
    ("Subject", "A long ASCII subject that the generator has to fold because it is longer than the line"),
    ("To", "Élise Tremblay <elise@example.org>"),
    ("References", " ".join(f"<message.{i}.abcdef@mail.example.org>" for i in range(6))),
    ("Subject", "=?utf-8?q?looks_encoded?= but is plain"),
    ("Subject", "[R-2026-4821735] Nid-de-poule — 145, rue Wellington (courante)"),
    ("Subject", "Échéance dépassée — R-2026-4821735 — [R-2026-4821735] Éclairage de rue — 12, côte "
                "Sainte-Thérèse-de-l'Enfant-Jésus (URGENT)"),
    ("Subject", "é é a é_b? ça=là =?x?= 🚧 Заявка R-2026-4821737 получена"),
    ("Subject", "Très" + "é" * 90),
    ("Subject", " leading and  double  spaces — kept"),
    ("Subject", "a\ttab — ç"),
])
def test_header_reads_back_as_written(name, value):
    written = mime([(name, value)], "text")

    received = email.message_from_bytes(written, policy=policy.default)
    assert str(received[name]) == value and all(len(line) <= 78 for line in written.splitlines())


@pytest.mark.parametrize("utf8", [False, True], ids=["ascii-envelope", "smtputf8"])
def test_line_break_in_a_header_is_refused(utf8):
    with pytest.raises(ValueError):
        mime([("To", "a@example.org"), ("Subject", "two\r\nBcc: x@example.org")], "text", utf8=utf8)


def test_address_not_ascii_is_written_in_utf8():
    written = mime([("To", "Élise <élise@example.org>"), ("Subject", "Reçu"), ("Content-Language", "fr")],
                   "Bonjour Élise", "<p>Bonjour Élise</p>", utf8=True)

    received = email.message_from_bytes(written, policy=policy.default)
    assert "To: Élise <élise@example.org>".encode() in written
    assert (received["Subject"], received["Content-Language"]) == ("Reçu", "fr")
    assert seen(received.get_body(("plain",))) == "Bonjour Élise"
    assert seen(received.get_body(("html",))) == "<p>Bonjour Élise</p>"


HEADERS = [[("To", m.to), ("Subject", m.subject or ""), ("Message-ID", f"<{m.idempotency_key}@bellerive.example.org>"),
            ("Reply-To", SETTINGS["GATEWAY_REPLY_TO"]), ("Content-Language", m.language), ("From", SENDER)]
           for m in CITIZEN] + [[("To", "travaux.publics@bellerive.example.org"), ("Subject", f"[R-2026-482173{i}] "
                                 "Nid-de-poule — 145, rue Wellington (courante)" * (i + 1)), ("Importance", "high")]
                                for i in range(3)]


@pytest.mark.parametrize("headers", HEADERS)
def test_remembered_folding_writes_the_bytes_the_library_folds(headers, monkeypatch):
    from adapters import smtp

    monkeypatch.setattr(smtp, "_boundary", lambda: "===============0000000000000000042==")
    text = CITIZEN[0].text

    def written() -> list[bytes]:  # twice each: the second time from the cache
        return [mime(headers, text, to_html(text, "fr")), mime(headers, text)] * 2

    remembered = written()
    monkeypatch.setattr(smtp, "_CRLF", smtp._PLAIN_CRLF)  # the library's compat32, folding every time
    assert remembered == written()


def test_a_text_holding_the_boundary_stays_inside_its_part(monkeypatch):
    from adapters import smtp

    boundary = "===============0000000000000000042=="
    monkeypatch.setattr(smtp, "_boundary", lambda: boundary)
    text = f"--{boundary}\nContent-Type: text/html\n\n<p>not a part</p>\n--{boundary}--\n"

    written = mime([("To", "elise@example.org"), ("Subject", "Reçu")], text, "<p>Bonjour</p>")

    received = email.message_from_bytes(written, policy=policy.default)
    assert received.get_boundary() == boundary and len(list(received.iter_parts())) == 2
    assert seen(received.get_body(("plain",))) == text.rstrip("\n")
    assert seen(received.get_body(("html",))) == "<p>Bonjour</p>" and not received.defects
