"""The pure dedup step: text, places, scores and decisions, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dedup import Report, decide, load_dedup_rules
from dedup.geo import (
    address_distance_m,
    cell_of,
    cells_around,
    distance_m,
    parse_address,
    usable_point,
)
from dedup.text import prepare, similarity
from router.yamlfile import ConfigError

ROOT = Path(__file__).resolve().parents[2]
RULES = load_dedup_rules(ROOT / "config")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WELLINGTON = (45.4405, -75.7190)


def report(text="Gros nid-de-poule devant le 145 rue Wellington", category="pothole", at=T0,
           where=WELLINGTON, address=None, language="fr", id=None, priority="routine") -> Report:
    lat, lon = where if where else (None, None)
    return Report(created_at=at, text=text, category=category, lat=lat, lon=lon, address=address,
                  language=language, id=id, code=f"R-{id}" if id else None, priority=priority)


@pytest.mark.parametrize("text, expected", [
    ("Nid-de-poule sur l'Avenue Saint-Édouard!", "nid poule avenue saint edouard"),
    ("Make of the abandoned car: HONDA | Color of the abandoned car: GREY", "honda grey"),
    ("How is the car parked illegally? Other | Details: Suv", "suv"),
    ("", ""),
    (None, ""),
])
def test_prepare_folds_and_drops_stop_words_and_form_labels(text, expected):
    assert prepare(text) == expected


def test_similarity_of_reworded_reports_is_high_and_of_other_problems_low():
    same = similarity(prepare("Large truck blocking street, illegally parked"),
                      prepare("Moving truck parked illegally, blocking the street"))
    other = similarity(prepare("Loud party music all night"), prepare("Car blocking my driveway"))
    assert same > 0.7 and other < 0.5
    assert similarity("", prepare("anything")) is None


def test_a_single_shared_word_is_weak_evidence():
    assert similarity(prepare("car"), prepare("abandoned car with flat tires since March")) < 0.6


@pytest.mark.parametrize("a, b, metres", [
    ("108 Myrtle St Beacon Hill", "106 Myrtle Street", 10.0),
    ("145, rue Wellington Nord", "145 Wellington", 0.0),
    ("12 rue Saint-Jean", "30, rue St-Jean", 90.0),
    ("108 Myrtle St", "108 Pinckney St", None),
    ("Intersection of Myrtle St & Grove St", "108 Myrtle St", None),
])
def test_addresses_on_one_street_have_a_distance(a, b, metres):
    assert address_distance_m(a, b) == metres


def test_unreadable_addresses_give_no_street():
    assert parse_address("") is None and parse_address("   ") is None and parse_address("12") is None


def test_cells_around_cover_the_radius():
    lat, lon = WELLINGTON
    # A point 95 m east and 95 m north is in one of the cells searched for a 100 m radius.
    north_east = (lat + 95 / 111_195, lon + 95 / (111_195 * 0.7015))
    assert 90 < distance_m(lat, lon, *north_east) < 140
    assert cell_of(*north_east) in cells_around(lat, lon, 100)
    assert len(cells_around(lat, lon, 400)) > len(cells_around(lat, lon, 40))


@pytest.mark.parametrize("lat, lon, reason", [
    (None, None, "no coordinates"),
    (0.0, 0.0, "coordinates (0, 0)"),
    (48.85, 2.35, "coordinates outside the city"),
    (45.44, -75.72, None),
])
def test_absurd_coordinates_are_not_used(lat, lon, reason):
    assert usable_point(lat, lon, RULES.bounds) == reason


def test_second_report_of_the_same_pothole_is_linked():
    first = report(id=1)
    second = report("Un gros nid-de-poule devant le 145 Wellington, dangereux pour les vélos",
                    at=T0 + timedelta(hours=3), where=(45.44052, -75.71905))
    decision = decide(second, [first], RULES)
    assert decision.action == "link" and decision.master.code == "R-1"
    assert decision.master.distance_m < 10 and not decision.flagged
    assert decision.master.as_dict()["score"] >= RULES.thresholds.auto_link


def test_reworded_report_of_the_same_pothole_is_at_least_suggested():
    reworded = report("Il y a un trou énorme dans la chaussée devant le 145 Wellington, nid de poule",
                      at=T0 + timedelta(hours=3), where=(45.44052, -75.71905))
    assert decide(reworded, [report(id=1)], RULES).action in ("link", "suggest")


def test_same_words_on_another_street_are_not_linked():
    far = report(where=(45.4470, -75.7190), id=1)  # ~700 m north
    assert decide(report(at=T0 + timedelta(hours=1)), [far], RULES).action == "new"


def test_streetlight_radius_is_a_point_snow_removal_covers_a_street():
    lat, lon = WELLINGTON
    east_150m = (lat, lon + 150 / (111_195 * 0.7015))
    light = report("Le lampadaire est éteint", "streetlight", id=1)
    snow = report("La rue n'est pas déneigée", "snow_removal", id=2)
    later = T0 + timedelta(hours=2)
    assert decide(report("Lampadaire éteint", "streetlight", at=later, where=east_150m), [light], RULES).action == "new"
    assert decide(report("Rue pas déneigée", "snow_removal", at=later, where=east_150m), [snow], RULES).action != "new"


def test_reports_outside_the_window_are_not_compared():
    old = report(category="noise", text="Musique forte toute la nuit", id=1)
    assert decide(report(category="noise", text="Musique forte toute la nuit", at=T0 + timedelta(days=2)),
                  [old], RULES).action == "new"


def test_related_categories_are_compared():
    abandoned = report("Voiture abandonnée depuis trois semaines, pneus crevés", "abandoned_vehicle", id=1)
    parking = report("Voiture abandonnée depuis des semaines, pneus crevés", "parking", at=T0 + timedelta(hours=5))
    assert decide(parking, [abandoned], RULES).action == "link"
    unrelated = report("Voiture abandonnée depuis des semaines", "graffiti", at=T0 + timedelta(hours=5))
    assert decide(unrelated, [abandoned], RULES).action == "new"


def test_between_the_thresholds_agents_get_a_suggestion():
    first = report("Nid-de-poule profond", id=1)
    second = report("La chaussée est abîmée ici, attention aux vélos", at=T0 + timedelta(days=3),
                    where=(45.44055, -75.71905))
    decision = decide(second, [first], RULES)
    assert decision.action == "suggest"
    assert [s.code for s in decision.suggestions] == ["R-1"]
    assert RULES.thresholds.suggest <= decision.suggestions[0].total < RULES.thresholds.auto_link


def test_urgent_requests_are_linked_and_flagged():
    first = report("Bris d'aqueduc, l'eau jaillit de la rue", "water_main_break", id=1, priority="urgent")
    second = report("Bris d'aqueduc : l'eau jaillit dans la rue", "water_main_break",
                    at=T0 + timedelta(minutes=20), priority="urgent")
    decision = decide(second, [first], RULES)
    assert decision.action == "link" and decision.flagged
    assert "urgent" in " ".join(decision.reasons)


# Bad input: no crash, no false link, a recorded reason.
def test_no_location_at_all_is_not_compared():
    decision = decide(report(where=None), [report(id=1)], RULES)
    assert decision.action == "new" and "no usable location: not compared" in decision.reasons


@pytest.mark.parametrize("where, reason", [((0.0, 0.0), "coordinates (0, 0)"),
                                           ((48.85, 2.35), "coordinates outside the city")])
def test_absurd_coordinates_never_link(where, reason):
    twin = report(where=where, id=1)
    decision = decide(report(where=where, at=T0 + timedelta(minutes=5)), [twin], RULES)
    assert decision.action == "new" and reason in decision.reasons


def test_absurd_coordinates_fall_back_to_the_address():
    first = report(address="145, rue Wellington", id=1)
    second = report(where=(0.0, 0.0), address="145 Wellington", at=T0 + timedelta(hours=1))
    decision = decide(second, [first], RULES)
    assert decision.action == "link" and "compared by address" in decision.master.notes


def test_photo_without_text_is_suggested_never_linked():
    decision = decide(report(text="", at=T0 + timedelta(minutes=5)), [report(id=1)], RULES)
    assert decision.action in ("suggest", "new")
    assert "no text: never linked without an agent" in decision.reasons


def test_another_language_is_never_linked_automatically():
    first = report("Pothole in front of 145 Wellington", language="en", id=1)
    second = report("Pothole in front of 145 Wellington", language="fr", at=T0 + timedelta(minutes=5))
    decision = decide(second, [first], RULES)
    assert decision.action == "suggest"
    assert "languages differ" in decision.suggestions[0].notes


def test_text_in_an_unsupported_language_does_not_crash_or_link_to_other_words():
    first = report("Bache gigante en la calle frente al numero 145", language="fr", id=1)
    second = report("Das Licht ist kaputt", language="fr", at=T0 + timedelta(minutes=5))
    assert decide(second, [first], RULES).action != "link"


def test_broken_dedup_file_names_file_line_and_field(tmp_path):
    (tmp_path / "dedup.yaml").write_text("dedup:\n  thresholds:\n    auto_link: 50\n    suggest: 70\n"
                                         "  categories:\n    potholes: {radius_m: 40, window_days: 3}\n")
    with pytest.raises(ConfigError) as error:
        load_dedup_rules(tmp_path)
    assert "dedup.yaml:2" in str(error.value) and "suggest must not be above auto_link" in str(error.value)
    (tmp_path / "dedup.yaml").write_text("dedup:\n  categories:\n    potholes: {radius_m: 40, window_days: 3}\n")
    with pytest.raises(ConfigError) as error:
        load_dedup_rules(tmp_path, {"pothole"})
    assert "dedup.yaml:3" in str(error.value) and "unknown category 'potholes'" in str(error.value)


def test_sample_city_dedup_file_names_only_catalogue_categories():
    from router.loader import load_rulebook

    book = load_rulebook(ROOT / "config")
    load_dedup_rules(ROOT / "config", set(book.categories))


def test_edited_dedup_file_is_reloaded_and_a_broken_edit_keeps_the_last_good(tmp_path, caplog):
    import os

    from dedup import current_rules

    path = tmp_path / "dedup.yaml"
    path.write_text("dedup:\n  thresholds: {auto_link: 85, suggest: 50}\n")
    assert current_rules(tmp_path).thresholds.auto_link == 85
    path.write_text("dedup:\n  thresholds: {auto_link: 95, suggest: 50}\n")
    os.utime(path, ns=(1, 10**18))  # a new modification time, whatever the clock's resolution
    assert current_rules(tmp_path).thresholds.auto_link == 95
    path.write_text("dedup:\n  thresholds: {auto_link: high}\n")
    os.utime(path, ns=(1, 2 * 10**18))
    assert current_rules(tmp_path).thresholds.auto_link == 95
    assert "dedup.yaml" in caplog.text and "last good" in caplog.text


@pytest.mark.parametrize("radius", [40, 100, 150, 400])
def test_the_cells_searched_hold_every_point_of_the_radius_box_and_no_more(radius):
    """``cells_in_box``: every point inside the radius' box (edges and corners included,
    on a grid over the box) is filed under one of them, and every one of them is within
    the cells ``cells_around`` gives; for a radius under half a cell's size, at most 4.
    Padded to the length ``cells_around`` gives, it names the same cells."""
    from dedup.geo import cells_in_box
    from dedup.index import _box

    for lat, lon in (WELLINGTON, (45.4200, -75.7000), (45.5199, -75.5801), (45.4396, -75.7200)):
        south, north, west, east = _box(lat, lon, radius)
        cells = cells_in_box(south, north, west, east)
        steps = [i / 20 for i in range(21)]
        filed = {cell_of(south + (north - south) * a, west + (east - west) * b) for a in steps for b in steps}
        assert filed == set(cells)
        assert set(cells) <= set(cells_around(lat, lon, radius))
        assert radius >= 75 or len(cells) <= 4
        padded = cells_in_box(south, north, west, east, size=len(cells_around(lat, lon, radius)))
        assert set(padded) == set(cells) and len(padded) == len(cells_around(lat, lon, radius))


def test_what_a_category_compares_with_follows_the_settings_of_a_copy():
    """Worked out once per category, and again for settings copied with a change: a city
    that relates two categories sees them compared from its next request."""
    assert RULES.comparable("pothole") == RULES.comparable("pothole")
    assert "snow_removal" not in RULES.comparable("pothole")
    related = RULES.model_copy(update={"related": [*RULES.related, ["pothole", "snow_removal"]]})
    assert "snow_removal" in related.comparable("pothole")
    assert "snow_removal" in related.comparable_set("pothole")
    assert "snow_removal" not in RULES.comparable_set("pothole")
