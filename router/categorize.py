"""Categorization of citizen text against the service catalogue's FR/EN keywords.

Both the text and the keywords are folded (case, accents, hyphens, apostrophes), so
"Nid-de-poule", "nid de poule" and "NIDS DE POULE" meet. Each keyword phrase of k words is
compared with every k-word window of the text with rapidfuzz's ratio, which forgives typos
("lampadère", "pothol") without matching unrelated short words: phrases under 5 letters must
match exactly. A category scores its best phrase, weighted by length (a three-word match is
stronger evidence than one word), plus a little for each further distinct phrase.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from normalizer.text import fold

EXACT_ONLY_BELOW = 5  # letters: shorter phrases ("rat", "eau") must match exactly
FUZZY_CUTOFF = 80.0  # rapidfuzz ratio, 0-100, for phrases of LONG_PHRASE letters or more
SHORT_CUTOFF = 88.0  # for shorter phrases, where one wrong letter weighs more
LONG_PHRASE = 8
MIN_SCORE = 0.85  # below this, no category: the request goes to triage


@dataclass(frozen=True)
class Match:
    category: str
    score: float
    phrase: str


@dataclass
class Categorization:
    category: str | None
    score: float
    runner_up: str | None = None
    runner_up_score: float = 0.0
    matched: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "category": self.category,
            "score": round(self.score, 3),
            "runner_up": self.runner_up,
            "runner_up_score": round(self.runner_up_score, 3),
            "matched": self.matched,
        }


class PhraseIndex:
    """Keyword phrases grouped by word count, each pointing to its owners (category codes)."""

    def __init__(self, phrases: dict[str, list[str]]):
        by_length: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for owner, owner_phrases in phrases.items():
            for phrase in owner_phrases:
                folded = fold(phrase)
                if folded:
                    by_length[len(folded.split())][folded].add(owner)
        self.by_length = {k: {p: sorted(o) for p, o in v.items()} for k, v in by_length.items()}

    def matches(self, text: str) -> list[Match]:
        """Every (owner, phrase) found in ``text`` with its weighted quality."""
        words = fold(text).split()
        found: dict[tuple[str, str], float] = {}
        for length, phrases in self.by_length.items():
            choices = list(phrases)
            windows = {" ".join(words[i : i + length]) for i in range(len(words) - length + 1)}
            for window in windows:
                hits = process.extract(
                    window, choices, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF, limit=None
                )
                for phrase, ratio, _ in hits:
                    if ratio < _cutoff(phrase):
                        continue
                    quality = ratio / 100.0 * _weight(length)
                    for owner in phrases[phrase]:
                        key = (owner, phrase)
                        found[key] = max(found.get(key, 0.0), quality)
        return [Match(owner, score, phrase) for (owner, phrase), score in found.items()]


def _cutoff(phrase: str) -> float:
    letters = len(phrase.replace(" ", ""))
    if letters < EXACT_ONLY_BELOW:
        return 100.0
    return FUZZY_CUTOFF if letters >= LONG_PHRASE else SHORT_CUTOFF


def _weight(words: int) -> float:
    return 1.0 + 0.25 * (min(words, 4) - 1)


class Categorizer:
    def __init__(self, keywords: dict[str, list[str]]):
        self.index = PhraseIndex(keywords)

    def categorize(self, text: str) -> Categorization:
        by_category: dict[str, list[Match]] = defaultdict(list)
        for match in self.index.matches(text):
            by_category[match.category].append(match)
        scored = sorted(
            ((_category_score(m), code, m) for code, m in by_category.items()),
            key=lambda row: (-row[0], row[1]),
        )
        if not scored or scored[0][0] < MIN_SCORE:
            best = scored[0] if scored else None
            return Categorization(None, 0.0, best[1] if best else None, best[0] if best else 0.0)
        top_score, top, top_matches = scored[0]
        runner = scored[1] if len(scored) > 1 else (0.0, None, [])
        return Categorization(
            top,
            top_score,
            runner[1],
            runner[0],
            sorted({m.phrase for m in top_matches}),
        )


def _category_score(matches: list[Match]) -> float:
    scores = sorted((m.score for m in matches), reverse=True)
    return scores[0] + 0.1 * len(scores[1:4])
