"""Dedup end to end through the API: one problem, one request, everyone informed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from dedup.scoring import CrossDecision, Score
from gateway.duplicates import master_for_new
from gateway.models import DedupSuggestion, Follower, Request

from .support.plans import plan, statements_of
from .support.servers import wait_until
from .support.staff import make_user, sign_in

WELLINGTON = {"lat": 45.4405, "lon": -75.7190, "address": "145, rue Wellington"}


def submit(client, auth, description, email=None, phone=None, location=WELLINGTON, channel="api", **extra):
    citizen = {k: v for k, v in (("email", email), ("phone", phone)) if v}
    document = {"channel": channel, "description": description, "citizen": citizen,
                "location": location or {}, **extra}
    response = client.post("/api/v1/requests", json=document, headers=auth)
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def detail(client, auth, code):
    return client.get(f"/api/v1/requests/{code}", headers=auth).get_json()


def test_neighbour_reporting_same_pothole_is_linked_told_and_notified_at_resolution(client, auth, smtp_server):
    first = submit(client, auth, "Gros nid-de-poule devant le 145 rue Wellington, les autos font un écart.",
                   email="marie.tremblay@example.org")
    second = submit(client, auth, "Un gros nid-de-poule devant le 145 Wellington, les autos font un écart !",
                    email="paul.roy@example.org", location={"lat": 45.44052, "lon": -75.71905})

    assert second["status"] == "duplicate" and second["duplicate_of"] == first["code"]
    shown = detail(client, auth, second["code"])
    assert shown["duplicate_of"] == first["code"]
    dedup = next(e for e in shown["events"] if e["type"] == "dedup")["data"]["cross_citizen"]
    assert dedup["action"] == "link" and dedup["master"]["score"] >= 90  # the scores are recorded
    told = wait_until(lambda: smtp_server.to("paul.roy@example.org"))[0]
    assert first["code"] in told["Subject"] and first["code"] in told.get_body(("plain",)).get_content()
    assert "transmise au service responsable" in told.get_body(("plain",)).get_content()  # the master's status

    resolved = client.post(f"/api/v1/requests/{first['code']}/status", json={"status": "resolved"}, headers=auth)
    assert resolved.status_code == 200
    for address in ("marie.tremblay@example.org", "paul.roy@example.org"):
        assert wait_until(lambda a=address: [m for m in smtp_server.to(a) if "résolue" in m["Subject"]])
    department = smtp_server.to("travaux.publics@bellerive.example.org")
    assert len(department) == 1 and first["code"] in department[0]["Subject"]  # handled once


def test_a_duplicate_unmerged_by_an_agent_goes_to_the_department_then(client, auth, smtp_server):
    first = submit(client, auth, "Gros nid-de-poule devant le 145 rue Wellington", email="marie.tremblay@example.org")
    second = submit(client, auth, "Gros nid-de-poule devant le 145 rue Wellington", email="paul.roy@example.org")
    assert second["duplicate_of"] == first["code"]
    wait_until(lambda: smtp_server.to("travaux.publics@bellerive.example.org"))
    assert [first["code"] in m["Subject"] for m in smtp_server.to("travaux.publics@bellerive.example.org")] == [True]

    unmerged = client.delete(f"/api/v1/requests/{second['code']}/duplicate-of", json={"actor": "agent1"}, headers=auth)
    assert unmerged.status_code == 200 and unmerged.get_json()["status"] == "routed"
    sent = wait_until(lambda: [m for m in smtp_server.to("travaux.publics@bellerive.example.org")
                               if second["code"] in m["Subject"]])
    assert len(sent) == 1  # it never went before: it goes now, once
    history = [e["type"] for e in detail(client, auth, second["code"])["events"]]
    assert history.count("duplicate_linked") == 1 and history.count("duplicate_unlinked") == 1


def test_same_citizen_writing_again_on_another_channel_joins_their_request(client, auth):
    first = submit(client, auth, "Le lampadaire devant le 22 rue Principale est éteint depuis trois soirs.",
                   email="lea.gagnon@example.org", phone="514 555-0147",
                   location={"lat": 45.4301, "lon": -75.7205, "address": "22, rue Principale"})
    again = submit(client, auth, "Le lampadaire devant le 22 rue Principale est toujours éteint",
                   phone="(514) 555-0147", channel="phone", location=None)

    assert again["code"] == first["code"]
    shown = detail(client, auth, first["code"])
    assert [m["channel"] for m in shown["messages"] if m["direction"] == "in"] == ["api", "phone"]
    assert any(e["type"] == "dedup_joined" for e in shown["events"])


def test_same_citizen_same_words_at_another_address_is_a_new_request(client, auth):
    first = submit(client, auth, "Nid-de-poule devant chez moi", email="lea.gagnon@example.org")
    other = submit(client, auth, "Nid-de-poule devant chez moi", email="lea.gagnon@example.org",
                   location={"lat": 45.4620, "lon": -75.7190, "address": "610, rue Wellington"})
    assert other["code"] != first["code"] and other["status"] == "routed"


def test_suggested_duplicate_is_confirmed_by_an_agent(client, auth, smtp_server):
    first = submit(client, auth, "Nid-de-poule profond", email="marie.tremblay@example.org")
    second = submit(client, auth, "La chaussée est abîmée ici, attention aux vélos",
                    email="paul.roy@example.org", location={"lat": 45.44055, "lon": -75.71905})

    assert second["status"] == "routed" and second["duplicate_of"] is None
    assert [s["code"] for s in second["suggested_duplicates"]] == [first["code"]]
    pending = client.get("/api/v1/duplicates/suggestions", headers=auth).get_json()["suggestions"]
    assert pending[0]["request"] == second["code"] and pending[0]["scores"]["distance_m"] < 10

    confirmed = client.post(f"/api/v1/requests/{second['code']}/suggestions/{first['code']}/confirm",
                            json={"actor": "agent1"}, headers=auth)
    assert confirmed.status_code == 200
    body = confirmed.get_json()
    assert body["status"] == "duplicate" and body["duplicate_of"] == first["code"]
    assert body["suggested_duplicates"][0]["state"] == "confirmed"
    linked = next(e for e in body["events"] if e["type"] == "duplicate_linked")
    assert linked["actor"] == "agent:agent1" and linked["data"]["scores"]["score"] > 0
    assert wait_until(lambda: [m for m in smtp_server.to("paul.roy@example.org") if first["code"] in m["Subject"]])
    again = client.post(f"/api/v1/requests/{second['code']}/suggestions/{first['code']}/confirm", headers=auth)
    assert again.status_code == 409


def test_rejected_suggestion_leaves_the_request_alone(client, auth):
    first = submit(client, auth, "Nid-de-poule profond", email="marie.tremblay@example.org")
    second = submit(client, auth, "La chaussée est abîmée ici, attention aux vélos",
                    email="paul.roy@example.org", location={"lat": 45.44055, "lon": -75.71905})
    rejected = client.post(f"/api/v1/requests/{second['code']}/suggestions/{first['code']}/reject",
                           json={"actor": "agent1"}, headers=auth).get_json()
    assert rejected["status"] == "routed" and rejected["suggested_duplicates"][0]["state"] == "rejected"
    assert client.get("/api/v1/duplicates/suggestions", headers=auth).get_json()["suggestions"] == []


def test_agent_unmerges_an_automatic_link_and_the_department_gets_the_request(client, auth, smtp_server, runtime):
    first = submit(client, auth, "Gros nid-de-poule devant le 145 rue Wellington", email="marie.tremblay@example.org")
    second = submit(client, auth, "Gros nid-de-poule devant le 145 rue Wellington", email="paul.roy@example.org")
    assert second["status"] == "duplicate"

    undone = client.delete(f"/api/v1/requests/{second['code']}/duplicate-of", json={"actor": "agent1"},
                           headers=auth)
    assert undone.status_code == 200
    assert undone.get_json()["status"] == "routed" and undone.get_json()["duplicate_of"] is None
    assert wait_until(lambda: [m for m in smtp_server.to("travaux.publics@bellerive.example.org")
                               if second["code"] in m["Subject"]])
    with runtime.db.session() as session:
        master = session.scalar(select(Request).where(Request.code == first["code"]))
        assert session.scalars(select(Follower).where(Follower.request_id == master.id)).all() == []
    again = client.delete(f"/api/v1/requests/{second['code']}/duplicate-of", headers=auth)
    assert again.status_code == 409


def test_agent_merges_two_requests_and_followers_move_to_the_master(client, auth):
    a = submit(client, auth, "Graffitis sur le mur de la bibliothèque", email="marie.tremblay@example.org")
    b = submit(client, auth, "Un arbre est tombé sur la clôture du parc", email="paul.roy@example.org",
               location={"lat": 45.4301, "lon": -75.7451})
    merged = client.post(f"/api/v1/requests/{b['code']}/duplicate-of", json={"master": a["code"], "actor": "x"},
                         headers=auth)
    assert merged.status_code == 200 and merged.get_json()["duplicate_of"] == a["code"]
    assert client.post(f"/api/v1/requests/{a['code']}/duplicate-of", json={"master": a["code"]},
                       headers=auth).status_code == 409
    assert client.post(f"/api/v1/requests/{a['code']}/duplicate-of", json={"master": "R-2026-0000000"},
                       headers=auth).status_code == 404


def test_urgent_duplicate_is_linked_flagged_and_still_sent(client, auth, smtp_server):
    text = "Bris d'aqueduc majeur, l'eau jaillit de la chaussée au coin Rideau et King"
    first = submit(client, auth, text, email="marie.tremblay@example.org")
    second = submit(client, auth, text, email="paul.roy@example.org")

    assert first["priority"] == "urgent"
    assert second["status"] == "duplicate" and second["duplicate_of"] == first["code"]
    flag = second["suggested_duplicates"][0]
    assert flag["kind"] == "urgent_link" and flag["state"] == "pending"
    assert wait_until(lambda: [m for m in smtp_server.to("aqueduc@bellerive.example.org")
                               if second["code"] in m["Subject"]])
    kept = client.post(f"/api/v1/requests/{second['code']}/suggestions/{first['code']}/confirm",
                       headers=auth).get_json()
    assert kept["status"] == "duplicate" and kept["suggested_duplicates"][0]["state"] == "confirmed"


def test_split_a_message_that_joined_the_wrong_request(client, auth):
    first = submit(client, auth, "Le lampadaire devant le 22 rue Principale est éteint",
                   email="lea.gagnon@example.org")
    joined = submit(client, auth, "Le lampadaire devant le 22 rue Principale est éteint, aussi la boîte aux lettres du coin est renversée",
                    email="lea.gagnon@example.org")
    assert joined["code"] == first["code"]
    shown = detail(client, auth, first["code"])
    assert len([m for m in shown["messages"] if m["direction"] == "in"]) == 2
    with client.application.extensions["runtime"].db.session() as session:
        request = session.scalar(select(Request).where(Request.code == first["code"]))
        incoming = [m.id for m in request.messages if m.direction == "in"]
        message_id = incoming[-1]
    split = client.post(f"/api/v1/requests/{first['code']}/split", json={"message_id": message_id},
                        headers=auth)
    assert split.status_code == 201
    new_code = split.get_json()["split_into"]
    assert new_code != first["code"]
    assert [m["body"] for m in detail(client, auth, first["code"])["messages"] if m["direction"] == "in"] == [
        "Le lampadaire devant le 22 rue Principale est éteint"]
    assert detail(client, auth, new_code)["messages"][0]["body"].endswith("est renversée")
    first_message = incoming[0]
    assert client.post(f"/api/v1/requests/{first['code']}/split", json={"message_id": first_message},
                       headers=auth).status_code == 409


def test_absurd_or_missing_locations_never_link(client, auth):
    for location in ({"lat": 0.0, "lon": 0.0}, None, {"lat": 48.8566, "lon": 2.3522}):
        a = submit(client, auth, "Gros nid-de-poule, les autos font un écart", location=location)
        b = submit(client, auth, "Gros nid-de-poule, les autos font un écart", location=location)
        assert b["status"] == "routed" and b["duplicate_of"] is None and b["suggested_duplicates"] == []
        reasons = next(e for e in detail(client, auth, b["code"])["events"]
                       if e["type"] == "dedup")["data"]["cross_citizen"]["reasons"]
        assert "no usable location: not compared" in reasons, (location, reasons)
        assert a["code"] != b["code"]


@pytest.mark.sqlite_only  # SQLite's query plan
def test_candidate_query_uses_the_blocking_index(runtime):
    from dedup import Report, current_rules
    from dedup.index import candidates
    from gateway.models import OPEN_STATUSES, utcnow

    book = runtime.rules.current
    rules = current_rules(book.directory, set(book.categories))
    report = Report(created_at=utcnow(), text="nid-de-poule", category="pothole", lat=45.4405, lon=-75.719,
                    address="145, rue Wellington")
    with runtime.db.session() as session:
        with statements_of(session.get_bind()) as statements:
            assert candidates(session, report, rules, OPEN_STATUSES) == []
        plans = [plan(session.connection(), sql, params) for sql, params in statements]
    assert len(plans) == 1  # one round trip
    parts = plans[0].split("UNION ALL")
    # By cells and by street blocks, for potholes (40 m), sidewalks (60 m, related) and the
    # uncategorized (100 m).
    assert len(parts) == 6
    for part, index in zip(parts, ["dedup_cell", "dedup_street"] * 3, strict=True):
        assert f"SEARCH requests USING INDEX ix_requests_{index} (category=? AND {index}=?" in part, part
        assert "SCAN requests" not in part, part
    assert DedupSuggestion.__tablename__ == "dedup_suggestions"


@pytest.mark.sqlite_only  # SQLite's query plan
def test_same_citizen_step_reads_only_the_citizens_requests(runtime):
    """Its query goes through the citizen's index: on one of the citizen alone, SQLite
    preferred (category, status, created_at) and read every open request of the category."""
    from dedup import same_citizen
    from gateway.models import utcnow

    with runtime.db.session() as session:
        with statements_of(session.get_bind()) as statements:
            for category in ("pothole", None):
                assert same_citizen(session, 1, category, "nid-de-poule", utcnow()).action == "new"
        plans = [plan(session.connection(), sql, params) for sql, params in statements]
    assert len(plans) == 2
    for steps in plans:
        assert "SEARCH requests USING INDEX ix_requests_citizen (citizen_id=? AND category=?" in steps, steps


def test_agent_links_a_phone_to_a_requester_then_their_call_joins_the_request(client, auth, runtime):
    first = submit(client, auth, "Le lampadaire devant le 22 rue Principale est éteint depuis trois soirs.",
                   email="lea.gagnon@example.org",
                   location={"lat": 45.4301, "lon": -75.7205, "address": "22, rue Principale"})
    # Before: the same words from an unknown phone are another citizen's request (a duplicate).
    caller = submit(client, auth, "Le lampadaire devant le 22 rue Principale est toujours éteint",
                    phone="514 555-0163", channel="phone", location=None)
    assert caller["code"] != first["code"]

    linked = client.post(f"/api/v1/requests/{first['code']}/contacts",
                         json={"kind": "phone", "value": "(514) 555-0163", "actor": "agent1"}, headers=auth)
    assert linked.status_code == 200
    event = next(e for e in linked.get_json()["events"] if e["type"] == "contact_linked")
    assert event["data"]["merged_citizen"] is not None and not any(form in str(event) for form in ("5550163", "555-0163", "555 0163"))  # no personal data
    again = submit(client, auth, "Le lampadaire devant le 22 rue Principale est encore éteint ce soir",
                   phone="514-555-0163", channel="phone", location=None)
    assert again["code"] in (first["code"], caller["code"])  # theirs now, not a stranger's
    with runtime.db.session() as session:
        owners = {session.scalar(select(Request.citizen_id).where(Request.code == c))
                  for c in (first["code"], caller["code"], again["code"])}
    assert len(owners) == 1
    bad = client.post(f"/api/v1/requests/{first['code']}/contacts", json={"kind": "fax", "value": "1"},
                      headers=auth)
    assert bad.status_code == 400


def test_track_page_of_a_duplicate_points_to_the_master_without_personal_data(client, auth, runtime):
    first = submit(client, auth, "Gros nid-de-poule devant le 145 rue Wellington", email="marie.tremblay@example.org")
    second = submit(client, auth, "Gros nid-de-poule devant le 145 rue Wellington", email="paul.roy@example.org")

    page = client.get(f"/track/{second['code']}?lang=fr")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Suivie sous le numéro" in html and f"/track/{first['code']}" in html
    assert "Liée à une demande sur le même problème" in html
    history = html.split("<ol", 1)[1].split("</ol>", 1)[0]
    # Paul's report never went to a department (Marie's did): his history does not say it did
    assert "Demande reçue" in history and "Transmise au service" not in history and "Changement d'état" not in history
    assert "paul" not in html.lower() and "marie" not in html.lower()
    with runtime.db.session() as session:
        paul = session.scalar(select(Request).where(Request.code == second["code"]))
        assert not [d for d in paul.deliveries if d.purpose == "sink"]
        assert "status_changed" not in [e.type for e in paul.events]

    sign_in(client, make_user(runtime, "agent"))  # the agents' page says it too
    staff = client.get(f"/inbox/r/{second['code']}?lang=fr").get_data(as_text=True)
    assert "Service désigné, non transmise (doublon)" in staff and "Transmise au service responsable" not in staff

    client.post(f"/api/v1/requests/{first['code']}/status", json={"status": "in_progress"}, headers=auth)
    master = client.get(f"/track/{first['code']}?lang=fr").get_data(as_text=True)
    assert "Transmise au service" in master  # Marie's did go
    assert "Changement d'état (Transmise au service → En cours)" in master  # what changed, not just "changed"


def test_rejecting_an_urgent_automatic_link_undoes_it(client, auth):
    text = "Bris d'aqueduc majeur, l'eau jaillit de la chaussée au coin Rideau et King"
    first = submit(client, auth, text, email="marie.tremblay@example.org")
    second = submit(client, auth, text, email="paul.roy@example.org")
    assert second["status"] == "duplicate"

    rejected = client.post(f"/api/v1/requests/{second['code']}/suggestions/{first['code']}/reject",
                           json={"actor": "agent1"}, headers=auth).get_json()
    assert rejected["status"] == "routed" and rejected["duplicate_of"] is None
    assert rejected["suggested_duplicates"][0]["state"] == "rejected"
    types = [e["type"] for e in rejected["events"]]
    assert "duplicate_rejected" in types and "duplicate_unlinked" in types


def test_merging_a_master_moves_its_duplicates_and_followers(client, auth, runtime):
    a = submit(client, auth, "Gros nid-de-poule devant le 145 rue Wellington", email="marie.tremblay@example.org")
    a_dup = submit(client, auth, "Gros nid-de-poule devant le 145 rue Wellington", email="paul.roy@example.org")
    b = submit(client, auth, "Chaussée défoncée, énorme trou au coin de la rue", email="lea.gagnon@example.org",
               location={"lat": 45.4420, "lon": -75.7190})
    assert a_dup["duplicate_of"] == a["code"] and b["duplicate_of"] is None

    merged = client.post(f"/api/v1/requests/{a['code']}/duplicate-of", json={"master": b["code"]}, headers=auth)
    assert merged.status_code == 200 and merged.get_json()["duplicate_of"] == b["code"]
    assert detail(client, auth, a_dup["code"])["duplicate_of"] == b["code"]
    with runtime.db.session() as session:
        master = session.scalar(select(Request).where(Request.code == b["code"]))
        followers = session.scalars(select(Follower.citizen_id).where(Follower.request_id == master.id)).all()
        requesters = {session.scalar(select(Request.citizen_id).where(Request.code == c)) for c in (a["code"], a_dup["code"])}
    assert set(followers) == requesters


def test_a_request_born_a_duplicate_gets_the_master_of_its_match_and_none_when_that_closed(client, auth, runtime):
    """The pipeline reads the master a new request is born a duplicate of inside its
    transaction: the request dedup matched, or its master when an agent merged it meanwhile,
    or none when it is resolved (the new request then stands on its own)."""
    a = submit(client, auth, "Graffitis sur le mur de la bibliothèque", email="marie.tremblay@example.org")
    b = submit(client, auth, "Un arbre est tombé sur la clôture du parc", email="paul.roy@example.org",
               location={"lat": 45.4301, "lon": -75.7451})
    c = submit(client, auth, "Lampadaire éteint au coin de la rue", email="lea.gagnon@example.org",
               location={"lat": 45.4501, "lon": -75.7051})
    assert client.post(f"/api/v1/requests/{b['code']}/duplicate-of", json={"master": a["code"]},
                       headers=auth).status_code == 200
    assert client.post(f"/api/v1/requests/{c['code']}/status", json={"status": "resolved"},
                       headers=auth).status_code == 200

    def master(code, flagged=False):
        with runtime.db.session() as session:
            found = session.scalar(select(Request.id).where(Request.code == code))
            decision = CrossDecision("link", Score(found, code, 95.0, 1.0, 1.0, 1.0, 0.0), flagged=flagged)
            chosen = master_for_new(session, decision)
            return None if chosen is None else (chosen.code, chosen.status)

    assert master(a["code"]) == (a["code"], "routed")
    assert master(b["code"]) == (a["code"], "routed")  # merged meanwhile: its master
    assert master(c["code"]) is None  # resolved: the new request stands on its own
    assert master(a["code"], flagged=True) is None  # urgent: routed first, linked afterwards
