"""The e-mail parser (adapters/channels/email_imap), table by table, on real messages.

Fixtures are real mail from open-source parsers' test suites (tests/fixtures/email/README.md).
"""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from adapters.base import RawInbound
from adapters.channels.email_imap import EmailImapChannel, FilePolicy, strip_reply
from adapters.channels.email_imap.mime import html_to_text
from adapters.errors import MalformedPayloadError, UnsupportedEventError

from .conftest import FIXTURES

EMAIL = FIXTURES / "email"


def fixture(name: str) -> bytes:
    return (EMAIL / name).read_bytes()


def parse(name: str, channel: EmailImapChannel | None = None):
    return (channel or EmailImapChannel()).parse(RawInbound(fixture(name), {}, "message/rfc822"))


# (fixture, sender, words in the subject, words in the text, attachments (name, type))
MESSAGES = [
    ("message__8bit_utf8_alternative.eml", "bob@example.com", "2 RCPT MIME", ["Превел", "123"], []),
    ("message__base64_latin1_subject.eml", "moore@cs.utk.edu", "If you can read this you understand the example.",
     ["Mailparse is unable to handle poorly formed emails"], []),
    ("message__bilingual_utf8_subject.eml", "hello@example.com", "Как ты поживаешь?",
     ["This line is in English", "А эта линия по-русски."], []),
    ("message__dashed_boundaries.eml", "me@example.com", "Hi", ["Hi"], []),
    ("message__enclosed_bad_encoding.eml", "bob@example.net", "Wow", ["Hello"], [("thanks.eml", "message/rfc822")]),
    ("message__enclosed_rfc822.eml", "bob@example.net", "Wow", ["Hello"], [("thanks.eml", "message/rfc822")]),
    ("message__encoded_header.eml", "foo.bar@example.com", "hello", ["hello, world"], []),
    ("message__false_multipart.eml", "broken.mime@notreallymultipart.com", "Broken MIME", ["Broken MIME"], []),
    ("message__forward_rfc822.eml", "example@example.com", "Fwd: Test 5", ["An RFC 822 forward"],
     [("part-1", "message/rfc822")]),
    ("message__fr_attachment_no_extension.eml", "name@company.com", "Mail avec fichier attaché de 1ko",
     ["Mail avec fichier attaché de 1ko"], [("01", "application/octet-stream")]),
    ("message__fr_latin1_14kb.eml", "name@company.com", "Mail de 14 Ko", ["Mail de 14 Ko"],
     [("attach03", "application/octet-stream")]),
    ("message__fr_latin1_subject_attachment.eml", "name@company.com", "Mail avec fichier attaché de 1ko",
     ["Mail avec fichier attaché de 1ko"], [("attach01", "application/octet-stream")]),
    ("message__fr_pdf_signature.eml", "firstname.name@groupe-company.com", "ATT N° 1467829",
     ["Superviseur de voitures", "Pas à pas, agissons au quotidien", "N'imprimez ce mail"],
     [("50032266 CAR 11_MNPA00A01_9PTX_H00 ATT N° 1467829.pdf", "application/pdf")]),
    ("message__html_multipart_related.eml", "example@example.com", "Html and text message",
     ["This is html and text message, thanks"], []),
    ("message__hungarian_utf8_qp.eml", "sender@test.com", "árvíztűrő tükörfúrógép",
     ["Det här är ett flerdelat meddelande"], []),
    ("message__iphone_inline_photo.eml", "someone@somewhere.com", "Subject", ["Hello", "~Danielle"],
     [("photo.JPG", "image/jpeg")]),
    ("message__missing_boundaries.eml", "me@example.com", None, ["Hi This is a broken message"], []),
    ("message__missing_final_boundary.eml", "me@example.com", "Test", ["Some body"], []),
    ("message__netscape_rfc2231_filename.eml", "dwsauder@example.com", "Netscape Communicator 4.7",
     ["Test message from Netscape"], [("HasenundFrösche.txt", "text/plain")]),
    ("message__no_content_type.eml", "bob@marley.com", "Testing message parsing",
     ["I'm just testing message parsing"], []),
    ("message__outlook_express_octet_stream.eml", "bob@example.com", "Sup?", ["Sup?"],
     [(None, "application/octet-stream")]),
    ("message__outlook_qp_latin1.eml", "newsletter@finntack.com", "1", ["1"], []),
    ("message__quoted_printable_long_links.eml", "bob@example.com", "very long links",
     ["http://translate.google.com/translate?sl=de&tl=en&u=http%3A%2F%2Fwww.horizont.at"], []),
    ("message__text_only.eml", "bob@marley.com", "Testing message parsing", ["Hello,", "BR,\nBob"], []),
    ("message__two_from_headers.eml", "dwsauder@example.com", "multiple From headers",
     ["Test message with multiple From headers"], [("HasenundFrösche.txt", "text/plain")]),
]


