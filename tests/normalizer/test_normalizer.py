"""Normalizer tables: language, phone numbers, tracking codes, text, identity."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.base import CitizenMessage, Contact
from gateway.models import Citizen
from normalizer import normalize, resolve_citizen
from normalizer.codes import find_codes, is_valid, new_code, spoken
from normalizer.language import detect
from normalizer.phone import to_e164
from normalizer.text import clean, fold


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Il y a un nid de poule devant chez moi", "fr"),
        ("lampadaire brise rue principale", "fr"),  # no accents
        ("la poubelle na pas ete ramassee", "fr"),
        ("chien qui jappe toute la nuit", "fr"),
        ("STATUT", "fr"),
        ("ok merci", "fr"),
        ("Fuite d eau", "fr"),
        ("pothole on main st", "en"),
        ("trash not picked up", "en"),
        ("Water main break on Elm", "en"),
        ("dead raccoon in my backyard", "en"),
        ("STATUS", "en"),
        ("thanks", "en"),
        ("The street light near 22 rue Wellington is out", "en"),  # English with a French street name
        ("Bonjour, le lampadaire de la rue Maple est brûlé", "fr"),  # French with an English street name
    ],
)
def test_language_detection_on_short_accentless_and_mixed_messages(text, expected):
    assert detect(text, default="fr") == expected


@pytest.mark.parametrize("text", ["", "👍", "???", "R-2026-4821735"])
def test_language_without_evidence_falls_back_to_city_default(text):
    assert detect(text, default="fr") == "fr"
    assert detect(text, default="en") == "en"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("(514) 555-0142", "+15145550142"),
        ("514.555.0142", "+15145550142"),
        ("1-819-555-0177", "+18195550177"),
        ("+1 613 555 0110", "+16135550110"),
        ("+33 1 23 45 67 89", "+33123456789"),
        ("555-0142", None),  # too short to be a number
        ("call me", None),
        ("", None),
    ],
)
def test_phone_numbers_become_e164(raw, expected):
    assert to_e164(raw, "CA") == expected


def test_tracking_codes_have_check_digit_and_survive_sloppy_typing():
    code = new_code("R", 2026)
    assert is_valid(code) and code.startswith("R-2026-") and len(code) == 14
    assert find_codes(f"STATUT {code.lower()}", "R") == [code]
    assert find_codes("statut " + code.replace("-", " "), "R") == [code]
    assert find_codes("status " + code.replace("0", "O"), "R") == [code]  # letter O typed for zero
    wrong_digit = code[:-1] + str((int(code[-1]) + 1) % 10)
    assert not is_valid(wrong_digit) and find_codes(wrong_digit, "R") == []
    swapped = code[:8] + code[9] + code[8] + code[10:]
    if swapped != code and {code[8], code[9]} != {"0", "9"}:  # Luhn's one blind spot: 09 ↔ 90
        assert find_codes(swapped, "R") == []  # adjacent digits swapped: caught
    assert is_valid("R-2026-3900217") and is_valid("R-2026-3090217")  # that blind spot, as documented
    assert spoken("R-2026-4821735") == "R, 2 0 2 6, 4 8 2 1 7 3 5"


def test_codes_are_unique_enough():
    codes = {new_code("R", 2026) for _ in range(2000)}
    assert len(codes) > 1990  # random, not sequential; collisions are retried at creation


def test_text_cleaning_and_folding():
    assert clean("  Bonjour\r\n\r\n\r\n\r\nIl y a\u200b un  trou\x00 ") == "Bonjour\n\nIl y a un trou"
    assert fold("Nid-de-poule sur l'Avenue Saint-Édouard!") == "nid de poule sur l avenue saint edouard"
    assert fold("ŒUVRE") == "oeuvre"


def _message(**contact) -> CitizenMessage:
    return CitizenMessage(channel="api", text="Lampadaire brûlé", contact=Contact(**contact))


def test_same_email_or_phone_is_the_same_citizen_across_channels(runtime):
    def resolve(**contact):
        with runtime.db.session() as session:
            citizen, notes = resolve_citizen(session, normalize(_message(**contact), "fr", "CA", "R"))
            return citizen.id, notes, sorted((c.kind, c.value) for c in citizen.contacts)

    first, _, _ = resolve(email="Marie@Example.org")
    by_email_with_phone, _, points = resolve(email="marie@example.org", phone="514 555 0142")
    by_phone_alone, _, _ = resolve(phone="+1 (514) 555-0142")
    other, _, _ = resolve(email="someone.else@example.org")

    assert first == by_email_with_phone == by_phone_alone
    assert points == [("email", "marie@example.org"), ("phone", "+15145550142")]
    assert other != first


@pytest.mark.sqlite_only  # SQLite's query plan
def test_the_sender_is_looked_up_by_index_not_by_reading_every_contact_point(runtime):
    """Every message's sender is looked up by the values of its contact points: without an
    index on the value alone, SQLite read all of them (37 ms at 500,000, for each batch)."""
    from ..support.plans import plan, statements_of

    with runtime.db.session() as session:
        with statements_of(session.get_bind()) as statements:
            resolve_citizen(session, normalize(_message(email="marie@example.org", phone="514 555 0142"),
                                               "fr", "CA", "R"))
        steps = next(plan(session.connection(), sql, params) for sql, params in statements
                     if "FROM contact_points" in sql)
    assert "SEARCH contact_points USING INDEX ix_contact_points_value (value=?)" in steps, steps
    assert "SCAN contact_points" not in steps, steps


def test_a_citizen_the_pipeline_creates_is_what_the_orm_reads_back(runtime):
    """The pipeline's new citizen (``heard_at``: no ORM object) holds what the database
    holds, and the contact point a Messenger message came from is stamped with its time,
    opening the channel's window for the acknowledgement."""
    at = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)
    message = normalize(CitizenMessage(channel="messenger", text="Lampadaire brûlé", contact=Contact(
        email="Marie@Example.org", messenger_psid="2718281828", name="Marie Tremblay")), "fr", "CA", "R")
    with runtime.db.session() as session:
        new, notes = resolve_citizen(session, message, heard_at=at)
        assert notes == [] and session.get(Citizen, new.id) is not None  # loaded from the database
    with runtime.db.session() as session:
        stored = session.get(Citizen, new.id)
        assert (new.name, new.language, new.consent, new.created_at) == (
            stored.name, stored.language, stored.consent, stored.created_at)
        assert sorted((p.id, p.kind, p.value, p.last_inbound_at) for p in new.contacts) == sorted(
            (p.id, p.kind, p.value, p.last_inbound_at) for p in stored.contacts)
        assert new.contact("messenger").last_inbound_at == at and new.contact("email").last_inbound_at is None
        assert new.contact("email").value == stored.contact("email").value == "marie@example.org"
        again, _ = resolve_citizen(session, message, heard_at=at)  # known now: the ORM's own
        assert again.id == new.id and isinstance(again, Citizen)


