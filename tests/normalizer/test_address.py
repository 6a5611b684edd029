"""An address typed on a form, at the counter or through the API becomes a place: the
coordinates and the district of the city's address register, and the address as the register
writes it, so that a request routed by district, counted by area or compared for duplicates
is the same whichever way the address was written."""

from __future__ import annotations

import csv

from sqlalchemy import select

from gateway.models import Request
from tests.conftest import ROOT
from tests.support.staff import submit


def _request(runtime, code: str) -> Request:
    with runtime.db.session() as db:
        return db.scalar(select(Request).where(Request.code == code))


def test_an_address_without_coordinates_gets_the_register_s_place_and_district(runtime):
    code = submit(runtime, {"channel": "walk_in", "description": "Nid-de-poule profond devant chez moi",
                            "location": {"address": "145 Wellington Nord"}, "citizen": {"email": "a@example.org"}})
    request = _request(runtime, code)
    assert request.address == "145, rue Wellington" and request.district == "centre"
    row = next(r for r in csv.DictReader((ROOT / "config" / "addresses.csv").open(encoding="utf-8"))
               if (r["number"], r["street"]) == ("145", "rue Wellington"))
    assert (request.lat, request.lon) == (float(row["lat"]), float(row["lon"]))
    assert request.dedup_cell is not None  # compared by place with the requests around it


def test_two_citizens_writing_one_address_two_ways_report_one_problem(runtime):
    first = submit(runtime, {"channel": "web", "description": "Gros nid-de-poule dans la rue, les autos l'évitent",
                             "location": {"address": "145, rue Wellington"}, "citizen": {"email": "a@example.org"}})
    second = submit(runtime, {"channel": "api", "description": "Gros nid-de-poule dans la rue, les autos l'évitent",
                              "location": {"address": "145 Wellington Street"}, "citizen": {"email": "b@example.org"}})
    duplicate = _request(runtime, second)
    assert duplicate.address == "145, rue Wellington"
    assert duplicate.status == "duplicate" and duplicate.duplicate_of_id == _request(runtime, first).id


def test_a_position_given_is_kept_and_an_unknown_address_stays_as_typed(runtime):
    located = submit(runtime, {"channel": "web", "description": "Lampadaire éteint depuis une semaine",
                               "location": {"address": "145 Wellington", "lat": 45.4721, "lon": -75.6702}})
    unknown = submit(runtime, {"channel": "web", "description": "Lampadaire éteint depuis une semaine",
                               "location": {"address": "7 chemin des Outardes"}})
    assert (_request(runtime, located).lat, _request(runtime, located).address) == (45.4721, "145 Wellington")
    request = _request(runtime, unknown)
    assert (request.lat, request.address, request.district) == (None, "7 chemin des Outardes", None)


def test_an_address_in_the_citizen_s_words_gives_the_place(runtime):
    """An SMS, an e-mail or a voicemail has no address field: the address its words name is
    looked up the same way."""
    code = submit(runtime, {"channel": "web", "citizen": {"email": "c@example.org"},
                            "description": "Bonjour, il y a un gros nid-de-poule devant le 145 rue Wellington Nord, "
                                           "les autos font un écart depuis 3 jours."})
    request = _request(runtime, code)
    assert (request.address, request.district) == ("145, rue Wellington", "centre")
    assert request.lat is not None and request.dedup_cell is not None


def test_a_position_shared_later_replaces_only_the_register_s_place(runtime):
    """A Telegram or Messenger location sent after the report (chat.add_location): it replaces
    a place the register gave, with its district (none outside the districts) and its dedup
    cell; a position the citizen gave with the report stays."""
    from types import SimpleNamespace

    from gateway import chat

    registered = submit(runtime, {"channel": "web", "description": "Nid-de-poule",
                                  "location": {"address": "145 Wellington"}})
    pinned = submit(runtime, {"channel": "web", "description": "Nid-de-poule",
                              "location": {"address": "145 Wellington", "lat": 45.4721, "lon": -75.6702}})
    shared = SimpleNamespace(lat=45.5001, lon=-75.6001, channel="telegram")  # north of every district
    with runtime.db.session() as db:
        for code in (registered, pinned):
            chat.add_location(db, runtime, db.scalar(select(Request).where(Request.code == code)), shared)
    moved, kept = _request(runtime, registered), _request(runtime, pinned)
    assert (moved.lat, moved.lon, moved.district) == (45.5001, -75.6001, None)
    assert moved.dedup_cell is not None and moved.dedup_cell != _request(runtime, submit(runtime, {
        "channel": "web", "description": "x", "location": {"address": "145 Wellington"}})).dedup_cell
    assert (kept.lat, kept.lon, kept.district) == (45.4721, -75.6702, "nord")


def test_a_corner_said_two_ways_by_two_citizens_is_one_place_and_one_problem(runtime):
    """The first citizen names a corner in a sentence (as in an SMS), the second types it in
    the form's address field the other way round: one place, where the two streets cross, in
    its district, and the second report is found to be the first's problem."""
    first = submit(runtime, {"channel": "web", "citizen": {"email": "a@example.org"},
                             "description": "Le feu de circulation est en panne au coin de Wellington et King, "
                                            "les autos passent sur le rouge"})
    second = submit(runtime, {"channel": "web", "citizen": {"email": "b@example.org"},
                              "description": "Feu de circulation en panne, les autos passent sur le rouge",
                              "location": {"address": "King & Wellington"}})
    one, other = _request(runtime, first), _request(runtime, second)
    assert one.address == other.address == "rue King / rue Wellington"
    assert (one.lat, one.lon) == (other.lat, other.lon) and one.district == "centre"
    assert other.status == "duplicate" and other.duplicate_of_id == one.id


def test_the_acknowledgement_reads_the_place_back_for_the_citizen_to_correct(runtime, smtp_server):
    """The citizen who named a corner is told where the city understood it was, and how to
    correct it, in their language."""
    from tests.support.servers import wait_until

    code = submit(runtime, {"channel": "web", "citizen": {"email": "pieton@example.org"}, "language": "fr",
                            "description": "Il manque une plaque d'égout au coin de Wellington et King, c'est dangereux "
                                           "pour les cyclistes"})

    mail = wait_until(lambda: smtp_server.to("pieton@example.org"))
    body = mail[0].get_body(("plain",)).get_content()
    assert code in body and "Lieu : rue King / rue Wellington." in body
