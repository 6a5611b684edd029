"""fold() and strip_accents() give what the per-character version gave, character for character.

The faster version skips ASCII text and looks only at the runs of non-ASCII characters; the
reference below is the version it replaced. Corpora: every text of the language test's
fixtures (French and English), every string value of the provider webhook fixtures, and
characters chosen to break it (ligatures, compatibility forms, stacked marks, Turkish İ,
Vietnamese, Greek, emoji, a lone combining mark).
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest

from normalizer.text import fold, strip_accents

from .test_language_markers import labelled

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def reference_strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def reference_fold(text: str) -> str:
    text = reference_strip_accents(text or "").lower().replace("œ", "oe").replace("æ", "ae")
    return _NOT_WORD.sub(" ", text).strip()


def strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def corpus() -> list[str]:
    texts = [text for text, _label in labelled()]
    for folder in ("twilio_sms", "twilio_voice", "messenger", "telegram", "web_form"):
        for path in sorted((FIXTURES / folder).glob("*.json")):
            texts += strings(json.loads(path.read_text(encoding="utf-8")))
    return texts


TRICKY = [
    "Nid-de-poule sur l'Avenue Saint-Édouard!", "ŒUVRE cœur Æsop", "ﬁn ﬂeur Ⅻ ² ½ ｆｕｌｌ", "e\u0301\u0327\u0308",
    "\u0301 seul", "İstanbul ıi", "Tiếng Việt có dấu", "Ελληνικά ά", "déjà vu 👍🏽 🇨🇦", "straße Ø ø Ł ł",
    "ÀÉÎÕÜ àéîõü Ç ç", "\ufeffzero\u200bwidth", "", "plain ascii, 123 Main St.",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_texts_fold_as_before(text):
    assert strip_accents(text) == reference_strip_accents(text)
    assert fold(text) == reference_fold(text)


def test_fixture_texts_fold_as_before():
    texts = corpus()
    assert len(texts) > 500
    assert sum(not t.isascii() for t in texts) > 50  # French with accents is well represented
    for text in texts:
        assert strip_accents(text) == reference_strip_accents(text), text
        assert fold(text) == reference_fold(text), text


def test_every_combining_mark_is_dropped_like_before():
    marks = "".join(chr(c) for c in range(0x300, 0x2000) if unicodedata.combining(chr(c)))
    text = "a" + marks + "é" + "\U0001d165\U0001e130"  # and two outside the BMP
    assert strip_accents(text) == reference_strip_accents(text)
