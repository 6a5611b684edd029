"""The dedup figures on real Boston requests and on the French set written for the tests,
with the thresholds of config/dedup.yaml (docs/dedup.md explains them). They hold the
figures so a change to scoring or settings cannot make them worse silently."""

from __future__ import annotations

import pytest

from dedup import load_dedup_rules

from .replay import (
    ROOT,
    boston_rules,
    load_boston_cached,
    load_french,
    measure,
    replay,
    verified_pairs,
)


@pytest.fixture(scope="module")
def boston():
    records, pairs = list(load_boston_cached()), verified_pairs()
    return records, pairs, measure(records, pairs, boston_rules())


def test_boston_data_is_the_documented_set(boston):
    records, pairs, _ = boston
    assert len(records) == 3540 and len(pairs) == 66
    assert sum(r.duplicate_closed for r in records) == 417


def test_boston_verified_pairs_are_found_at_least_80_percent(boston):
    figures = boston[2]
    assert figures.recall >= 0.80
    assert figures.pairs_linked + figures.pairs_suggested >= 58  # measured: 13 linked + 45 suggested


def test_boston_other_records_wrongly_auto_linked_under_2_percent(boston):
    figures = boston[2]
    assert figures.wrong_link_rate < 0.02
    assert figures.others_wrongly_linked <= 48  # measured: 48 of 3,123


def test_boston_suggestions_shown_to_agents_stay_bounded(boston):
    figures = boston[2]
    assert figures.records_with_suggestions <= 470  # measured: 470 records of 3,540 (13 %)
    assert figures.suggestions <= 594


def test_french_set_finds_every_marked_duplicate_without_false_link():
    records, pairs = load_french()
    figures = measure(records, pairs, load_dedup_rules(ROOT / "config"))
    assert figures.pairs == 15 and figures.recall == 1.0
    assert figures.others_wrongly_linked == 0 and figures.pairs_linked >= 8


def test_french_set_traps_are_not_linked():
    records, _ = load_french()
    outcome = replay(records, load_dedup_rules(ROOT / "config"))
    for trap in ("F04", "F07", "F13", "F16", "F21", "F25", "F31", "F32", "F35", "F39"):
        assert trap not in outcome.linked, trap
    assert outcome.flagged == {"F34"}  # the urgent water main break: linked and flagged
    assert "coordinates (0, 0)" in outcome.decisions["F31"].reasons
    assert "coordinates outside the city" in outcome.decisions["F32"].reasons
    assert "no text: never linked without an agent" in outcome.decisions["F35"].reasons
