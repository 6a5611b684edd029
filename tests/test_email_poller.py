"""The e-mail channel end to end: a real Dovecot IMAP server, the poller, the pipeline, and
the acknowledgements over real SMTP.

Citizen mails written here are built like a mail client builds them (multipart/alternative,
quoted-printable, a French reply with its quoted history); the automatic mail and the
malformed mail are the real fixtures of tests/fixtures/email/.
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from gateway.mailboxes import load_mailboxes
from gateway.models import (
    Attachment,
    ContactPoint,
    EmailReceipt,
    Event,
    InboundMessage,
    Message,
    Request,
)
from gateway.poller import MailboxPoller
from gateway.queue import ImmediateQueue
from gateway.status import change_status
from router import ConfigError

from . import test_email_imap
from .conftest import FIXTURES, ROOT
from .support.dovecot import DovecotServer
from .support.servers import wait_until

PASSWORD = "secret-imap-password"
FLAG = b"$Gateway311"


@pytest.fixture
def dovecot():
    # Not under tmp_path: pytest's folders are private to root, and Dovecot's own processes
    # (auth as `dovecot`, mail as `nobody`) must read the configuration and the mail.
    directory = Path(tempfile.mkdtemp(prefix="gateway-dovecot-"))
    server = DovecotServer(directory, {"requetes": PASSWORD}).start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def imap_settings(dovecot, **extra) -> dict:
    return {"IMAP_HOST": "127.0.0.1", "IMAP_PORT": str(dovecot.port), "IMAP_USER": "requetes",
            "IMAP_PASSWORD": PASSWORD, "IMAP_TLS": "none", "GATEWAY_INLINE_JOBS": False,
            # loopback: a server that stops answering (mid-restart) is dropped after 5 s, not 30
            "IMAP_TIMEOUT_SECONDS": "5", "IMAP_POLL_SECONDS": "8", **extra}


@pytest.fixture
def make_mail_runtime(make_app, dovecot):
    """A runtime reading the Dovecot mailbox; jobs run at once, in order, in the test's thread."""

    def build(**extra):
        runtime = make_app(**imap_settings(dovecot, **extra)).extensions["runtime"]
        runtime.jobs.shutdown()
        runtime.jobs = ImmediateQueue(runtime)
        return runtime

    return build


@pytest.fixture
def runtime(make_mail_runtime):
    return make_mail_runtime()


def poller(runtime) -> MailboxPoller:
    [mailbox] = load_mailboxes(runtime.settings)
    return MailboxPoller(runtime, mailbox)


def citizen_mail(text: str, subject: str, sender: str = "marie.tremblay@example.org",
                 name: str = "Marie Tremblay", in_reply_to: str | None = None, photo: bytes | None = None,
                 message_id: str | None = None) -> tuple[bytes, str]:
    mail = EmailMessage()
    mail["From"] = f"{name} <{sender}>"
    mail["To"] = "Ville de Bellerive <requetes@bellerive.example.org>"
    mail["Subject"] = subject
    mail["Date"] = "Tue, 03 Nov 2026 09:12:00 -0500"
    mail["Message-ID"] = message_id or make_msgid(domain="mail.example.org")
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
        mail["References"] = in_reply_to
    mail.set_content(text, cte="quoted-printable")
    mail.add_alternative("<div dir=\"ltr\">" + text.replace("\n", "<br>") + "</div>", subtype="html")
    if photo is not None:
        mail.add_attachment(photo, maintype="image", subtype="jpeg", filename="trou.jpg")
    return mail.as_bytes(), str(mail["Message-ID"])


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def count(runtime, model, *where) -> int:
    with runtime.db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def requests(runtime) -> list[Request]:
    with runtime.db.session() as session:
        return list(session.scalars(select(Request).order_by(Request.id)))


def messages_of(runtime, code: str) -> list[Message]:
    with runtime.db.session() as session:
        return list(session.scalars(select(Message).join(Request).where(Request.code == code).order_by(Message.id)))


POTHOLE = ("Bonjour,\n\nIl y a un gros nid-de-poule devant le 145, rue Wellington, les voitures "
           "font des écarts dangereux.\n\nMarie\n\nEnvoyé de mon iPhone")


