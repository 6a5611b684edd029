"""The city's named places (config/places.yaml): a park, an arena or the city hall a citizen
names instead of an address places the request there, in its district."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from gateway.models import Request
from router import ConfigError, load_rulebook, tried
from tests.conftest import ROOT
from tests.support.staff import submit

from .conftest import SINKS


@pytest.fixture(scope="module")
def book():
    return load_rulebook(ROOT / "config", SINKS)


@pytest.mark.parametrize(("text", "expected"), [
    ("Le module de jeux du parc Central est brisé, un enfant s'est blessé", "Parc Central"),
    ("graffitis sur l'Aréna-des-Plaines depuis lundi", "Aréna des Plaines"),
    ("LAMPADAIRE BRISÉ DEVANT L'HOTEL DE VILLE", "Hôtel de ville"),
    ("The fence at the Plateau pool is broken", "Piscine du Plateau"),  # the English name, written in French
    ("Swings broken at Lake Park, kids can't use them", "Parc du Lac"),
    ("la bibliothèque municipale a des graffitis sur la porte", "Bibliothèque Gabrielle-Roy"),
    ("Poubelles pleines au centre communautaire Bois-Ouest", "Centre communautaire du Bois-Ouest"),
])
def test_a_named_place_in_a_sentence_is_found_whatever_its_spelling(book, text, expected):
    place = book.addresses.find_in_text(text)
    assert place is not None and place.address == expected


@pytest.mark.parametrize("text", [
    "Nid-de-poule sur l'avenue du Parc Central",  # a street named after the park: not the park
    "Pothole on Central Park Street",
    "Le parc est sale",  # which park?
    "Les autos roulent trop vite au centre-ville",
    "",
])
def test_a_street_named_after_a_place_or_a_vague_word_is_no_place(book, text):
    assert book.addresses.find_in_text(text) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("Trou devant le 145 rue Wellington, près du parc Central", "145, rue Wellington"),
    ("Feu en panne au coin de Wellington et King, près de la bibliothèque municipale", "rue King / rue Wellington"),
])
def test_a_house_or_a_corner_named_with_a_place_is_the_more_precise(book, text, expected):
    assert book.addresses.find_in_text(text).address == expected


def test_a_place_typed_as_the_address_is_found_and_an_administrator_s_trial_shows_its_district(book):
    assert book.addresses.find("Parc du Lac").address == "Parc du Lac"
    decision, place = tried(book, "Les balançoires du parc du Lac sont brisées", "fr", "sms",
                            datetime(2026, 6, 3, 15, tzinfo=UTC))
    assert place.address == "Parc du Lac" and decision.district == "est"


def test_a_hot_spot_by_a_place_is_named_after_it(book):
    assert book.addresses.near(45.4331, -75.7259) == "Parc Central"
    assert book.addresses.near(45.4451, -75.7191) == "rue King / rue Wellington"  # no place within 100 m


def test_bad_places_are_refused_with_their_line_and_field(config_dir):
    path = config_dir / "places.yaml"
    path.write_text("""places:
  - name: {fr: Parc des Cèdres, en: Cedar Park}
    lat: 45.44
    lon: -75.72
  - name: {fr: Aréna, en: Arena}
    also: [Parc-des-Cèdres, CH]
    lat: 95
    lon: -75.72
""", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_rulebook(config_dir, SINKS)
    found = sorted((p.file.endswith("places.yaml"), p.line, p.field) for p in caught.value.problems)
    assert found == [(True, 7, "places[1].lat")]  # the shape first; the names once the shape holds

    path.write_text(path.read_text(encoding="utf-8").replace("lat: 95", "lat: 45.42"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_rulebook(config_dir, SINKS)
    messages = {(p.line, p.field): p.message for p in caught.value.problems}
    assert set(messages) == {(6, "places[1].also[0]"), (6, "places[1].also[1]")}
    assert "also names places[0]" in messages[(6, "places[1].also[0]")]
    assert "too short" in messages[(6, "places[1].also[1]")]


def test_without_the_file_there_are_no_places(config_dir):
    (config_dir / "places.yaml").unlink()
    assert load_rulebook(config_dir, SINKS).addresses.find_in_text("au parc Central") is None


def _request(runtime, code: str) -> Request:
    with runtime.db.session() as db:
        return db.scalar(select(Request).where(Request.code == code))


def test_two_citizens_naming_one_park_two_ways_report_one_problem_placed_there(runtime, smtp_server):
    """One names the park in a sentence, the other types it as the address: one place, in its
    district, the second report found to be the first's problem; the first is told where the
    city understood it was."""
    from tests.support.servers import wait_until

    first = submit(runtime, {"channel": "web", "citizen": {"email": "parent@example.org"}, "language": "fr",
                             "description": "Une balançoire est brisée au parc du Lac, les chaînes pendent"})
    second = submit(runtime, {"channel": "web", "citizen": {"email": "voisin@example.org"},
                              "description": "Balançoire brisée, les chaînes pendent",
                              "location": {"address": "parc du lac"}})
    one, other = _request(runtime, first), _request(runtime, second)
    assert one.address == other.address == "Parc du Lac"
    assert (one.lat, one.lon, one.district) == (45.4185, -75.677, "est")
    assert other.status == "duplicate" and other.duplicate_of_id == one.id
    mail = wait_until(lambda: smtp_server.to("parent@example.org"))
    assert "Lieu : Parc du Lac." in mail[0].get_body(("plain",)).get_content()


def test_the_report_form_says_a_place_will_do(client, config_dir, make_app):
    page = client.get("/report", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "ou un lieu (« Hôtel de ville »)" in page
    (config_dir / "places.yaml").unlink()  # a city without named places is not promised one
    bare = make_app(GATEWAY_CONFIG_DIR=str(config_dir)).test_client()
    assert "ou un lieu" not in bare.get("/report", headers={"Accept-Language": "fr"}).get_data(as_text=True)
