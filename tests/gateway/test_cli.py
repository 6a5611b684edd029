"""The `gateway` command line, as an administrator uses it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import httpx
from alembic import command
from click.testing import CliRunner

from gateway.cli import main
from gateway.db import alembic_config
from tests.conftest import API_TOKEN, ROOT
from tests.support.servers import free_port, wait_until


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_rules_check_accepts_the_sample_city():
    result = run("rules", "check", str(ROOT / "config"))
    assert result.exit_code == 0
    assert result.output == ("OK: 28 categories, 10 departments, 4 rules, 5 districts, 4,750 addresses, "
                             "7 named places\n")


def test_rules_check_reports_file_line_field_and_fails(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    text = (config / "rules.yaml").read_text()
    (config / "rules.yaml").write_text(text.replace("priority: urgent", "priority: whenever", 1))

    result = CliRunner().invoke(main, ["rules", "check", str(config)])

    assert result.exit_code == 1
    assert "rules.yaml:" in result.output and "rules[0].then.priority" in result.output


def test_rules_test_prints_the_decision_and_the_rule_as_json():
    result = run("rules", "test", "Ça sent le gaz très fort devant l'école", "--lat", "45.44", "--lon", "-75.72")

    decision = json.loads(result.output)
    assert decision["category"] == "danger_public"
    assert decision["rule"] == "danger-gaz-fils"
    assert decision["priority"] == "urgent"
    assert decision["department"] == "securite_civile"
    assert decision["district"] == "centre"
    assert decision["sla"] == "1 h"
    assert decision["sinks"][0]["to"] == "securite.civile@bellerive.example.org"
    assert decision["language"] == "fr"


def test_rules_test_locates_the_place_the_sentence_names_as_the_pipeline_does():
    """Without --lat/--lon, the address register places a house or a corner named in the
    text (or given with --address): the district and the rules that depend on it are those
    a real message would get."""
    corner = json.loads(run("rules", "test", "Feu de circulation en panne au coin de Wellington et King").output)
    house = json.loads(run("rules", "test", "Nid-de-poule", "--address", "145 Wellington").output)
    nowhere = json.loads(run("rules", "test", "Nid-de-poule rue des Outardes").output)

    assert (corner["place"], corner["district"]) == ("rue King / rue Wellington", "centre")
    assert (house["place"], house["district"]) == ("145, rue Wellington", "centre")
    assert "place" not in nowhere and nowhere["district"] is None


def test_rules_test_after_hours_rule_depends_on_the_time():
    night = run("rules", "test", "water main break on Elm street", "--at", "2026-11-21T02:00:00")
    day = run("rules", "test", "water main break on Elm street", "--at", "2026-11-23T10:00:00")

    assert json.loads(night.output)["after_hours"] is True
    assert json.loads(day.output)["after_hours"] is False


def test_user_add_reads_password_from_stdin(settings):
    env = {k: str(v) for k, v in settings.items() if v is not None}
    result = CliRunner().invoke(main, ["user", "add", "agent@bellerive.example.org", "--role", "agent",
                                       "--password-stdin"], input="correct horse battery\n", env=env)
    assert result.exit_code == 0, result.output
    again = CliRunner().invoke(main, ["user", "add", "agent@bellerive.example.org", "--role", "agent",
                                      "--password-stdin"], input="correct horse battery\n", env=env)
    assert again.exit_code != 0 and "already exists" in again.output
    bad_role = CliRunner().invoke(main, ["user", "add", "x@bellerive.example.org", "--role", "mayor",
                                         "--password-stdin"], input="correct horse battery\n", env=env)
    assert bad_role.exit_code != 0 and "Unknown role 'mayor'" in bad_role.output
    nowhere = CliRunner().invoke(main, ["user", "add", "voirie@bellerive.example.org", "--role", "department",
                                        "--password-stdin"], input="correct horse battery\n", env=env)
    assert nowhere.exit_code != 0 and "needs a department (one of: " in nowhere.output
    crew = CliRunner().invoke(main, ["user", "add", "voirie@bellerive.example.org", "--role", "department",
                                     "--department", "travaux_publics", "--password-stdin"],
                              input="correct horse battery\n", env=env)
    assert crew.exit_code == 0, crew.output


def test_data_commands_on_a_database_without_this_version_s_schema_say_what_to_run(settings, tmp_path):
    env = {k: str(v) for k, v in settings.items() if v is not None}
    empty = {**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}  # `make run` never started
    add = ["user", "add", "agent@bellerive.example.org", "--role", "agent", "--password-stdin"]

    result = CliRunner().invoke(main, add, input="correct horse battery\n", env=empty)

    assert result.exit_code != 0 and "has no tables yet: run `gateway db upgrade` first" in result.output
    assert "Traceback" not in result.output
    command.downgrade(alembic_config(env["DATABASE_URL"]), "0013_contact_point_value")  # an older version's
    for args in (add, ["deliveries", "dead"]):
        behind = CliRunner().invoke(main, args, input="correct horse battery\n", env=env)
        assert behind.exit_code != 0 and "is at migration 0013_contact_point_value" in behind.output
    assert run("db", "upgrade", env=env).exit_code == 0
    assert CliRunner().invoke(main, add, input="correct horse battery\n", env=env).exit_code == 0


def test_serve_migrates_a_new_database_and_answers_over_gunicorn(tmp_path, smtp_server):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}", "GATEWAY_API_TOKEN": API_TOKEN,
           "SMTP_PORT": str(smtp_server.port), "GATEWAY_DATA_DIR": str(tmp_path)}
    server = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--workers", "1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(base + "/healthz"), timeout=30)
        created = httpx.post(f"{base}/api/v1/requests", headers={"Authorization": f"Bearer {API_TOKEN}"},
                             json={"description": "Déneigement: ma rue n'a pas été déblayée",
                                   "citizen": {"email": "neige@example.org"}})
        assert created.status_code == 201
        assert created.json()["category"] == "snow_removal"
        wait_until(lambda: smtp_server.to("neige@example.org"), timeout=15)
        assert httpx.get(f"{base}/track/{created.json()['code']}").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=15)


def test_serve_without_a_secret_key_shares_one_key_between_its_workers(tmp_path, smtp_server):
    """`make run` sets no GATEWAY_SECRET_KEY: a citizen's /report form, served by one gunicorn
    worker and posted to the other, must still pass its CSRF check."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "GATEWAY_SECRET_KEY"}
    env.update({"DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}", "SMTP_PORT": str(smtp_server.port),
                "GATEWAY_DATA_DIR": str(tmp_path)})
    server = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--workers", "2"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(base + "/healthz"), timeout=30)
        answers = []
        for i in range(12):
            with httpx.Client(headers={"Connection": "close"}) as browser:  # a new connection each time
                page = browser.get(f"{base}/report").text
                token = page.split('name="csrf_token"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
                sent = browser.post(f"{base}/report", data={
                    "csrf_token": token, "email": f"voisin{i}@example.org",
                    "description": f"Lampadaire {i} éteint devant le 12 rue Principale depuis trois soirs"})
                answers.append((sent.status_code, sent.headers.get("location", "")))
        assert all(status == 303 for status, _ in answers), answers
        assert all("/track/R-" in location for _, location in answers)
    finally:
        server.terminate()
        server.wait(timeout=15)


def test_serve_refuses_to_start_on_a_broken_configuration(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    (config / "catalogue.yaml").write_text("categories: [\n")
    env = {**os.environ, "GATEWAY_CONFIG_DIR": str(config), "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}

    done = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--port", str(free_port())],
                          env=env, capture_output=True, text=True, timeout=60)

    assert done.returncode != 0
    assert "catalogue.yaml:" in done.stderr and "YAML syntax error" in done.stderr


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
