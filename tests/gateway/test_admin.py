"""The administrators' console through HTTP: rules edit / try / apply / roll back, dead
deliveries retried, users and roles."""

from __future__ import annotations

import re
import shutil

import pytest
from sqlalchemy import select

from gateway.models import ConfigVersion, Delivery, Request, User
from tests.conftest import ROOT
from tests.support.servers import wait_until
from tests.support.staff import fixture, get_request, make_user, page, post_form, sign_in, submit

NEW_RULE = """
  - name: nids-de-poule-urgents-centre
    description: Potholes downtown are urgent this week.
    when:
      category: [pothole]
    then:
      priority: urgent
"""


@pytest.fixture
def config_dir(tmp_path):
    copy = tmp_path / "config"
    shutil.copytree(ROOT / "config", copy)
    return copy


@pytest.fixture
def admin_app(make_app, config_dir):
    return make_app(GATEWAY_CONFIG_DIR=str(config_dir))


@pytest.fixture
def admin(admin_app):
    client = admin_app.test_client()
    sign_in(client, make_user(admin_app.extensions["runtime"], "admin"))
    return client


def rules_form(client, text: str, action: str, **extra):
    return post_form(client, "/admin/rules?lang=en", {"file": "rules.yaml", "text": text, "action": action, **extra},
                     "/admin/rules")


def test_a_broken_edit_is_shown_by_line_and_changes_nothing(admin, admin_app, config_dir):
    original = (config_dir / "rules.yaml").read_text()
    broken = original + NEW_RULE.replace("category: [pothole]", "category: [potholes]")

    response = rules_form(admin, broken, "apply")

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    line = broken.splitlines().index("      category: [potholes]") + 1
    assert f"rules.yaml, line {line}" in page and "unknown category &#39;potholes&#39;" in page
    assert (config_dir / "rules.yaml").read_text() == original
    assert "nids-de-poule-urgents-centre" not in [r.name for r in admin_app.extensions["runtime"].rules.current.rules]


def test_yaml_syntax_error_names_the_line(admin, config_dir):
    text = (config_dir / "rules.yaml").read_text() + "  - name: [unclosed\n"
    response = rules_form(admin, text, "validate")
    assert response.status_code == 422
    shown = re.search(r"rules.yaml, line (\d+)", response.get_data(as_text=True))
    assert int(shown.group(1)) in (len(text.splitlines()), len(text.splitlines()) + 1)  # where the parser stopped


def test_apply_reloads_records_who_and_rollback_restores(admin, admin_app, config_dir):
    runtime = admin_app.extensions["runtime"]
    original = (config_dir / "rules.yaml").read_text()

    response = rules_form(admin, original + NEW_RULE, "apply")

    assert response.status_code == 303
    assert "nids-de-poule-urgents-centre" in [r.name for r in runtime.rules.current.rules]
    assert (config_dir / "rules.yaml").read_text().endswith(NEW_RULE)
    with runtime.db.session() as db:
        version = db.scalar(select(ConfigVersion))
        assert (version.author, version.action, version.previous) == ("admin@bellerive.example.org", "apply", original)
    code = submit(runtime, fixture("request__pothole_fr"))
    with runtime.db.session() as db:
        routed = db.scalar(select(Request).where(Request.code == code))
        assert (routed.rule, routed.priority) == ("nids-de-poule-urgents-centre", "urgent")  # in force now

    post_form(admin, "/admin/rules/rollback", {"file": "rules.yaml"}, "/admin/rules")

    assert (config_dir / "rules.yaml").read_text() == original
    assert "nids-de-poule-urgents-centre" not in [r.name for r in runtime.rules.current.rules]


def test_try_a_sentence_against_the_edited_rules(admin, config_dir):
    edited = (config_dir / "rules.yaml").read_text() + NEW_RULE

    page = rules_form(admin, edited, "try", sentence="Un gros nid-de-poule rue King", channel="sms").get_data(as_text=True)

    assert "nids-de-poule-urgents-centre" in page and "Urgent" in page
    assert (config_dir / "rules.yaml").read_text() != edited  # trying changes nothing


def test_a_sentence_tried_naming_a_place_shows_the_place_and_district_a_message_would_get(admin, config_dir):
    text = (config_dir / "rules.yaml").read_text()

    page = rules_form(admin, text, "try", sentence="Trou au coin de Wellington et King", channel="sms").get_data(
        as_text=True)

    assert "rue King / rue Wellington" in page and "Centre-ville" in page
    assert "(category)" not in page  # why no rule applied, in words


def test_rollback_without_history_says_so(admin, config_dir):
    response = post_form(admin, "/admin/rules/rollback?lang=en", {"file": "rules.yaml"}, "/admin/rules")
    assert "No earlier version" in admin.get(response.headers["Location"]).get_data(as_text=True)


def test_console_is_for_administrators_only(admin_app):
    client = admin_app.test_client()
    assert client.get("/admin/rules").status_code == 302
    sign_in(client, make_user(admin_app.extensions["runtime"], "supervisor"))
    for url in ("/admin/rules", "/admin/health", "/admin/users"):
        assert client.get(url).status_code == 403