@pytest.mark.parametrize("name,sender,subject,words,files", MESSAGES, ids=[m[0] for m in MESSAGES])
def test_every_message_fixture_parses_into_readable_text(name, sender, subject, words, files):
    message = parse(name)

    assert message.channel == "email"
    assert message.contact.email == sender
    assert (subject is None and message.subject is None) or subject in message.subject
    for word in words:
        assert word in message.text
    assert "\ufffd" not in message.text  # no mis-decoded characters
    assert "<" not in message.text or "http" in message.text  # no HTML tags left
    assert [(a.filename if name_ else None, a.content_type) for a, (name_, _) in zip(message.attachments, files, strict=True)] == files
    assert all(a.data for a in message.attachments)


# Replies with quoted history: only the new words remain.
REPLIES = [f"reply__{n}.eml" for n in ("aol", "apple_mail", "apple_mail_2", "comcast", "gmail", "hotmail",
                                       "iphone", "outlook", "sparrow", "thunderbird_bottom_posted", "yahoo")]


@pytest.mark.parametrize("name", REPLIES)
def test_reply_keeps_only_the_new_text(name):
    assert parse(name).text == "Hello"


def test_reply_with_share_block_keeps_the_answer_and_drops_the_quote():
    text = parse("reply__share_block.eml").text
    assert text.startswith("Hi Katharine.")
    assert "wrote:" not in text and "booking inquiry" not in text


def test_reply_keeps_text_when_the_attribution_is_in_an_unknown_language():
    text = parse("reply__android_ru.eml").text  # Russian attribution: kept, never lost
    assert text.startswith("Hello")


FRENCH_AND_OUTLOOK_BODIES = [
    "reply_body__fr_attribution_wrapped.txt",  # "Le lun. 15 nov. 2021 à 19:42, John <…>\na écrit :"
    "reply_body__fr_attribution_quoted.txt",  # "> Le 29 avr. 2025 à 11:11, Chris <…> a écrit :"
    "reply_body__fr_message_d_origine.txt",  # "-------- Message d'origine --------" / "De : … Objet :"
    "reply_body__fr_outlook_ios.txt",  # "Envoyé à partir de Outlook pour iOS" + "____" + "From: … Sent:"
    "reply_body__original_message.txt",  # "-----original message-----"
    "reply_body__outlook_split_from.txt",  # "From: Human Resources \n<…>\nSent: …"
    "reply_body__fr_de_en_nested.txt",  # "Le … a écrit :" over German and English quotes
]


@pytest.mark.parametrize("name", FRENCH_AND_OUTLOOK_BODIES)
def test_french_and_outlook_quotes_are_stripped(name):
    text = strip_reply(fixture(name).decode("utf-8"))

    assert text.startswith("Fusce bibendum, quam hendrerit")
    assert text.endswith("Fusce sed odio id arcu varius aliquet nec nec nibh.")
    for leftover in ("écrit", "Etiam non sagittis", "De :", "From:", "Envoyé", "original message", "Hi John"):
        assert leftover not in text


HTML_REPLIES = [f"reply_html__{n}.html" for n in ("gmail", "hotmail", "outlook_2003", "outlook_2010", "thunderbird",
                                                  "windows_mail")]


@pytest.mark.parametrize("name", HTML_REPLIES)
def test_html_only_replies_become_text_without_the_quote(name):
    text = strip_reply(html_to_text(fixture(name).decode("utf-8")))

    assert text.startswith("Hi. I am fine.")
    assert text.rstrip().endswith("Alex")
    assert "<" not in text and "How are you" not in text


