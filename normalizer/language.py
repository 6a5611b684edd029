"""French/English detection that holds up on short, accent-less and mixed messages.

lingua (restricted to the two languages) does the statistics; a short list of unambiguous
everyday words settles the messages too short for statistics ("ok merci", "STATUT").
When neither is sure, the city's default language wins: Quebec first, French by default.
"""

from __future__ import annotations

import threading

from .text import fold

_MARKERS = {
    "fr": {"merci", "bonjour", "allo", "svp", "stp", "statut", "oui", "non", "bonsoir", "rue",
           "est", "une", "les", "des", "dans", "pas", "il", "elle", "nous", "vous", "avec",
           "sur", "pour", "mon", "ma", "chez", "devant", "encore", "depuis", "aqueduc"},
    "en": {"thanks", "thank", "hello", "hi", "please", "status", "yes", "the", "is", "are",
           "there", "my", "in", "on", "street", "with", "not", "for", "since", "again", "still"},
}
_detector = None
_lock = threading.Lock()


def _lingua():
    global _detector
    with _lock:
        if _detector is None:
            from lingua import Language, LanguageDetectorBuilder

            _detector = LanguageDetectorBuilder.from_languages(
                Language.FRENCH, Language.ENGLISH
            ).build()
    return _detector


def detect(text: str, default: str = "fr") -> str:
    """'fr' or 'en' for ``text``; ``default`` when the text gives no clear sign."""
    words = fold(text).split()
    if not words:
        return default
    hits = {lang: sum(w in markers for w in words) for lang, markers in _MARKERS.items()}
    values = {
        c.language.iso_code_639_1.name.lower(): c.value
        for c in _lingua().compute_language_confidence_values(text)
    }
    # Marker words count as evidence on top of the statistics, which are weak on 1-3 words.
    weight = 0.25 if len(words) <= 4 else 0.08
    score = {lang: values.get(lang, 0.0) + weight * hits[lang] for lang in ("fr", "en")}
    if abs(score["fr"] - score["en"]) < 0.1:
        return default
    return max(score, key=score.get)
