"""Privacy by department: a department member's inbox, request pages and assignments hold
their own department's requests only (gateway/permissions.py ``scope``, ``may_see``)."""

from __future__ import annotations

from sqlalchemy import select

from gateway.models import User
from tests.support.staff import get_request, make_user, page, post_form, sign_in


def test_department_staff_see_the_address_but_not_the_contacts(client, runtime, seeded):
    sign_in(client, make_user(runtime, "department"))
    detail = page(client, f"/inbox/r/{seeded['light']}")
    assert "22 Maple Avenue" in detail and "john.smith@example.org" not in detail


def test_a_department_member_sees_only_their_department_s_requests(client, runtime, seeded):
    departments = {name: get_request(runtime, code).department for name, code in seeded.items()}
    theirs = departments["water"]
    assert departments["light"] != theirs  # the seeded requests went to two departments at least
    mine = {name for name, department in departments.items() if department == theirs}
    sign_in(client, make_user(runtime, "department", "aqueduc@bellerive.example.org", department=theirs))

    listed = page(client, "/inbox/?lang=en&status=all")
    assert all((seeded[name] in listed) == (name in mine) for name in seeded)
    assert f"{len(mine)} request" in listed and f"All statuses ({len(mine)})" in listed  # counts are theirs too
    assert 'id="f-department"' not in listed and "Requests of your department" in listed
    assert f"/inbox/r/{seeded['light']}" not in page(client, f"/inbox/?q={seeded['light']}")  # another's code: found nowhere
    assert f"/inbox/r/{seeded['water']}" in page(client, f"/inbox/?q={seeded['water']}")
    assert seeded["light"] not in client.get("/inbox/poll?since=0").get_json()["html"]

    assert client.get(f"/inbox/r/{seeded['light']}").status_code == 404  # as if it did not exist
    refused = post_form(client, f"/inbox/r/{seeded['light']}/note", {"text": "vu"}, f"/inbox/r/{seeded['water']}")
    assert refused.status_code == 404
    assert page(client, f"/inbox/r/{seeded['water']}").count(seeded["water"]) > 0
    done = post_form(client, f"/inbox/r/{seeded['water']}/note", {"text": "Équipe en route"},
                     f"/inbox/r/{seeded['water']}")
    assert done.status_code == 303  # their own department's request: they report progress on it


def test_a_request_is_assigned_only_to_someone_who_can_open_it(client, runtime, seeded):
    sign_in(client, make_user(runtime, "agent"))
    water = get_request(runtime, seeded["water"])
    other = next(code for code in ("travaux_publics", "environnement") if code != water.department)
    make_user(runtime, "department", "ailleurs@bellerive.example.org", department=other)
    make_user(runtime, "department", "equipe@bellerive.example.org", department=water.department)
    with runtime.db.session() as db:
        elsewhere, crew = (db.scalar(select(User.id).where(User.email == f"{who}@bellerive.example.org"))
                           for who in ("ailleurs", "equipe"))
    shown = page(client, f"/inbox/r/{seeded['water']}")
    assert f'<option value="{crew}"' in shown and f'<option value="{elsewhere}"' not in shown  # the assignee list
    post_form(client, f"/inbox/r/{seeded['water']}/assign?lang=en", {"user_id": str(elsewhere)},
              f"/inbox/r/{seeded['water']}")
    assert get_request(runtime, seeded["water"]).assigned_to_id is None
    assert "belongs to another department" in page(client, f"/inbox/r/{seeded['water']}?lang=en")


def test_a_department_account_without_a_department_sees_no_request(client, runtime, seeded):
    make_user(runtime, "department", "ancien@bellerive.example.org")
    with runtime.db.session() as db:  # an account made before departments were asked for
        db.scalar(select(User).where(User.email == "ancien@bellerive.example.org")).department = None
    sign_in(client, "ancien@bellerive.example.org")
    listed = page(client, "/inbox/?lang=fr&status=all")
    assert not any(code in listed for code in seeded.values())
    assert "rattaché à aucun service" in listed
    assert client.get(f"/inbox/r/{seeded['water']}").status_code == 404
