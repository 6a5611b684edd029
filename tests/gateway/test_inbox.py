"""The agents' inbox through HTTP: filters, search, pagination, privacy by role, actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from gateway.inbox import queries
from gateway.models import (
    Attachment,
    Delivery,
    Event,
    Follower,
    GivenCode,
    Message,
    Request,
    utcnow,
)
from normalizer.codes import new_code
from tests.support.servers import wait_until
from tests.support.staff import (
    csrf,
    fixture,
    get_request,
    make_user,
    page,
    post_form,
    sign_in,
    submit,
)


@pytest.fixture
def agent(client, runtime):
    email = make_user(runtime, "agent")
    sign_in(client, email)
    return email


def test_inbox_filters_by_channel_priority_and_sla_with_counts(client, seeded, agent):
    everything = page(client, "/inbox/?lang=en")
    assert all(code in everything for code in seeded.values())
    assert "3 requests" in everything

    by_counter = page(client, "/inbox/?channel=walk_in")
    assert seeded["graffiti"] in by_counter and seeded["light"] not in by_counter

    urgent = page(client, "/inbox/?priority=urgent")
    assert seeded["water"] in urgent and seeded["graffiti"] not in urgent
    assert "Urgent (1)" in urgent and "At the counter (1)" in urgent  # counts next to each filter

    assert seeded["water"] not in page(client, "/inbox/?sla=breached")  # due in 2 hours
    assert seeded["water"] in page(client, "/inbox/?sla=due_soon")


def test_inbox_most_urgent_first(client, seeded, agent):
    listing = page(client, "/inbox/?sort=urgent")
    assert listing.index(seeded["water"]) < listing.index(seeded["graffiti"])


def test_search_finds_code_words_street_and_contacts(client, seeded, agent):
    assert seeded["light"] in page(client, f"/inbox/?q={seeded['light'].lower()}")
    found = page(client, "/inbox/?q=Maple")
    assert seeded["light"] in found and seeded["water"] not in found
    found = page(client, "/inbox/?q=mur+communautaire")  # every word must appear
    assert seeded["graffiti"] in found and seeded["light"] not in found
    assert seeded["light"] in page(client, "/inbox/?q=john.smith@example.org")
    found = page(client, "/inbox/?q=819-555-0177")
    assert seeded["water"] in found and seeded["light"] not in found


def test_search_by_a_code_given_for_a_message_that_joined_a_request_finds_that_request(client, runtime, seeded, agent):
    """A citizen on the phone reads the code their second SMS was answered with; that message
    was added to their open request (gateway/tracking.py): the agent finds that request."""
    given = new_code("R", 2026)
    with runtime.db.session() as db:
        light = db.scalar(select(Request).where(Request.code == seeded["light"]))
        db.add(GivenCode(code=given, request_id=light.id))
    found = page(client, f"/inbox/?q={given.lower()}")
    assert seeded["light"] in found and seeded["water"] not in found
    shown = page(client, f"/inbox/r/{seeded['light']}?lang=fr")  # and its page says so
    assert "Aussi connue sous" in shown and given in shown
    typed = client.get(f"/inbox/r/{given}")  # the code typed into the address: that request
    assert typed.status_code == 302 and typed.headers["Location"].endswith(f"/inbox/r/{seeded['light']}")
    assert seeded["light"] not in page(client, f"/inbox/?q={new_code('R', 2026)}")  # another code: nothing


def test_read_only_roles_see_history_but_no_contact_details(client, runtime, seeded):
    sign_in(client, make_user(runtime, "readonly", "ombudsman@bellerive.example.org"))

    detail = page(client, f"/inbox/r/{seeded['light']}?lang=en")

    assert "street light" in detail  # the conversation is readable…
    assert "john.smith@example.org" not in detail  # …not who wrote it
    assert "contact details are hidden" in detail and "hidden for your role" in detail  # nor the address field
    assert seeded["light"] not in page(client, "/inbox/?q=john.smith@example.org")  # no search by contact
    refused = post_form(client, f"/inbox/r/{seeded['light']}/reply", {"text": "Bonjour"}, f"/inbox/r/{seeded['light']}")
    assert refused.status_code == 403


def test_each_listed_request_shows_its_place_and_the_address_only_to_roles_that_see_addresses(client, runtime, seeded):
    sign_in(client, make_user(runtime, "agent"))
    agent_row = _row(page(client, "/inbox/?lang=fr"), seeded["light"])
    sign_in(client, make_user(runtime, "readonly", "ombudsman@bellerive.example.org"))
    readonly_row = _row(page(client, "/inbox/?lang=fr"), seeded["light"])

    assert "Lieu :" in agent_row and "22, avenue Maple · Centre-ville" in agent_row  # the register's place
    assert "Centre-ville" in readonly_row and "22, avenue Maple" not in readonly_row


def walk_every_page(runtime) -> None:
    base = utcnow()
    with runtime.db.session() as db:
        for i in range(23):  # several share a second, so the id breaks ties
            db.add(Request(code=f"R-2026-{i:07d}", channel="web", status="routed",
                           priority=("urgent", "routine", "deferrable")[i % 3],
                           created_at=base - timedelta(seconds=i // 4), description=f"n{i}"))
    with runtime.db.session() as db:
        total = db.scalar(select(func.count(Request.id)))
    for sort in ("newest", "urgent"):
        seen, after = [], ""
        while True:
            filters = queries.Filters.from_args({"sort": sort, "after": after})
            with runtime.db.session() as db:
                result = queries.list_page(db, filters, queries.conditions(filters, None, base, "CA", True), size=5)
                seen += [(r.priority, r.created_at, r.id) for r in result.rows]
            if not result.next_cursor:
                break
            after = result.next_cursor
        assert len(seen) == len(set(seen)) == total
        key = (lambda t: (t[0], t[1], t[2])) if sort == "urgent" else (lambda t: (t[1], t[2]))
        assert seen == sorted(seen, key=key, reverse=True)


def test_keyset_pages_visit_every_request_once_in_both_orders(runtime):
    walk_every_page(runtime)


def test_inbox_on_postgresql(make_app, pg_url):
    app = make_app(DATABASE_URL=pg_url)
    runtime, client = app.extensions["runtime"], app.test_client()
    light = submit(runtime, fixture("request__streetlight_en"))
    water = submit(runtime, fixture("request__water_main_urgent"))
    sign_in(client, make_user(runtime, "agent"))

    assert light in page(client, "/inbox/?q=maple&sort=urgent") and water not in page(client, "/inbox/?q=maple")
    assert water in page(client, "/inbox/?q=819-555-0177&duplicates=&sla=due_soon")
    assert "Urgent (1)" in page(client, "/inbox/?lang=en")
    walk_every_page(runtime)


def test_a_tampered_cursor_shows_the_first_page(client, seeded, agent):
    assert seeded["light"] in page(client, "/inbox/?after=not-a-cursor!!")


def test_poll_returns_only_requests_newer_than_the_page(client, runtime, seeded, agent):
    last = get_request(runtime, seeded["graffiti"]).id
    assert client.get(f"/inbox/poll?since={last}").get_json()["count"] == 0

    newer = submit(runtime, fixture("request__pothole_fr"))

    polled = client.get(f"/inbox/poll?since={last}").get_json()
    assert polled["count"] == 1 and newer in polled["html"]
    assert client.get(f"/inbox/poll?since={last}&channel=walk_in").get_json()["count"] == 0


def test_reply_goes_to_the_citizen_in_their_language_and_joins_the_conversation(client, runtime, seeded, agent, smtp_server):
    code = seeded["light"]
    wait_until(lambda: smtp_server.to("john.smith@example.org"))  # the acknowledgement

    response = post_form(client, f"/inbox/r/{code}/reply", {"text": "A crew is booked for Thursday."}, f"/inbox/r/{code}")

    assert response.status_code == 303
    mail = wait_until(lambda: [m for m in smtp_server.to("john.smith@example.org") if "Thursday" in m.get_body(("plain",)).get_content()])
    assert code in mail[0]["Subject"] and mail[0].get_body(("plain",)).get_content().startswith("Hello")
    with runtime.db.session() as db:
        sent = wait_until(lambda: db.scalars(select(Message).where(Message.author.is_not(None))).all())
        assert sent[0].author == f"agent:{agent}" and sent[0].channel == "email"
    assert "Thursday" in page(client, f"/inbox/r/{code}")


def test_a_ready_made_reply_is_sent_in_the_citizens_language(client, runtime, seeded, agent, smtp_server):
    code = seeded["water"]  # French, phone + e-mail
    post_form(client, f"/inbox/r/{code}/reply", {"template": "reply_need_details", "text": ""}, f"/inbox/r/{code}")
    mail = wait_until(lambda: [m for m in smtp_server.to("voisin.inquiet@example.org") if "précisions" in m["Subject"]])
    assert "l'adresse exacte" in mail[0].get_body(("plain",)).get_content()


def test_the_request_page_says_where_deliveries_go_and_names_ready_made_replies_in_the_agent_s_language(
        client, seeded, agent):
    code = seeded["water"]  # routed to the water department's inbox

    french = page(client, f"/inbox/r/{code}?lang=fr")
    english = page(client, f"/inbox/r/{code}?lang=en")

    assert "aqueduc<wbr>@bellerive.example.org" in french  # config/departments.yaml: eau (a line may break at "@")
    assert ">Demander des précisions (adresse, repère)</option>" in french
    assert ">Ask for details (address, landmark)</option>" in english
    assert "need details</option>" not in french + english


def test_reply_to_an_anonymous_request_is_refused_and_nothing_is_queued(client, runtime, seeded, agent):
    code = seeded["graffiti"]
    response = post_form(client, f"/inbox/r/{code}/reply?lang=en", {"text": "Hello"}, f"/inbox/r/{code}")
    assert "cannot be reached" in page(client, response.headers["Location"])
    with runtime.db.session() as db:
        request_id = db.scalar(select(Request.id).where(Request.code == code))
        assert db.scalars(select(Delivery).where(Delivery.request_id == request_id)).all() != []  # sinks
        assert db.scalars(select(Delivery).where(Delivery.request_id == request_id,
                                                 Delivery.purpose == "notify")).all() == []


def test_status_change_with_note_and_a_forbidden_transition(client, runtime, seeded, agent, smtp_server):
    code = seeded["light"]
    post_form(client, f"/inbox/r/{code}/status", {"status": "resolved", "note": "Bulb replaced"}, f"/inbox/r/{code}")
    assert get_request(runtime, code).status == "resolved"
    wait_until(lambda: [m for m in smtp_server.to("john.smith@example.org") if "Bulb replaced" in m.get_body(("plain",)).get_content()])

    refused = post_form(client, f"/inbox/r/{code}/status?lang=en", {"status": "needs_info"}, f"/inbox/r/{code}")
    assert "not allowed" in page(client, refused.headers["Location"])
    assert get_request(runtime, code).status == "resolved"


def test_reroute_records_the_new_decision_and_sends_to_the_new_department(client, runtime, seeded, agent, smtp_server):
    code = seeded["graffiti"]
    before = get_request(runtime, code)

    post_form(client, f"/inbox/r/{code}/reroute", {"category": "garbage", "department": ""}, f"/inbox/r/{code}")

    after = get_request(runtime, code)
    assert (before.category, after.category) == ("graffiti", "garbage")
    assert after.department != before.department
    with runtime.db.session() as db:
        event = db.scalar(select(Event).where(Event.request_id == after.id, Event.type == "rerouted"))
        assert event.actor == f"agent:{agent}" and event.data["from"]["category"] == "graffiti"
        assert event.data["matched_by"] == "explicit_category"
    department = runtime.rules.current.departments[after.department]
    wait_until(lambda: smtp_server.to(department.sinks[0].settings()["to"]))


def test_link_and_unlink_a_duplicate(client, runtime, agent, monkeypatch):
    first = submit(runtime, fixture("request__pothole_fr"))
    second = submit(runtime, {**fixture("request__pothole_fr"), "citizen": {"email": "autre@example.org"}})
    queued, enqueue = [], runtime.jobs.enqueue
    monkeypatch.setattr(runtime.jobs, "enqueue", lambda job, item: (queued.append((job, item)), enqueue(job, item)))

    post_form(client, f"/inbox/r/{second}/link", {"original": first.lower()}, f"/inbox/r/{second}")

    linked, original = get_request(runtime, second), get_request(runtime, first)
    assert linked.status == "duplicate" and linked.duplicate_of_id == original.id
    with runtime.db.session() as db:
        assert db.scalar(select(Follower.citizen_id).where(Follower.request_id == original.id)) == linked.citizen_id
    assert second in page(client, "/inbox/?duplicates=linked&status=all")
    assert first in page(client, "/inbox/?duplicates=originals")
    assert "+1 signalement" in _row(page(client, "/inbox/?lang=fr"), first)  # seen as reported twice

    post_form(client, f"/inbox/r/{second}/unlink", {}, f"/inbox/r/{second}")
    assert "signalement" not in _row(page(client, "/inbox/?lang=fr"), first)

    unlinked = get_request(runtime, second)
    assert unlinked.status == "routed" and unlinked.duplicate_of_id is None
    with runtime.db.session() as db:  # standing alone, it goes to the department at once, not at the next sweep
        sent = set(db.scalars(select(Delivery.id).where(Delivery.request_id == unlinked.id, Delivery.purpose == "sink")))
    assert sent and sent <= {item for job, item in queued if job == "deliver"}
    assert all(isinstance(item, int) for _, item in queued)  # a job is given ids, never rows
    with runtime.db.session() as db:
        assert db.scalars(select(Follower).where(Follower.request_id == original.id)).all() == []


def _row(listing: str, code: str) -> str:
    return next(row for row in listing.split("<tr")[1:] if f">{code}</a>" in row)


@pytest.mark.parametrize("original", ["self", "R-2026-0000001", ""])
def test_linking_to_itself_or_an_unknown_code_changes_nothing(client, runtime, seeded, agent, original):
    code = seeded["light"]
    target = code if original == "self" else original
    response = post_form(client, f"/inbox/r/{code}/link?lang=en", {"original": target}, f"/inbox/r/{code}")
    assert 'class="alert"' in page(client, response.headers["Location"])
    found = get_request(runtime, code)
    assert found.status == "routed" and found.duplicate_of_id is None


def test_spam_is_rejected_without_writing_to_the_sender(client, runtime, seeded, agent, smtp_server):
    code = seeded["light"]
    wait_until(lambda: smtp_server.to("john.smith@example.org"))
    post_form(client, f"/inbox/r/{code}/spam", {}, f"/inbox/r/{code}")
    assert get_request(runtime, code).status == "rejected"
    with runtime.db.session() as db:
        request_id = db.scalar(select(Request.id).where(Request.code == code))
        notices = db.scalars(select(Delivery).where(Delivery.request_id == request_id, Delivery.purpose == "notify"))
        assert [d.settings["kind"] for d in notices] == ["acknowledgement"]


def test_assign_to_me_and_the_assigned_to_me_filter(client, runtime, seeded, agent):
    code = seeded["water"]
    client.post(f"/inbox/r/{code}/assign", data={"to": "me", "csrf_token": csrf(page(client, f"/inbox/r/{code}"))})
    mine = page(client, "/inbox/?mine=1")
    assert code in mine and seeded["light"] not in mine


def test_internal_note_is_in_the_history_and_not_on_the_public_page(client, runtime, seeded, agent):
    code = seeded["light"]
    post_form(client, f"/inbox/r/{code}/note", {"text": "Neighbour called twice"}, f"/inbox/r/{code}")
    assert "Neighbour called twice" in page(client, f"/inbox/r/{code}")
    assert "Neighbour called twice" not in client.get(f"/track/{code}").get_data(as_text=True)


def test_an_action_without_csrf_token_is_refused(client, runtime, seeded, agent):
    response = client.post(f"/inbox/r/{seeded['light']}/spam")
    assert response.status_code == 400
    assert get_request(runtime, seeded["light"]).status == "routed"


def test_sign_in_is_rate_limited_per_account_and_per_address(client, runtime):
    email, other = make_user(runtime, "agent"), make_user(runtime, "supervisor")
    for _ in range(5):
        assert sign_in(client, email, "wrong password").status_code == 401
    assert sign_in(client, email).status_code == 429  # even the right password waits
    assert sign_in(client, other).status_code == 302  # a colleague behind the same address is not locked out

    for i in range(15):  # guessing many accounts from one address
        sign_in(client, f"guess{i}@bellerive.example.org", "wrong password")
    assert sign_in(client, other).status_code == 429


def test_the_language_chosen_is_kept_with_the_account(client, runtime):
    email = make_user(runtime, "agent")
    sign_in(client, email)
    assert "Boîte de réception" in page(client, "/inbox/?lang=fr")
    page(client, "/inbox/?lang=en")
    client.post("/inbox/logout", data={"csrf_token": csrf(page(client, "/inbox/"))})
    client.cookie_jar.clear() if hasattr(client, "cookie_jar") else client._cookies.clear()

    sign_in(client, email)
    assert "<h1>Inbox</h1>" in page(client, "/inbox/")


def test_attachments_are_served_to_staff_only_from_the_data_folder(client, runtime, seeded, settings, tmp_path):
    folder = tmp_path / "data" / "attachments"
    folder.mkdir(parents=True)
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    request = get_request(runtime, seeded["light"])
    with runtime.db.session() as db:
        message_id = db.scalar(select(Message.id).where(Message.request_id == request.id))
        good = Attachment(request_id=request.id, message_id=message_id, filename="photo.png", content_type="image/png",
                          storage_path="attachments/photo.png")
        bad = Attachment(request_id=request.id, filename="passwd", content_type="text/plain", storage_path="../../etc/passwd")
        db.add_all([good, bad])
        db.flush()
        good_id, bad_id = good.id, bad.id

    assert client.get(f"/inbox/attachments/{good_id}").status_code == 302  # not signed in
    sign_in(client, make_user(runtime, "agent"))
    assert client.get(f"/inbox/attachments/{good_id}").data.startswith(b"\x89PNG")
    assert f'src="/inbox/attachments/{good_id}"' in page(client, f"/inbox/r/{seeded['light']}")
    assert client.get(f"/inbox/attachments/{bad_id}").status_code == 404


def _suggested_pair(client, auth):
    """Two reports of one pothole, worded differently: dedup suggests rather than links."""
    def post(text, email, location):
        return client.post("/api/v1/requests", headers=auth, json={
            "description": text, "citizen": {"email": email}, "location": location}).get_json()["code"]

    first = post("Nid-de-poule profond", "marie.tremblay@example.org", {"lat": 45.4405, "lon": -75.7190})
    second = post("La chaussée est abîmée ici, attention aux vélos", "paul.roy@example.org",
                  {"lat": 45.44055, "lon": -75.71905})
    return first, second


def test_agent_confirms_a_suggested_duplicate_from_the_request_page(client, runtime, auth, agent):
    first, second = _suggested_pair(client, auth)
    assert second in page(client, "/inbox/?duplicates=suggested&lang=en")
    detail = page(client, f"/inbox/r/{second}?lang=en")
    assert "Possible duplicates to check" in detail and first in detail

    post_form(client, f"/inbox/r/{second}/suggestions/{first}/confirm", {}, f"/inbox/r/{second}")

    linked = get_request(runtime, second)
    assert linked.status == "duplicate" and linked.duplicate_of_id == get_request(runtime, first).id
    assert second not in page(client, "/inbox/?duplicates=suggested&status=all&lang=en")
    assert "Possible duplicates to check" not in page(client, f"/inbox/r/{second}?lang=en")


def test_agent_rejects_a_suggested_duplicate_and_the_request_stays_its_own(client, runtime, auth, agent):
    first, second = _suggested_pair(client, auth)

    post_form(client, f"/inbox/r/{second}/suggestions/{first}/reject", {}, f"/inbox/r/{second}")

    alone = get_request(runtime, second)
    assert alone.status == "routed" and alone.duplicate_of_id is None
    again = post_form(client, f"/inbox/r/{second}/suggestions/{first}/reject?lang=en", {}, f"/inbox/r/{second}")
    assert again.status_code == 303  # refused with a message, nothing changed
    assert get_request(runtime, second).status == "routed"
