"""Configuration validation: errors an administrator can act on, and reloads that never break."""

from __future__ import annotations

import time

import pytest

from router import ConfigError, RuleBookHolder, load_rulebook
from tests.conftest import ROOT

from .conftest import SINKS


def edit(path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    later = time.time() + 1
    import os

    os.utime(path, (later, later))  # a new mtime even within the same second


def line_of(path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_sample_city_is_valid_and_complete():
    book = load_rulebook(ROOT / "config", SINKS)
    assert len(book.categories) >= 20
    assert len(book.departments) >= 5
    assert all(d.sinks and d.sinks[0].type == "email_smtp" for d in book.departments.values())
    assert {"centre", "nord", "est", "ouest", "sud"} <= set(book.areas.districts)
    assert all(c.name.fr and c.name.en and c.keywords.fr and c.keywords.en for c in book.categories.values())


def test_wrong_value_names_file_line_and_field(config_dir):
    path = config_dir / "catalogue.yaml"
    edit(path, "sla_hours: 72", "sla_hours: -5")

    with pytest.raises(ConfigError) as caught:
        load_rulebook(config_dir, SINKS)

    problem = caught.value.problems[0]
    assert problem.file.endswith("catalogue.yaml")
    assert problem.line == line_of(path, "sla_hours: -5")
    assert problem.field == "categories[0].sla_hours"
    assert "greater than 0" in problem.message


def test_unknown_department_in_rule_names_its_line(config_dir):
    path = config_dir / "rules.yaml"
    edit(path, "category: danger_public", "category: dragons")

    with pytest.raises(ConfigError) as caught:
        load_rulebook(config_dir, SINKS)

    text = str(caught.value)
    assert f"rules.yaml:{line_of(path, 'category: dragons')}" in text
    assert "unknown category 'dragons'" in text


def test_yaml_syntax_error_names_line(config_dir):
    path = config_dir / "departments.yaml"
    edit(path, "  - code: parcs\n", "  - code: parcs\n   bad: [\n")

    with pytest.raises(ConfigError) as caught:
        load_rulebook(config_dir, SINKS)

    assert "departments.yaml:" in str(caught.value) and "YAML syntax error" in str(caught.value)


def test_unknown_sink_type_is_refused(config_dir):
    edit(config_dir / "departments.yaml", "type: email_smtp, to: parcs@", "type: fax, to: parcs@")

    with pytest.raises(ConfigError, match="unknown sink type 'fax'"):
        load_rulebook(config_dir, SINKS)


def test_broken_edit_keeps_last_good_rules_then_good_edit_applies(config_dir):
    holder = RuleBookHolder(config_dir, SINKS, check_every=0)
    assert holder.current.categories["pothole"].sla_hours == 72

    edit(config_dir / "catalogue.yaml", "sla_hours: 72", "sla_hours: soon")
    assert holder.current.categories["pothole"].sla_hours == 72  # still the last good rules
    assert holder.last_error is not None and "catalogue.yaml" in str(holder.last_error)

    edit(config_dir / "catalogue.yaml", "sla_hours: soon", "sla_hours: 48")
    assert holder.current.categories["pothole"].sla_hours == 48  # reloaded without restart
    assert holder.last_error is None


def test_broken_configuration_at_start_up_stops_with_the_message(config_dir, make_app):
    edit(config_dir / "city.yaml", "triage_department: centre_311", "triage_department: nowhere")

    with pytest.raises(ConfigError, match="city.yaml:.*triage_department.*unknown department 'nowhere'"):
        make_app(GATEWAY_CONFIG_DIR=str(config_dir))
