"""Categorization of citizen text against the service catalogue's FR/EN keywords.

Both the text and the keywords are folded (case, accents, hyphens, apostrophes), so
"Nid-de-poule", "nid de poule" and "NIDS DE POULE" meet. Each keyword phrase of k words is
compared with every k-word window of the text with rapidfuzz's ratio, which forgives typos
("lampadère", "pothol"). The window must then match the phrase word by word: words under 5
letters exactly (give or take a plural s/x: "bac"/"bacs", "feu"/"feux"), longer ones with the
typo tolerance and one letter more or less at most (a lone word under 8 letters may only
lose its last one). So "car in the street" is not "hole in the street", "the sidewalk" is
not "broken sidewalk", "station" is not "stationné" and "part" is not "party".

A category scores its best phrase, weighted by length (a three-word match is stronger evidence
than one word; articles and prepositions do not count), plus a little for each further phrase
found on other words of the text ("sidewalk" and "sidewalks" on the same word count once). On
equal scores, the category mentioned first wins: citizens tend to open with their main problem.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy
from rapidfuzz import fuzz, process

from normalizer.text import fold

EXACT_ONLY_BELOW = 5  # letters: shorter words ("rat", "eau") must match exactly
FUZZY_CUTOFF = 80.0  # rapidfuzz ratio, 0-100, for words of LONG_PHRASE letters or more
SHORT_CUTOFF = 88.0  # for shorter words, where one wrong letter weighs more
LONG_PHRASE = 8
# Articles, prepositions and elisions, which folding splits off ("d'autobus" -> "d autobus"):
# they must match but do not make a phrase more specific.
FILLER_WORDS = frozenset(
    "a an the of in on at to for my our d l de du des la le les un une au aux en mon ma mes".split()
)
# Below this, no category: the request goes to triage. Every match that passes the word checks
# scores at least FUZZY_CUTOFF / 100, so one typo-tolerant word (lampadere) is enough.
MIN_SCORE = FUZZY_CUTOFF / 100


@dataclass(frozen=True)
class Match:
    category: str
    score: float
    phrase: str
    start: int = 0  # word span of the text where the phrase was found
    end: int = 0


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
        self._choices = {k: list(v) for k, v in self.by_length.items()}

    def matches(self, text: str) -> list[Match]:
        """Every (owner, phrase) found in ``text`` with its weighted quality and first place.

        For each phrase length, all the text's windows are scored against all the phrases in
        one call (rapidfuzz cdist, in C); the few pairs that pass are scored again one by one
        with the exact ratio and checked word by word, in the order of a window-by-window
        search (windows in text order, best ratio first)."""
        words = fold(text).split()
        found: dict[tuple[str, str], tuple[float, int, int]] = {}
        for length, phrases in self.by_length.items():
            choices = self._choices[length]
            windows: dict[str, int] = {}
            for i in range(len(words) - length + 1):
                windows.setdefault(" ".join(words[i : i + length]), i)
            if not windows:
                continue
            queries = list(windows)
            # whole numbers and a cutoff a hair lower: a filter only, never drops a pair at the cutoff
            scores = process.cdist(queries, choices, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF - 0.01,
                                   dtype=numpy.uint8)
            rows, columns = scores.nonzero()
            hits_by_row: dict[int, list[int]] = defaultdict(list)
            for row, column in zip(rows.tolist(), columns.tolist(), strict=True):
                hits_by_row[row].append(column)
            for row in sorted(hits_by_row):
                window, start = queries[row], windows[queries[row]]
                hits = [(fuzz.ratio(window, choices[c]), c) for c in hits_by_row[row]]
                for ratio, column in sorted(hits, key=lambda hit: (-hit[0], hit[1])):
                    phrase = choices[column]
                    if ratio < FUZZY_CUTOFF or not _same_words(phrase, window):
                        continue
                    quality = ratio / 100.0 * _weight(phrase)
                    for owner in phrases[phrase]:
                        key = (owner, phrase)
                        if key not in found or quality > found[key][0]:
                            found[key] = (quality, start, start + length)
        return [Match(o, q, p, a, b) for (o, p), (q, a, b) in found.items()]


def _same_words(phrase: str, window: str) -> bool:
    """Word by word: short words exactly (but for a plural s/x), longer ones with typos."""
    wanted = phrase.split()
    for want, got in zip(wanted, window.split(), strict=True):
        if len(want) < EXACT_ONLY_BELOW:
            if want != got and _singular(want) != _singular(got):
                return False
            continue
        # One letter more or less at most ("station" is not "stationne"). A lone word under
        # LONG_PHRASE letters may only lose its last one, keeping EXACT_ONLY_BELOW letters:
        # "pothol" is "pothole", but "part" is not "party", "rain" not "drain", "garage" not
        # "garbage"; inside a phrase, the other words vouch for it ("nid de poul").
        truncated = got == want[:-1] and len(got) >= EXACT_ONLY_BELOW
        fewest = -1 if len(wanted) > 1 or len(want) >= LONG_PHRASE or truncated else 0
        if not fewest <= len(got) - len(want) <= 1 or fuzz.ratio(want, got) < _cutoff(want):
            return False
    return True


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 2 and word[-1] in "sx" else word


def _cutoff(phrase: str) -> float:
    letters = len(phrase.replace(" ", ""))
    if letters < EXACT_ONLY_BELOW:
        return 100.0
    return FUZZY_CUTOFF if letters >= LONG_PHRASE else SHORT_CUTOFF


def _weight(phrase: str) -> float:
    """Longer phrases weigh more, counting content words only: "arret d autobus" is two."""
    words = sum(1 for w in phrase.split() if w not in FILLER_WORDS)
    return 1.0 + 0.25 * (min(max(words, 1), 4) - 1)


RULE = "#rule:"  # owners of the rules' keyword phrases in ``Categorizer.both`` (no category code has "#")


class Categorizer:
    """The categories' keyword phrases; with ``rule_keywords`` (the rules' own phrases, by rule),
    ``read`` finds both in one pass over the text: each phrase length's windows are scored
    against the phrases of both in one ``cdist``, where two indexes took two. ``categorize``
    (the SMS webhook's quick look) reads the categories' phrases alone."""

    def __init__(self, keywords: dict[str, list[str]], rule_keywords: dict[str, list[str]] | None = None):
        self.index = PhraseIndex(keywords)
        rules = {RULE + owner: phrases for owner, phrases in (rule_keywords or {}).items() if phrases}
        self.both = PhraseIndex({**keywords, **rules}) if rules else self.index

    def categorize(self, text: str) -> Categorization:
        return _categorization(self.index.matches(text))

    def read(self, text: str) -> tuple[Categorization, set[str]]:
        """``categorize(text)``, and the rules (their keys in ``rule_keywords``) one of whose
        keyword phrases ``text`` holds: what each index finds for its own phrases is what it
        finds beside the other's (a phrase's matches are worked out for that phrase alone)."""
        categories, rules = [], set()
        for match in self.both.matches(text):
            if match.category.startswith(RULE):
                rules.add(match.category[len(RULE):])
            else:
                categories.append(match)
        return _categorization(categories), rules


def _categorization(matches: list[Match]) -> Categorization:
    by_category: dict[str, list[Match]] = defaultdict(list)
    for match in matches:
        by_category[match.category].append(match)
    scored = sorted(
        ((_category_score(m), code, m) for code, m in by_category.items()),
        key=lambda row: (-round(row[0], 6), min(m.start for m in row[2]), row[1]),
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
    """Best phrase, plus 0.1 for each of up to 3 further phrases on words not yet counted."""
    ranked = sorted(matches, key=lambda m: (-m.score, m.start))
    spans = [(ranked[0].start, ranked[0].end)]
    for m in ranked[1:]:
        if len(spans) > 3:
            break
        if all(m.end <= a or m.start >= b for a, b in spans):
            spans.append((m.start, m.end))
    return ranked[0].score + 0.1 * (len(spans) - 1)
