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
    ("Trou au coin de la rue King et de la rue Principale", None),  # two streets that never meet
])
def test_a_sentence_naming_an_address_of_the_register_finds_it(text, expected):
    place = load_rulebook(ROOT / "config", SINKS).addresses.find_in_text(text)
    assert (place.address if place else None) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Feu de circulation en panne au coin de Wellington et King depuis ce matin", "rue King / rue Wellington"),
    ("Trou au coin de la rue King et de la rue Wellington.", "rue King / rue Wellington"),
    ("À l'angle des rues Saint-Jean et Wellington, le panneau d'arrêt est tombé", "rue Saint-Jean / rue Wellington"),
    ("Pothole at the corner of Wellington Street and Maple Ave, near the bank", "avenue Maple / rue Wellington"),
    ("Intersection Wellington / Champlain : la glace n'a pas été enlevée", "rue Champlain / rue Wellington"),
    ("Huge pothole at Wellington and King, cars swerve", "rue King / rue Wellington"),
    ("Feu brisé Wellington/King depuis hier", "rue King / rue Wellington"),
    ("Trou sur King près de Wellington / Champlain", "rue Champlain / rue Wellington"),  # the street next to "/"
    ("Wellington et King sont fermées à cause de la neige", None),  # "et" alone: maybe two places
    ("Ouvert 24/7 sur la rue King", None),
    ("Un angle mort au bout de la rue King", None),  # a corner, but not of two streets
    ("Coin King et Champlain : déneigement", None),  # side by side: they never meet (below)
    ("Coin Wellington et des Outardes", None),  # a street the register does not know
    ("Nid-de-poule devant le 145 rue Wellington, près du coin de King", "145, rue Wellington"),  # the house first
])
def test_a_sentence_naming_a_corner_of_two_streets_finds_where_they_meet(text, expected):
    """A citizen often gives a corner, not a house: where the register's two streets cross."""
    book = load_rulebook(ROOT / "config", SINKS)
    place = book.addresses.find_in_text(text)
    assert (place.address if place else None) == expected
    if place is not None and "/" in place.address:
        assert (place.lat, place.lon) == pytest.approx((45.44, -75.72), abs=0.01)
        assert book.areas.locate(place.lat, place.lon).code == "centre"


@pytest.mark.parametrize("typed", ["Wellington & King", "King et Wellington", "coin Wellington/King",
                                   "rue King and rue Wellington"])
def test_an_address_field_holding_two_streets_is_their_corner(typed):
    place = load_rulebook(ROOT / "config", SINKS).addresses.find(typed)
    assert place is not None and place.address == "rue King / rue Wellington"
    assert place.lat == pytest.approx(45.445, abs=0.0005) and place.lon == pytest.approx(-75.719, abs=0.0005)


def _street(name: str, start: tuple[float, float], step: tuple[float, float], count: int = 40) -> list[str]:
    return [f"{n},{name},{start[0] + n * step[0]:.6f},{start[1] + n * step[1]:.6f}" for n in range(1, count + 1)]


def test_streets_meet_only_where_they_cross_or_end_not_side_by_side(config_dir):
    """Parallel streets a block apart have addresses 40 m from each other all along: they do
    not meet. A street ending on another (a T) does."""
    north = 0.00036  # ~40 m of latitude
    rows = (_street("rue du Moulin", (45.5, -75.6), (0, 0.0001))  # west to east
            + _street("rue du Quai", (45.5 - north, -75.6), (0, 0.0001))  # beside it, 40 m south
            + _street("rue des Cèdres", (45.498, -75.598), (0.0001, 0)))  # south to north, across both
    (config_dir / "addresses.csv").write_text("number,street,lat,lon\n" + "\n".join(rows) + "\n", encoding="utf-8")
    register = load_rulebook(config_dir, SINKS).addresses

    assert register.find("Moulin & Quai") is None
    crossing = register.find("Moulin & Cèdres")
    assert crossing.address == "rue des Cèdres / rue du Moulin"
    assert (crossing.lat, crossing.lon) == pytest.approx((45.5, -75.598), abs=0.0001)
    assert register.find("Quai / Cèdres").address == "rue des Cèdres / rue du Quai"


def test_a_corner_of_a_street_name_two_streets_share_is_not_guessed(config_dir):
    with (config_dir / "addresses.csv").open("a", encoding="utf-8") as register:
        register.write("\n".join(_street("avenue King", (45.47, -75.73), (0, 0.0001))) + "\n")
    register = load_rulebook(config_dir, SINKS).addresses
    assert register.find_in_text("Au coin de King et Wellington") is None  # rue King or avenue King?
    assert register.find_in_text("Au coin de Saint-Jean et Wellington").address == "rue Saint-Jean / rue Wellington"


@pytest.mark.parametrize(("point", "expected"), [
    ((45.445, -75.719), "rue King / rue Wellington"),  # at the corner
    ((45.4405, -75.719), "rue Wellington"),  # mid-block: the street
    ((45.43, -75.73), "rue Principale"),
    ((45.50, -75.60), None),  # beyond every address
])
def test_a_point_is_described_by_the_street_or_corner_it_is_near_never_a_house(point, expected):
    """How a dashboard names a hot spot for a reader (no house number: not someone's address)."""
    assert load_rulebook(ROOT / "config", SINKS).addresses.near(*point) == expected