def test_citizen_email_becomes_request_and_gets_threaded_acknowledgement(runtime, dovecot, smtp_server, caplog):
    caplog.set_level("DEBUG", logger="gateway")
    caplog.set_level("DEBUG", logger="imapclient")
    raw, message_id = citizen_mail(POTHOLE, "Nid-de-poule rue Wellington")
    dovecot.deliver(raw)

    result = poller(runtime).poll_once()

    assert (result.stored, result.marked) == (1, 1)
    [request] = requests(runtime)
    assert (request.channel, request.category, request.language) == ("email", "pothole", "fr")
    assert "nid-de-poule devant le 145, rue Wellington" in request.description
    assert "iPhone" not in request.description and "<div" not in request.description
    assert messages_of(runtime, request.code)[0].external_id == message_id
    [ack] = wait_until(lambda: smtp_server.to("marie.tremblay@example.org"))
    assert request.code in ack["Subject"]
    assert ack["In-Reply-To"] == message_id and message_id in ack["References"]
    assert ack["Auto-Submitted"] == "auto-generated" and ack["Content-Language"] == "fr"
    assert f"Votre numéro de suivi est {request.code}" in ack.get_body(("plain",)).get_content()
    html = ack.get_body(("html",)).get_content()
    assert '<html lang="fr">' in html and f'<a href="http://127.0.0.1:8311/track/{request.code}">' in html
    assert FLAG in dovecot.flags()[1]

    again = poller(runtime).poll_once()  # the next pass finds nothing new
    assert (again.stored, again.already) == (0, 0)
    assert len(requests(runtime)) == 1 and len(smtp_server.messages) == 2  # department + citizen
    logged = caplog.text.lower()
    assert "marie" not in logged and "wellington" not in logged and PASSWORD not in logged  # privacy


def test_a_new_email_about_the_same_open_problem_is_added_to_it_and_the_citizen_told_so(runtime, dovecot, smtp_server):
    dovecot.deliver(citizen_mail(POTHOLE, "Nid-de-poule rue Wellington")[0])
    poller(runtime).poll_once()
    [request] = requests(runtime)
    wait_until(lambda: smtp_server.to("marie.tremblay@example.org"))

    # Days later, a new e-mail (not a reply to ours) about the same hole: no second request.
    raw, message_id = citizen_mail("Bonjour, le gros nid-de-poule devant le 145 rue Wellington est toujours là, "
                                   "les voitures font des écarts dangereux.", "Toujours le trou rue Wellington")
    dovecot.deliver(raw)
    poller(runtime).poll_once()

    assert [r.code for r in requests(runtime)] == [request.code]
    assert [m.external_id for m in messages_of(runtime, request.code) if m.direction == "in"][1] == message_id
    told = wait_until(lambda: [m for m in smtp_server.to("marie.tremblay@example.org")
                               if "ajouté" in m["Subject"]])
    assert len(told) == 1 and request.code in told[0]["Subject"]
    assert told[0]["In-Reply-To"] == message_id  # in the thread of the e-mail it answers
    assert "plutôt que d'ouvrir une deuxième demande" in told[0].get_body(("plain",)).get_content()
    assert len(smtp_server.to("travaux.publics@bellerive.example.org")) == 1  # the department is not sent it again