def test_french_reply_in_a_real_message_is_stripped():
    mail = EmailMessage()
    mail["From"] = "Marie Tremblay <marie.tremblay@example.org>"
    mail["To"] = "311@bellerive.example.org"
    mail["Subject"] = "=?iso-8859-1?q?R=E9p=2E=A0=3A_demande_R-2026-4821735?="
    mail.set_content("Le trou est toujours là, il s'agrandit.\n\nLe 3 nov. 2026 à 09:12, Ville de Bellerive "
                     "<311@bellerive.example.org> a écrit :\n> Bonjour,\n> Votre numéro de suivi est R-2026-4821735.\n",
                     charset="iso-8859-1", cte="quoted-printable")

    message = EmailImapChannel().parse(RawInbound(mail.as_bytes()))

    assert message.text == "Le trou est toujours là, il s'agrandit."
    assert message.subject == "Rép. : demande R-2026-4821735"
    assert message.contact.name == "Marie Tremblay"


# Mail no person wrote: never a request, never answered.
AUTOMATIC = [
    ("auto_reply__auto_submitted.eml", "auto reply"),
    ("auto_reply__exchange_automatic_reply.eml", "auto reply"),
    ("auto_reply__auto_reply_subject.eml", "auto reply"),
    ("auto_reply__windows1252_qp.eml", "auto reply"),
    ("auto_reply__auto_replied_null_sender.eml", "auto reply"),
    ("auto_reply__precedence_bulk.eml", "auto reply"),
    ("auto_reply__polish_windows1250.eml", "auto reply"),
    ("auto_reply__mailing_list_bulk.eml", "auto reply"),
    ("bounce__gmail_invalid_address.eml", "bounce"),
    ("bounce__postmaster_broken_mime.eml", "bounce"),
    ("bounce__delayed.eml", "bounce"),
    ("bounce__mailbox_full.eml", "bounce"),
    ("bounce__no_mx_warning.eml", "bounce"),
    ("bounce__exchange2007.eml", "bounce"),
    ("bounce__office365_iso2022jp.eml", "bounce"),
    ("bounce__sendmail_fr.eml", "bounce"),
    ("bounce__orange_fr.eml", "bounce"),
    ("bounce__gb2312_failure.eml", "bounce"),
    ("report__aol_complaint.eml", "report"),
    ("report__read_receipt.eml", "report"),
    ("report__arf_abuse.eml", "report"),
]


@pytest.mark.parametrize("name,kind", AUTOMATIC, ids=[a[0] for a in AUTOMATIC])
def test_automatic_mail_is_refused_as_unsupported(name, kind):
    with pytest.raises(UnsupportedEventError) as caught:
        parse(name)
    assert str(caught.value).startswith(kind)
    assert (caught.value.bounce is not None) == (kind == "bounce")


# (fixture, failed recipient, returned Message-ID, permanent)
BOUNCES = [
    ("bounce__gmail_invalid_address.eml", "awfawfawfawfawfaw@someserverhere.com",
     "<CAKsfaBUUGqVZiaMrmH3TRPfq1odQPtM7Ey5YW1SgyJJRHtAjgw@mail.gmail.com>", True),
    ("bounce__sendmail_fr.eml", "pseudo-local-part-kijitora-nyaaan@orange.fr",
     "<20FA40A8-4F88-4453-953D-B7038769D040@example.co.jp>", True),
    ("bounce__mailbox_full.eml", "user@aol.com", "<4E326A95.3010907@example.com>", True),
    ("bounce__exchange2007.eml", "gwang1@student.mlcsyd.nsw.edu.au",
     "<1472759554.gm4daljtga4dmljrgy2donjsha@newsletter.supersurprises-au.com>", True),
    ("bounce__no_mx_warning.eml", "user@example.com", "<19E44CA63F984902B7D654F8FF40F89D@bo>", False),
]


@pytest.mark.parametrize("name,recipient,message_id,permanent", BOUNCES, ids=[b[0] for b in BOUNCES])
def test_bounce_report_names_the_failed_address_and_our_message(name, recipient, message_id, permanent):
    with pytest.raises(UnsupportedEventError) as caught:
        parse(name)
    report = caught.value.bounce
    assert recipient in report.recipients
    assert message_id in report.original_message_ids
    assert report.permanent is permanent