def test_a_dead_delivery_is_shown_with_its_error_and_retried(admin, admin_app, smtp_server):
    runtime = admin_app.extensions["runtime"]
    smtp_server.reject_with = 550
    submit(runtime, fixture("request__streetlight_en"))
    with runtime.db.session() as db:
        wait_until(lambda: db.scalars(select(Delivery).where(Delivery.state == "dead")).all())

    page = admin.get("/admin/health?lang=en").get_data(as_text=True)
    assert "recipient refused (550)" in page and "Retry all" in page

    smtp_server.reject_with = None
    post_form(admin, "/admin/deliveries/retry-all", {}, "/admin/health")

    with runtime.db.session() as db:
        wait_until(lambda: all(d.state == "delivered" for d in db.scalars(select(Delivery)).all()), timeout=15)
    assert "No dead delivery" in admin.get("/admin/health?lang=en").get_data(as_text=True)


def test_health_shows_a_misconfigured_channel(make_app, config_dir):
    app = make_app(GATEWAY_CONFIG_DIR=str(config_dir), SMTP_HOST="")
    runtime = app.extensions["runtime"]
    client = app.test_client()
    sign_in(client, make_user(runtime, "admin"))
    submit(runtime, fixture("request__streetlight_en"))
    with runtime.db.session() as db:
        wait_until(lambda: db.scalars(select(Delivery).where(Delivery.state == "dead")).all())
    page = client.get("/admin/health?lang=en").get_data(as_text=True)
    assert "Misconfigured" in page and "SMTP_HOST and SMTP_FROM must be set" in page


def _health_row(page: str, kind: str, name: str) -> str:
    rows = re.findall(r'<tr><th scope="row">([a-z0-9_]+)</th>\s*<td>([^<]+)</td>(.*?)</tr>', page, re.S)
    return next(rest for adapter, shown, rest in rows if adapter == name and shown == kind)


def test_health_shows_channels_to_citizens_that_cannot_send(make_app, config_dir):
    """Without Twilio, Messenger or Telegram credentials (the sample city's default), replies
    to citizens cannot go out on those channels: the console says so, and why, instead of
    "OK"; e-mail, which is configured, stays OK."""
    app = make_app(GATEWAY_CONFIG_DIR=str(config_dir), TWILIO_ACCOUNT_SID=None, TWILIO_AUTH_TOKEN=None,
                   MESSENGER_PAGE_TOKEN=None, TELEGRAM_BOT_TOKEN=None)
    client = app.test_client()
    sign_in(client, make_user(app.extensions["runtime"], "admin"))
    page = client.get("/admin/health?lang=en").get_data(as_text=True)
    assert "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set" in _health_row(page, "channel, to citizens", "sms")
    assert "MESSENGER_PAGE_TOKEN is not set" in _health_row(page, "channel, to citizens", "messenger")
    assert "TELEGRAM_BOT_TOKEN is not set" in _health_row(page, "channel, to citizens", "telegram")
    assert all("Misconfigured" in _health_row(page, "channel, to citizens", name)
               for name in ("sms", "messenger", "telegram"))
    assert ">OK<" in _health_row(page, "channel, to citizens", "email")


def test_users_are_added_and_their_role_changed(admin, admin_app):
    runtime = admin_app.extensions["runtime"]
    response = post_form(admin, "/admin/users", {"email": "Nouvel.Agent@bellerive.example.org", "role": "agent",
                                                 "password": "assez long pour passer", "name": "Nouvel"})
    assert response.status_code == 303
    with runtime.db.session() as db:
        created = db.scalar(select(User).where(User.email == "nouvel.agent@bellerive.example.org"))
        assert created.role == "agent" and created.password_hash.startswith("scrypt:")

    post_form(admin, f"/admin/users/{created.id}", {"role": "readonly"}, "/admin/users")  # unchecked: inactive
    with runtime.db.session() as db:
        changed = db.get(User, created.id)
        assert (changed.role, changed.active) == ("readonly", False)


@pytest.mark.parametrize("email, role, password, department, expected", [  # the administrator reads French
    ("x@bellerive.example.org", "agent", "court", "", "au moins 10 caractères"),
    ("x@bellerive.example.org", "wizard", "assez long pour passer", "", "Rôle inconnu : &#39;wizard&#39;"),
    ("admin@bellerive.example.org", "agent", "assez long pour passer", "", "Un compte existe déjà"),
    ("x@bellerive.example.org", "department", "assez long pour passer", "", "doit être rattaché à un service"),
    ("x@bellerive.example.org", "department", "assez long pour passer", "voirie", "Service inconnu : &#39;voirie&#39;"),
])
def test_bad_new_accounts_are_refused(admin, admin_app, email, role, password, department, expected):
    response = post_form(admin, "/admin/users", {"email": email, "role": role, "password": password,
                                                 "department": department})
    assert response.status_code == 400 and expected in response.get_data(as_text=True)
    with admin_app.extensions["runtime"].db.session() as db:
        assert len(db.scalars(select(User)).all()) == 1