def test_reply_lands_in_the_right_request_with_quotes_stripped(runtime, dovecot, smtp_server):
    dovecot.deliver(citizen_mail(POTHOLE, "Nid-de-poule rue Wellington")[0])
    dovecot.deliver(citizen_mail("Le lampadaire du parc Jacques-Cartier est éteint depuis trois jours.",
                                 "Lampadaire éteint", sender="paul.gagnon@example.org", name="Paul Gagnon")[0])
    poller(runtime).poll_once()
    pothole, streetlight = requests(runtime)
    [ack] = smtp_server.to("marie.tremblay@example.org")

    reply, _ = citizen_mail(
        "Le trou s'est agrandi depuis hier, une roue a été abîmée.\n\n"
        f"Le mar. 3 nov. 2026 à 09:15, Ville de Bellerive <311@bellerive.example.org>\na écrit :\n"
        f"> Bonjour,\n> Nous avons bien reçu votre demande. Votre numéro de suivi est {pothole.code}.\n",
        f"Re: {ack['Subject']}", in_reply_to=ack["Message-ID"])
    by_code, _ = citizen_mail("Voici une photo du trou.", f"Photo pour la demande {pothole.code}",
                              photo=b"\xff\xd8\xff\xe0" + b"\x10" * 4000)
    for raw in (reply, by_code):
        dovecot.deliver(raw)
    poller(runtime).poll_once()

    assert [r.code for r in requests(runtime)] == [pothole.code, streetlight.code]  # no new request
    conversation = [m for m in messages_of(runtime, pothole.code) if m.direction == "in"]
    assert [m.body for m in conversation][1:] == ["Le trou s'est agrandi depuis hier, une roue a été abîmée.",
                                                  "Voici une photo du trou."]
    assert len([m for m in messages_of(runtime, streetlight.code) if m.direction == "in"]) == 1
    with runtime.db.session() as session:
        [photo] = session.scalars(select(Attachment).where(Attachment.request_id == pothole.id)).all()
        assert (photo.filename, photo.content_type, photo.size) == ("trou.jpg", "image/jpeg", 4004)
        assert open(photo.storage_path, "rb").read(4) == b"\xff\xd8\xff\xe0"
    assert len(smtp_server.to("marie.tremblay@example.org")) == 1  # replies are not acknowledged again

    # The department's update answers the citizen's last e-mail, in the same thread.
    with runtime.db.session() as session:
        ids = change_status(session, runtime, session.get(Request, pothole.id), "in_progress", "agent:1",
                            note="Une équipe passera jeudi.")
    for delivery_id in ids:
        runtime.jobs.enqueue("deliver", delivery_id)
    update = smtp_server.to("marie.tremblay@example.org")[-1]
    citizen_ids = [m.external_id for m in conversation]
    assert pothole.code in update["Subject"] and "Une équipe passera jeudi." in update.get_body(("plain",)).get_content()
    assert update["In-Reply-To"] == citizen_ids[-1]
    assert update["References"].split() == [citizen_ids[0], ack["Message-ID"], *citizen_ids[1:]]


def test_department_reply_to_the_routed_mail_joins_the_request(runtime, dovecot, smtp_server):
    dovecot.deliver(citizen_mail(POTHOLE, "Nid-de-poule rue Wellington")[0])
    poller(runtime).poll_once()
    [request] = requests(runtime)
    [routed] = smtp_server.to("travaux.publics@bellerive.example.org")
    answer, _ = citizen_mail("Équipe envoyée demain matin.\n\n-----Message d'origine-----\nDe : 311",
                             f"RE: {routed['Subject']}", sender="contremaitre@bellerive.example.org",
                             name="Contremaître", in_reply_to=routed["Message-ID"])
    dovecot.deliver(answer)

    poller(runtime).poll_once()

    assert [r.code for r in requests(runtime)] == [request.code]
    assert messages_of(runtime, request.code)[-1].body == "Équipe envoyée demain matin."


def test_auto_replies_and_bounces_create_no_request_and_get_no_answer(runtime, dovecot, smtp_server):
    names = [name for name, _ in test_email_imap.AUTOMATIC]
    for name in names:
        dovecot.deliver((FIXTURES / "email" / name).read_bytes())

    result = poller(runtime).poll_once()

    # Two fixtures are the same sendmail bounce (one Message-ID): stored once, both marked.
    assert (result.stored, result.already, result.marked) == (len(names) - 1, 1, len(names))
    assert requests(runtime) == []
    assert smtp_server.messages == []
    with runtime.db.session() as session:
        states = session.scalars(select(InboundMessage.state)).all()
        reasons = session.scalars(select(InboundMessage.error)).all()
    assert set(states) == {"ignored"}
    assert all(r.startswith(("auto reply", "bounce", "report")) for r in reasons)
    assert all(FLAG in flags for flags in dovecot.flags().values())