MALFORMED = [
    ("malformed__no_from.eml", "From"),
    ("malformed__broken_header_block.eml", "From"),
    ("malformed__headers_only_no_from.eml", "From"),
]


@pytest.mark.parametrize("name,field", MALFORMED)
def test_mail_without_a_sender_is_malformed(name, field):
    with pytest.raises(MalformedPayloadError) as caught:
        parse(name)
    assert caught.value.field == field


def test_bytes_that_are_not_mail_are_malformed():
    with pytest.raises(MalformedPayloadError):
        EmailImapChannel().parse(RawInbound(b"\x00\x01\x02 not a mail at all"))


def test_mail_from_the_gateway_itself_is_refused_as_a_loop():
    mail = EmailMessage()
    mail["From"] = "311@bellerive.example.org"
    mail["Subject"] = "Test"
    mail.set_content("hello")
    channel = EmailImapChannel.from_settings({"SMTP_FROM": "311@bellerive.example.org"})
    with pytest.raises(UnsupportedEventError, match="loop"):
        channel.parse(RawInbound(mail.as_bytes()))


def _with_file(filename: str, data: bytes, content_type: str = "application/octet-stream") -> bytes:
    mail = EmailMessage()
    mail["From"] = "citizen@example.org"
    mail["Subject"] = "Photo du nid-de-poule"
    mail.set_content("Voici la photo.")
    maintype, subtype = content_type.split("/")
    mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return mail.as_bytes()


def test_executable_disguised_as_photo_is_refused_with_its_reason():
    raw = _with_file("photo.jpg", b"MZ\x90\x00" + b"\x00" * 200, "image/jpeg")
    message = EmailImapChannel().parse(RawInbound(raw))
    [refused] = message.attachments
    assert refused.data is None
    assert refused.refused == "executable content (application/x-msdownload)"
    assert message.text == "Voici la photo."


def test_dangerous_attachment_policy_reject_flags_the_whole_message():
    channel = EmailImapChannel(FilePolicy(dangerous="reject"))
    with pytest.raises(MalformedPayloadError, match=r"dangerous attachment.*\.exe"):
        channel.parse(RawInbound(_with_file("facture.exe", b"\x00" * 10)))


def test_file_over_the_size_limit_is_refused_and_photo_sniffed():
    channel = EmailImapChannel(FilePolicy(max_file_bytes=1000))
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 500
    message = channel.parse(RawInbound(_with_file("a.bin", jpeg)))
    assert message.attachments[0].content_type == "image/jpeg"  # sniffed, not the declared octet-stream
    assert message.attachments[0].data == jpeg
    big = channel.parse(RawInbound(_with_file("big.jpg", jpeg * 3, "image/jpeg")))
    assert big.attachments[0].refused == "file of 1512 bytes is over the 1000-byte limit"


def test_oversized_message_policy_reject_or_strip():
    raw = _with_file("p.jpg", b"\xff\xd8\xff" + b"\x01" * 5000, "image/jpeg")
    with pytest.raises(MalformedPayloadError, match="over the 2000-byte limit"):
        EmailImapChannel(FilePolicy(max_message_bytes=2000)).parse(RawInbound(raw))
    stripped = EmailImapChannel(FilePolicy(max_message_bytes=2000, oversize="strip")).parse(RawInbound(raw))
    assert stripped.text == "Voici la photo."
    assert stripped.attachments[0].refused == "message over the size limit: files not kept"


def test_threading_headers_and_message_id_are_read():
    message = parse("reply__yahoo.eml")
    assert message.in_reply_to == "<1333374262.7063.15.camel@mg5>"
    assert message.external_id and message.external_id.startswith("<")


def test_every_fixture_is_in_a_table_and_every_table_row_has_its_fixture():
    tables = ({m[0] for m in MESSAGES} | set(REPLIES) | set(FRENCH_AND_OUTLOOK_BODIES) | set(HTML_REPLIES)
              | {a[0] for a in AUTOMATIC} | {b[0] for b in BOUNCES} | {m[0] for m in MALFORMED}
              | {"reply__share_block.eml", "reply__android_ru.eml"})
    files = {p.name for p in EMAIL.iterdir() if p.name != "README.md"}
    assert files == tables
    readme = (EMAIL / "README.md").read_text(encoding="utf-8")
    assert all(f"| {name} |" in readme for name in files)  # each one's source is noted
