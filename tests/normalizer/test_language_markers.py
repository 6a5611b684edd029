"""The markers-first shortcut of language detection decides only what lingua would decide.

Corpora (all in tests/fixtures): the labelled sentences of the router (French and English,
written for the tests), the French Bellerive requests of the dedup fixtures, the Twilio SMS
fixture bodies and the Boston 311 descriptions (real, English) of the bench sample.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from normalizer.language import _MARKERS, by_markers, by_statistics, detect, marker_hits
from normalizer.text import clean, fold

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def labelled() -> list[tuple[str, str | None]]:
    texts: list[tuple[str, str | None]] = []
    with (FIXTURES / "router" / "sentences.csv").open(encoding="utf-8") as file:
        texts += [(row["text"], row["language"]) for row in csv.DictReader(file)]
    french = json.loads((FIXTURES / "dedup" / "bellerive_fr__written_for_tests.json").read_text(encoding="utf-8"))
    texts += [(r["description"], "fr") for r in french["requests"]]
    for path in sorted((FIXTURES / "twilio_sms").glob("sms__*.json")):
        body = json.loads(path.read_text(encoding="utf-8")).get("params", {}).get("Body")
        if body:
            texts.append((body, None))
    boston = json.loads((FIXTURES / "bench" / "boston_sample.json").read_text(encoding="utf-8"))
    records = boston if isinstance(boston, list) else boston.get("records", [])
    texts += [(r["description"], "en") for r in records if r.get("description")]
    return texts


def test_markers_decide_only_what_the_statistics_would_decide():
    decided = 0
    for text, _label in labelled():
        text = clean(text)
        words = fold(text).split()
        if not words:
            continue
        hits = marker_hits(words)
        quick = by_markers(words, hits)
        if quick is not None:
            decided += 1
            assert quick == by_statistics(text, words, hits, "fr") == by_statistics(text, words, hits, "en"), text
    assert decided >= 350  # two thirds of these texts skip lingua (383 of 557)


def test_labelled_texts_keep_their_language():
    wrong = [(text, label) for text, label in labelled() if label and detect(clean(text), "fr") != label]
    assert len(wrong) <= 2, wrong  # two Boston descriptions too terse to tell ("No RPP", "Noise complaint.")


def test_a_french_street_name_in_english_goes_to_the_statistics():
    words = fold("The street light near 22 rue Wellington is out again").split()
    assert by_markers(words, marker_hits(words)) is None
    assert detect("The street light near 22 rue Wellington is out again") == "en"


def test_no_marker_is_a_word_of_both_languages():
    assert not _MARKERS["fr"] & _MARKERS["en"]


def test_the_french_numero_is_not_taken_for_english():
    # "no" abbreviates "numéro" in Quebec addresses: it is no English marker
    text = "Il y a un gros trou dans la chaussée au no 245 de la rue Principale"
    words = fold(text).split()
    assert by_markers(words, marker_hits(words)) == "fr"
    assert detect("Gros trou au no 245", "en") == "fr"


def test_an_english_message_naming_a_french_street_is_english():
    text = "There is a big pothole at the corner of rue de la Montagne and Sherbrooke"
    words = fold(text).split()
    assert by_markers(words, marker_hits(words)) is None  # markers of both: the statistics decide
    assert detect(text, "fr") == "en"
