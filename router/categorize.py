"""Categorization of citizen text against the service catalogue's FR/EN keywords.

Both the text and the keywords are folded (case, accents, hyphens, apostrophes), so
"Nid-de-poule", "nid de poule" and "NIDS DE POULE" meet. A keyword phrase of k words is
found in a k-word window of the text whose rapidfuzz ratio with it is high enough to forgive
typos ("lampadère", "pothol"), and which matches the phrase word by word: words under 5
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

from rapidfuzz import fuzz

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
_NONE: frozenset[str] = frozenset()
WORDS_KEPT = 20_000  # words of text whose possible phrase words are kept (PhraseIndex), per generation


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
        # Each phrase under its first word: (its length's rank, its rank among that length's
        # phrases, its words, its weight), the order the matches are listed in.
        self._by_first: dict[str, list[tuple[int, int, tuple[str, ...], float]]] = defaultdict(list)
        words: set[str] = set()
        for rank, length_phrases in enumerate(self.by_length.values()):
            for column, phrase in enumerate(length_phrases):
                self._by_first[phrase.split()[0]].append((rank, column, tuple(phrase.split()), _weight(phrase)))
                words.update(phrase.split())
        self._short = defaultdict(list)  # a phrase's short word, under its singular
        self._long = defaultdict(list)  # a phrase's longer word, under its length
        for word in words:
            if len(word) < EXACT_ONLY_BELOW:
                self._short[_singular(word)].append(word)
            else:
                self._long[len(word)].append(word)
        # The phrases' words each word of text may stand for, in two generations: a word
        # found in the older one moves to the newer, and once the newer holds WORDS_KEPT the
        # older is let go.
        self._recent: dict[str, frozenset[str]] = {}
        self._older: dict[str, frozenset[str]] = {}

    def matches(self, text: str) -> list[Match]:
        """Every (owner, phrase) found in ``text`` with its weighted quality and first place.

        A phrase of k words is compared with a k-word window of the text only when each word
        of the window may stand for the phrase's word there (``_words_for``: the conditions
        ``_same_words`` puts on each word, which every match meets); the window must then
        score FUZZY_CUTOFF with rapidfuzz's ratio and match the phrase word by word. Found in
        the order of a search length by length, window by window in text order, best ratio
        first."""
        words = fold(text).split()
        stands_for = [self._words_for(word) for word in words]
        passed = []
        for start, possible in enumerate(stands_for):
            for first in possible:
                for rank, column, phrase_words, weight in self._by_first.get(first, ()):
                    length = len(phrase_words)
                    if start + length > len(words) or not all(
                            phrase_words[j] in stands_for[start + j] for j in range(1, length)):
                        continue
                    phrase, window = " ".join(phrase_words), " ".join(words[start:start + length])
                    ratio = fuzz.ratio(window, phrase)
                    if ratio >= FUZZY_CUTOFF and _same_words(phrase, window):
                        passed.append((rank, start, -ratio, column, phrase, ratio / 100.0 * weight, length))
        found: dict[tuple[str, str], tuple[float, int, int]] = {}
        for _, start, _, _, phrase, quality, length in sorted(passed, key=lambda hit: hit[:4]):
            for owner in self.by_length[length][phrase]:
                key = (owner, phrase)
                if key not in found or quality > found[key][0]:
                    found[key] = (quality, start, start + length)
        return [Match(o, q, p, a, b) for (o, p), (q, a, b) in found.items()]

    def _words_for(self, got: str) -> frozenset[str]:
        """The phrases' words ``got`` may stand for: a short one with the same singular, a
        longer one one letter longer or shorter at most and within its typo tolerance."""
        known = self._recent.get(got)
        if known is None:
            known = self._older.get(got)
            if known is None:
                known = frozenset(self._short.get(_singular(got), ())).union(
                    want for size in (len(got) - 1, len(got), len(got) + 1) for want in self._long.get(size, ())
                    if fuzz.ratio(want, got, score_cutoff=_cutoff(want))) or _NONE
            if len(self._recent) >= WORDS_KEPT:
                self._recent, self._older = {}, self._recent
            self._recent[got] = known
        return known


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
