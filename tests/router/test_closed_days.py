"""A city is closed on its statutory holidays and its own closing days, whatever the weekday:
an urgent request then also goes to the on-call crew, as at night (rule urgent-hors-heures
of the sample city). Québec's holidays move (Action de grâce, Vendredi saint, Journée
nationale des patriotes): they come from the holidays library, not from a list to keep."""

from __future__ import annotations

from datetime import datetime

import pytest

from router import ConfigError, Facts, decide, load_rulebook
from tests.conftest import ROOT

from .conftest import SINKS


def _decision(book, when: str):
    moment = datetime.fromisoformat(when).replace(tzinfo=book.timezone)
    return decide(book, Facts(text="Le feu de circulation est en panne à l'intersection", language="fr",
                              channel="phone", received_at=moment))


@pytest.mark.parametrize(("when", "closed"), [
    ("2026-06-24T10:00", True),  # Fête nationale, a Wednesday
    ("2026-10-12T10:00", True),  # Action de grâce: the second Monday of October
    ("2026-04-03T10:00", True),  # Vendredi saint
    ("2026-05-18T10:00", True),  # Journée nationale des patriotes
    ("2026-12-24T10:00", True),  # the city's own: "12-24" every year (config/city.yaml)
    ("2027-12-24T10:00", True),
    ("2026-06-23T10:00", False),  # a Tuesday like any other
    ("2026-10-13T10:00", False),
])
def test_on_a_holiday_an_urgent_request_also_goes_to_the_on_call_crew(when, closed):
    book = load_rulebook(ROOT / "config", SINKS)

    decision = _decision(book, when)

    assert decision.after_hours is closed
    on_call = "garde@bellerive.example.org" in [s.get("to") for s in decision.sinks]
    assert on_call is closed and (decision.rule == "urgent-hors-heures") is closed


@pytest.mark.parametrize(("line", "field", "message"), [
    ("    holidays: XX-QC\n", "holidays", "no holidays known for 'XX-QC'"),
    ('    closed: ["02-30"]\n', "closed", "not a day: '02-30'"),
    ('    closed: ["Noël"]\n', "closed", "String should match pattern"),
])
def test_a_wrong_holiday_calendar_or_closing_day_names_its_line(config_dir, line, field, message):
    path = config_dir / "city.yaml"
    text = path.read_text(encoding="utf-8")
    key = line.split(":")[0]
    lines = [row for row in text.splitlines(keepends=True) if not row.startswith(key + ":")]
    at = next(i for i, row in enumerate(lines) if row.startswith("    days:")) + 1
    path.write_text("".join(lines[:at] + [line] + lines[at:]), encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_rulebook(config_dir, SINKS)

    found = [p for p in caught.value.problems if p.file.endswith("city.yaml")]
    assert found and found[0].line == at + 1 and field in found[0].field and message in found[0].message