def test_anonymous_message_has_no_citizen(runtime):
    with runtime.db.session() as session:
        assert resolve_citizen(session, normalize(_message(), "fr", "CA", "R")) == (None, [])


def test_text_limits_are_the_columns_the_text_is_stored_in():
    """The normalizer cuts text to these lengths; the columns must hold them (PostgreSQL
    refuses a longer value, and the message would fail at every retry)."""
    from gateway.models import Citizen, ContactPoint, Message, Request
    from normalizer.canonical import MAX_CONTACT, TEXT_LIMITS

    assert TEXT_LIMITS == {"name": Citizen.__table__.c.name.type.length,
                           "subject": Request.__table__.c.subject.type.length,
                           "address": Request.__table__.c.address.type.length}
    assert Message.__table__.c.subject.type.length >= TEXT_LIMITS["subject"]
    assert MAX_CONTACT == ContactPoint.__table__.c.value.type.length == Message.__table__.c.external_id.type.length


def test_overlong_text_is_cut_to_fit_and_an_overlong_contact_is_refused():
    from adapters.base import Location
    from adapters.errors import MalformedPayloadError

    message = CitizenMessage(channel="email", text="Nid de poule", subject="Objet " * 100,
                             contact=Contact(name="Marie-Ève " * 30, email="m@example.org"),
                             location=Location(address="12 rue Principale, " * 20))
    normalized = normalize(message, "fr", "CA", "R")
    assert len(normalized.subject) == 300 and len(normalized.name) <= 200 and len(normalized.address) <= 300
    assert normalized.name.endswith("…") and normalized.address.endswith("…")
    assert normalized.subject.endswith("…") and normalized.subject.startswith("Objet Objet")
    assert normalize(CitizenMessage(channel="email", text="Nid", subject="Court"), "fr", "CA", "R").subject == "Court"
    with pytest.raises(MalformedPayloadError, match="longer than 255"):
        normalize(CitizenMessage(channel="telegram", text="Nid", contact=Contact(telegram_chat_id="9" * 300)),
                  "fr", "CA", "R")
    with pytest.raises(MalformedPayloadError, match="id is longer than 255"):
        normalize(CitizenMessage(channel="telegram", text="Nid", external_id="9" * 200 + ":" + "1" * 100), "fr", "CA", "R")
