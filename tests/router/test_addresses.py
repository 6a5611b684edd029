"""The city's address register (config/addresses.csv): an address typed or spoken is matched
against it, so that "145 Wellington" and "145, rue Wellington Nord" are one place, with the
coordinates and district the register gives."""

from __future__ import annotations

import pytest

from router import ConfigError, load_rulebook
from tests.conftest import ROOT

from .conftest import SINKS


@pytest.mark.parametrize("typed", [
    "145 Wellington", "145, rue Wellington", "145 rue Wellington Nord", "145 Wellington Street",
    "145, RUE WELLINGTON", "  145 wellington  ",
])
def test_ways_of_writing_one_address_find_one_place(typed):
    book = load_rulebook(ROOT / "config", SINKS)
    place = book.addresses.find(typed)
    assert place is not None and place.address == "145, rue Wellington"
    assert book.areas.locate(place.lat, place.lon).code == "centre"  # its district, from the coordinates


@pytest.mark.parametrize("typed", [
    "Wellington",  # a street alone is not a place
    "9999 rue Wellington",  # a number the street does not have
    "145 rue Inconnue",
    "Parc des Cèdres",
    "",
    None,
])
def test_an_address_the_register_does_not_know_is_left_as_typed(typed):
    assert load_rulebook(ROOT / "config", SINKS).addresses.find(typed) is None


def test_two_streets_of_one_name_are_not_guessed(config_dir):
    with (config_dir / "addresses.csv").open("a", encoding="utf-8") as register:
        register.write("145,avenue Wellington,45.4601,-75.6801\n")  # another street, the same key
    book = load_rulebook(config_dir, SINKS)
    assert book.addresses.find("145 Wellington") is None
    assert book.addresses.find("147 Wellington").address == "147, rue Wellington"  # only one street has 147


def test_a_bad_row_names_its_line_and_column(config_dir):
    path = config_dir / "addresses.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[41] = "12b,rue des Pins,45.43,-75.71"
    lines[42] = "14,rue des Pins,quarante-cinq,-75.71"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_rulebook(config_dir, SINKS)

    found = [(p.file.endswith("addresses.csv"), p.line, p.field) for p in caught.value.problems]
    assert found == [(True, 42, "number"), (True, 43, "lat")]


def test_wrong_columns_are_refused_and_no_register_is_fine(config_dir):
    path = config_dir / "addresses.csv"
    path.write_text("numero,rue,lat,lon\n1,rue King,45.44,-75.73\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="the columns must be number,street,lat,lon"):
        load_rulebook(config_dir, SINKS)
    path.unlink()
    assert len(load_rulebook(config_dir, SINKS).addresses) == 0  # optional: addresses stay as typed


@pytest.mark.parametrize(("text", "expected"), [
    ("Il y a un gros nid-de-poule devant le 145 rue Wellington, les autos l'évitent", "145, rue Wellington"),
    ("Chien qui aboie au 12 rue des Pins toute la nuit", "12, rue des Pins"),
    ("Lampadaire brisé au 60, rue Saint-Jean.", "60, rue Saint-Jean"),
    ("The street light in front of 22 Maple Avenue has been out for a week", "22, avenue Maple"),
    ("Depuis 10:30 il y a de l'eau au 8 rue des Pins", "8, rue des Pins"),
    ("3 nids-de-poule sur la rue King", None),  # a count, not a house number
    ("Rappelez-moi au 819-555-0123, rue Wellington", None),  # a phone number
    ("Il y a 2 semaines que le 145a rue Wellington attend", None),  # not a number of the register
    ("Trou au coin de la rue King et de la rue Principale", None),  # no number: a street is not a place
])
def test_a_sentence_naming_an_address_of_the_register_finds_it(text, expected):
    place = load_rulebook(ROOT / "config", SINKS).addresses.find_in_text(text)
    assert (place.address if place else None) == expected