def test_bounce_of_our_acknowledgement_marks_the_address_undeliverable(runtime, dovecot, smtp_server):
    dovecot.deliver(citizen_mail(POTHOLE, "Nid-de-poule", sender="jean.inexistant@example.org", name="Jean")[0])
    poller(runtime).poll_once()
    [request] = requests(runtime)
    [ack] = smtp_server.to("jean.inexistant@example.org")
    # A real sendmail bounce (fixture), about our acknowledgement to Jean's address.
    bounce = (FIXTURES / "email" / "bounce__sendmail_fr.eml").read_bytes()
    bounce = bounce.replace(b"pseudo-local-part-kijitora-nyaaan@orange.fr", b"jean.inexistant@example.org")
    bounce = bounce.replace(b"<20FA40A8-4F88-4453-953D-B7038769D040@example.co.jp>", ack["Message-ID"].encode())
    dovecot.deliver(bounce)

    poller(runtime).poll_once()

    assert len(requests(runtime)) == 1 and len(smtp_server.messages) == 2  # nothing new, nothing sent
    with runtime.db.session() as session:
        point = session.scalar(select(ContactPoint).where(ContactPoint.value == "jean.inexistant@example.org"))
        assert point.undeliverable
        event = session.scalar(select(Event).where(Event.type == "contact_undeliverable"))
        assert event.request_id == request.id
        assert session.scalar(select(InboundMessage.state).order_by(InboundMessage.id.desc())) == "ignored"


def test_bounce_of_mail_we_did_not_send_changes_nothing(runtime, dovecot, smtp_server):
    dovecot.deliver(citizen_mail(POTHOLE, "Nid-de-poule", sender="user@aol.com", name="Aol")[0])
    dovecot.deliver((FIXTURES / "email" / "bounce__mailbox_full.eml").read_bytes())  # fails user@aol.com

    poller(runtime).poll_once()

    with runtime.db.session() as session:
        assert not session.scalar(select(ContactPoint.undeliverable).where(ContactPoint.value == "user@aol.com"))


def test_unparseable_mail_is_stored_and_flagged_for_an_agent_without_blocking(runtime, dovecot, smtp_server):
    names = ["malformed__no_from.eml", "malformed__broken_header_block.eml", "malformed__headers_only_no_from.eml"]
    for name in names:
        dovecot.deliver((FIXTURES / "email" / name).read_bytes())
    dovecot.deliver(citizen_mail(POTHOLE, "Nid-de-poule")[0])

    result = poller(runtime).poll_once()

    assert (result.stored, result.marked) == (4, 4)
    assert len(requests(runtime)) == 1
    with runtime.db.session() as session:
        failed = session.scalars(select(InboundMessage).where(InboundMessage.state == "failed")).all()
    assert len(failed) == 3
    assert all("sender" in row.error for row in failed)
    # The raw bytes are kept as the server holds them (IMAP lines end in CRLF).
    assert [row.body for row in failed] == [crlf((FIXTURES / "email" / n).read_bytes()) for n in names]
    assert all(FLAG in flags for flags in dovecot.flags().values())


def test_oversized_message_is_refused_by_policy_with_the_reason(make_mail_runtime, dovecot):
    runtime = make_mail_runtime(EMAIL_MAX_MESSAGE_BYTES="5000")
    dovecot.deliver((FIXTURES / "email" / "message__fr_latin1_14kb.eml").read_bytes())

    poller(runtime).poll_once()

    with runtime.db.session() as session:
        inbound = session.scalar(select(InboundMessage))
    assert inbound.state == "failed"
    assert "over the 5000-byte limit" in inbound.error
    assert len(inbound.body) < 5000 and inbound.headers["truncated"]  # headers only were fetched
    assert requests(runtime) == []


class Killed(BaseException):
    """Stands for the process dying: nothing after it runs."""


def test_killed_between_storing_and_flagging_loses_nothing_and_doubles_nothing(runtime, dovecot, smtp_server,
                                                                                monkeypatch):
    for i in range(3):
        dovecot.deliver(citizen_mail(f"Graffiti sur le mur de l'école numéro {i}.", f"Graffiti {i}",
                                     sender=f"citoyen{i}@example.org", name=f"Citoyen {i}")[0])

    def die(self, client, uidvalidity, uid):
        if uid == 2:
            raise Killed()
        original(self, client, uidvalidity, uid)

    original = MailboxPoller.mark
    monkeypatch.setattr(MailboxPoller, "mark", die)
    with pytest.raises(Killed):
        poller(runtime).poll_once()
    monkeypatch.setattr(MailboxPoller, "mark", original)
    assert count(runtime, InboundMessage) == 2 and FLAG not in dovecot.flags()[2]  # stored, not flagged

    result = poller(runtime).poll_once()

    assert (result.stored, result.already, result.marked) == (1, 1, 2)
    assert count(runtime, InboundMessage) == 3 and count(runtime, EmailReceipt) == 3
    assert len(requests(runtime)) == 3
    assert all(len(smtp_server.to(f"citoyen{i}@example.org")) == 1 for i in range(3))
    assert all(FLAG in flags for flags in dovecot.flags().values())


