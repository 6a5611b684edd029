"""Text prepared for comparing two reports of a problem, and their similarity.

Folded (case, accents, punctuation) like everywhere else, then stripped of what two
different problems share anyway: French and English stop words, and the field labels
that app forms put in the text ("Make of the abandoned car: HONDA | Color: GREY" keeps
"HONDA GREY"). Similarity is rapidfuzz's token_set_ratio, tempered for very short
texts: "car" is a subset of any car complaint, which proves nothing.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rapidfuzz import fuzz

from normalizer.text import fold

STOP_WORDS = frozenset("""
a about above after again all also am an and any are as at be been before being below
between both but by can could did do does doing down during each few for from further had
has have having he her here hers him his how i if in into is it its itself just me more
most my no nor not now of off on once only or other our out over own please same she should
so some such than that the their them then there these they this those through to too
under until up very was we were what when where which while who whom why will with would
you your yours hi hello thanks thank

au aux avec ce ces cet cette c ca d dans de des du elle elles en est et etre eu il ils j je
l la le les leur leurs lui m ma mais me meme mes moi mon n ne nos notre nous on ou par pas
pour qu que qui s sa se ses si son sont sur t ta te tes toi ton tu un une vos votre vous y
a ete etait sont ont avoir fait faire bonjour merci svp sil plait depuis tres plus
""".split())
# "Label: value" or "Question? value" pieces of app forms, separated by "|".
_FORM_LABEL = re.compile(r"(?:^|\|)\s*[^|:?]{2,80}[:?](?=\s)")
SHORT_TEXT = 3  # words: below this a perfect subset match is weak evidence


@lru_cache(maxsize=16384)  # the same open requests are compared again and again
def prepare(text: str | None) -> str:
    """The words worth comparing, folded, in order. Empty when nothing is left."""
    if not text:
        return ""
    if "|" in text or text.count(":") > 1:
        text = _FORM_LABEL.sub(" ", text)
    return " ".join(w for w in fold(text).split() if w not in STOP_WORDS and len(w) > 1)


def similarity(a: str, b: str) -> float | None:
    """0..1 for two prepared texts; None when either is empty (nothing to compare)."""
    if not a or not b:
        return None
    subset = fuzz.token_set_ratio(a, b) / 100
    whole = fuzz.token_sort_ratio(a, b) / 100
    shortest = min(len(a.split()), len(b.split()))
    # A subset match is trusted in proportion to the words behind it.
    trust = min(1.0, shortest / SHORT_TEXT)
    return max(whole, trust * subset + (1 - trust) * whole)