def test_a_department_member_s_account_names_their_department(admin, admin_app):
    runtime = admin_app.extensions["runtime"]
    post_form(admin, "/admin/users", {"email": "voirie@bellerive.example.org", "role": "department",
                                      "department": "travaux_publics", "password": "assez long pour passer"},
              "/admin/users")
    post_form(admin, "/admin/users", {"email": "agent@bellerive.example.org", "role": "agent",
                                      "department": "travaux_publics", "password": "assez long pour passer"},
              "/admin/users")
    with runtime.db.session() as db:
        crew, agent = (db.scalar(select(User).where(User.email == email)) for email in
                       ("voirie@bellerive.example.org", "agent@bellerive.example.org"))
        assert (crew.department, agent.department) == ("travaux_publics", None)  # an agent sees every department

    post_form(admin, f"/admin/users/{agent.id}", {"role": "department", "active": "1"}, "/admin/users")
    with runtime.db.session() as db:
        assert db.get(User, agent.id).role == "agent"  # refused: a department member needs a department
    assert "doit être rattaché à un service" in admin.get("/admin/users").get_data(as_text=True)
    post_form(admin, f"/admin/users/{agent.id}", {"role": "department", "active": "1",
                                                  "department": "environnement"}, "/admin/users")
    with runtime.db.session() as db:
        assert (db.get(User, agent.id).role, db.get(User, agent.id).department) == ("department", "environnement")


def test_a_department_member_made_before_departments_existed_is_pointed_out(admin, admin_app):
    """An account of the department role made before members had a department (migration
    0016) sees no request: the users page says so next to it, so the administrator fixes it."""
    runtime = admin_app.extensions["runtime"]
    post_form(admin, "/admin/users", {"email": "voirie@bellerive.example.org", "role": "department",
                                      "department": "travaux_publics", "password": "assez long pour passer"},
              "/admin/users")
    with runtime.db.session() as db:
        crew = db.scalar(select(User).where(User.email == "voirie@bellerive.example.org"))
        before, crew.department = admin.get("/admin/users?lang=fr").get_data(as_text=True), None

    after = admin.get("/admin/users?lang=fr").get_data(as_text=True)

    assert "ce compte ne voit aucune demande" not in before
    assert f'id="no-department-{crew.id}"' in after and "ce compte ne voit aucune demande" in after


def test_an_administrator_cannot_lock_themselves_out(admin, admin_app):
    runtime = admin_app.extensions["runtime"]
    with runtime.db.session() as db:
        me = db.scalar(select(User))
    post_form(admin, f"/admin/users/{me.id}", {"role": "agent", "active": "1"}, "/admin/users")
    with runtime.db.session() as db:
        assert db.get(User, me.id).role == "admin"


def test_an_administrator_adds_a_named_place_from_the_console_and_it_places_requests_at_once(admin, admin_app,
                                                                                              config_dir):
    """places.yaml is edited like the rules: validated with its line, applied, in force."""
    runtime = admin_app.extensions["runtime"]
    assert "places.yaml" in page(admin, "/admin/rules?lang=en") and "7 named places." in page(admin, "/admin/rules?lang=en")
    original = (config_dir / "places.yaml").read_text(encoding="utf-8")
    arena = "  - name: {fr: Aréna du Nord, en: North Arena}\n    lat: 45.4700\n    lon: -75.7000\n"
    refused = post_form(admin, "/admin/rules?lang=en", {"file": "places.yaml", "action": "apply",
                                                        "text": original + arena.replace("45.4700", "145.47")},
                        "/admin/rules")
    assert refused.status_code == 422 and "places.yaml, line" in refused.get_data(as_text=True)

    post_form(admin, "/admin/rules?lang=en", {"file": "places.yaml", "text": original + arena, "action": "apply"},
              "/admin/rules")

    code = submit(runtime, {"channel": "web", "description": "Graffitis sur le mur de l'aréna du Nord",
                            "citizen": {"email": "hockey@example.org"}})
    placed = get_request(runtime, code)
    assert (placed.address, placed.district) == ("Aréna du Nord", "nord")


def test_a_city_without_named_places_starts_them_from_the_console(admin, admin_app, config_dir):
    (config_dir / "places.yaml").unlink()
    admin_app.extensions["runtime"].rules.reload()
    assert page(admin, "/admin/rules?file=places.yaml&lang=en")  # an empty file to start from
    text = "places:\n  - name: {fr: Parc des Cèdres, en: Cedar Park}\n    lat: 45.44\n    lon: -75.72\n"
    post_form(admin, "/admin/rules?lang=en", {"file": "places.yaml", "text": text, "action": "apply"}, "/admin/rules")
    assert (config_dir / "places.yaml").read_text(encoding="utf-8") == text
    assert admin_app.extensions["runtime"].rules.current.addresses.find("parc des cedres").address == "Parc des Cèdres"