def test_poller_process_killed_mid_run_then_restarted_loses_and_doubles_nothing(settings, dovecot, smtp_server,
                                                                                 runtime):
    total = 30
    for i in range(total):
        dovecot.deliver(citizen_mail(f"Le feu de circulation numéro {i} est en panne.", f"Feu {i}",
                                     sender=f"conducteur{i}@example.org", name=f"Conducteur {i}")[0])
    env = {**os.environ, **{k: str(v) for k, v in settings.items() if v is not None},
           **{k: str(v) for k, v in imap_settings(dovecot).items()}, "GATEWAY_LEASE_SECONDS": "0.5",
           "GATEWAY_LOG_LEVEL": "WARNING"}
    gateway = [sys.executable, "-c", "from gateway.cli import main; main()", "poll-email"]

    process = subprocess.Popen(gateway, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: count(runtime, InboundMessage) >= 3, timeout=20, every=0.005)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    stored_at_kill = count(runtime, InboundMessage)
    time.sleep(0.6)  # let the dead process's leases expire

    done = subprocess.run(gateway + ["--once"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert 3 <= stored_at_kill < total  # the kill landed mid-run
    assert count(runtime, InboundMessage) == total and count(runtime, EmailReceipt) == total
    assert count(runtime, InboundMessage, InboundMessage.state != "processed") == 0
    assert len(requests(runtime)) == total
    assert all(FLAG in flags for flags in dovecot.flags().values())
    acknowledged = {str(m["Message-ID"]) for m in smtp_server.messages if "conducteur" in str(m["To"])}
    assert len(acknowledged) == total  # each citizen acknowledged (a resend keeps its Message-ID)


def test_uidvalidity_change_does_not_recreate_old_requests(make_mail_runtime, dovecot):
    runtime = make_mail_runtime(IMAP_FOLDER="Requetes")
    mails = [citizen_mail(f"Déchets non ramassés rue {street}.", f"Collecte {street}",
                          sender=f"{street.lower()}@example.org", name=street)[0] for street in ("Principale", "King")]
    for raw in mails:
        dovecot.deliver(raw, folder="Requetes")
    first = poller(runtime).poll_once()
    with dovecot.client() as client:  # the mailbox is re-created: same messages, new UIDs, no flags
        client.delete_folder("Requetes")
    time.sleep(1.1)  # Dovecot derives UIDVALIDITY from the clock
    for raw in mails + [citizen_mail("Arbre tombé sur la chaussée rue Wellington.", "Arbre tombé",
                                     sender="new@example.org", name="New")[0]]:
        dovecot.deliver(raw, folder="Requetes")

    second = poller(runtime).poll_once()

    assert first.stored == 2
    assert second.uidvalidity_changed and (second.stored, second.already) == (1, 2)
    assert len(requests(runtime)) == 3


def test_move_policy_moves_processed_mail_to_its_folder(make_mail_runtime, dovecot):
    runtime = make_mail_runtime(IMAP_PROCESSED="move", IMAP_PROCESSED_FOLDER="Traités")
    dovecot.deliver(citizen_mail(POTHOLE, "Nid-de-poule")[0])

    poller(runtime).poll_once()

    assert dovecot.count("INBOX") == 0 and dovecot.count("Traités") == 1
    assert len(requests(runtime)) == 1


def test_idle_picks_up_new_mail_and_poller_reconnects_after_server_restart(runtime, dovecot):
    stop = threading.Event()
    thread = threading.Thread(target=poller(runtime).run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        time.sleep(0.3)  # connected and idling
        dovecot.deliver(citizen_mail(POTHOLE, "Nid-de-poule")[0])
        wait_until(lambda: len(requests(runtime)) == 1, timeout=5)  # pushed by IDLE, not by a poll

        dovecot.stop()
        time.sleep(0.5)  # the poller sees the connection drop and backs off
        dovecot.start().wait_ready()
        dovecot.deliver(citizen_mail("Graffiti sur le pont.", "Graffiti", sender="b@example.org", name="B")[0])
        wait_until(lambda: len(requests(runtime)) == 2, timeout=40)  # pushed, or at worst re-read within IMAP_POLL_SECONDS
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert runtime.health["mailbox:default"]["last_error"]  # the outage was recorded


def test_without_idle_the_poller_polls(make_mail_runtime, dovecot):
    runtime = make_mail_runtime(IMAP_IDLE="no", IMAP_POLL_SECONDS="0.3")
    stop = threading.Event()
    thread = threading.Thread(target=poller(runtime).run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        dovecot.deliver(citizen_mail(POTHOLE, "Nid-de-poule")[0])
        wait_until(lambda: len(requests(runtime)) == 1, timeout=5)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


@pytest.mark.parametrize("mode", ["tls", "starttls"])
def test_tls_and_starttls_check_the_certificate(make_app, mode):
    directory = Path(tempfile.mkdtemp(prefix="gateway-dovecot-"))
    server = DovecotServer(directory, {"requetes": PASSWORD}, tls=True).start()
    try:
        server.wait_ready()
        server.deliver(citizen_mail(POTHOLE, "Nid-de-poule")[0])
        port = server.tls_port if mode == "tls" else server.port
        runtime = make_app(**imap_settings(server, IMAP_TLS=mode, IMAP_PORT=str(port),
                                           IMAP_TLS_CA_FILE=str(server.ca_file))).extensions["runtime"]
        runtime.jobs.shutdown()
        runtime.jobs = ImmediateQueue(runtime)

        assert poller(runtime).poll_once().stored == 1

        untrusted = make_app(**imap_settings(server, IMAP_TLS=mode, IMAP_PORT=str(port))).extensions["runtime"]
        with pytest.raises(ssl.SSLCertVerificationError):
            poller(untrusted).poll_once()  # a certificate nobody vouches for is refused
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_database_failure_in_the_poller_is_retried_not_fatal(runtime, dovecot, monkeypatch):
    original, calls = MailboxPoller.store, []

    def flaky(self, *args):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return original(self, *args)

    monkeypatch.setattr(MailboxPoller, "store", flaky)
    dovecot.deliver(citizen_mail(POTHOLE, "Nid-de-poule")[0])
    stop = threading.Event()
    thread = threading.Thread(target=poller(runtime).run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(requests(runtime)) == 1, timeout=10)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert "OperationalError" in runtime.health["mailbox:default"]["error"]
    assert FLAG in dovecot.flags()[1] and count(runtime, InboundMessage) == 1


def test_mailboxes_from_config_name_their_password_variable(tmp_path, settings):
    config = tmp_path / "config"
    config.mkdir()
    (config / "mailboxes.yaml").write_text(
        "mailboxes:\n"
        "  - name: requetes\n    host: imap.example.org\n    user: requetes@example.org\n"
        "    password_env: IMAP_REQUETES_PASSWORD\n    processed: move\n"
        "  - name: travaux\n    host: imap.example.org\n    tls: starttls\n    user: travaux@example.org\n"
        "    password_env: IMAP_TRAVAUX_PASSWORD\n", encoding="utf-8")
    values = {"GATEWAY_CONFIG_DIR": str(config), "IMAP_REQUETES_PASSWORD": "pw-requetes-1", "IMAP_TRAVAUX_PASSWORD": "pw-travaux-2"}

    first, second = load_mailboxes(values)

    assert (first.name, first.port, first.tls, first.password, first.processed) == ("requetes", 993, "tls", "pw-requetes-1", "move")
    assert (second.port, second.tls, second.password) == (143, "starttls", "pw-travaux-2")
    assert "pw-requetes-1" not in repr(first) and "requetes@" not in repr(first)
    with pytest.raises(ConfigError) as caught:
        load_mailboxes({**values, "IMAP_TRAVAUX_PASSWORD": None})
    assert str(caught.value) == (f"{config}/mailboxes.yaml:11: mailboxes[1].password_env: "
                                 "environment variable IMAP_TRAVAUX_PASSWORD is not set")


def test_poll_email_once_without_mailbox_is_a_clear_error(settings):
    env = {**os.environ, **{k: str(v) for k, v in settings.items() if v is not None}}
    env.pop("IMAP_HOST", None)
    done = subprocess.run([sys.executable, "-c", "from gateway.cli import main; main()", "poll-email", "--once"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "no mailbox configured" in done.stderr
