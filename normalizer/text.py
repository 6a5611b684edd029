"""Text cleaning and folding shared by the normalizer, the router and dedup."""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]")
_SPACES = re.compile(r"[ \t\xa0]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_NOT_ASCII = re.compile(r"[^\x00-\x7f]+")


def clean(text: str) -> str:
    """Readable text: NFC, no control characters, tidy spaces and blank lines."""
    text = unicodedata.normalize("NFC", text or "").replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def strip_accents(text: str) -> str:
    """NFKD, then without its combining marks ("Édouard" -> "Edouard").

    ASCII text is its own NFKD form and has no combining marks: returned as it is. Otherwise
    only the runs of non-ASCII characters are looked at (``unicodedata.combining`` on each),
    not every character of the text."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    if decomposed.isascii():
        return decomposed
    return _NOT_ASCII.sub(_without_marks, decomposed)


def _without_marks(run: re.Match) -> str:
    return "".join(c for c in run.group() if not unicodedata.combining(c))


def fold(text: str) -> str:
    """Case-, accent- and punctuation-folded text for matching.

    "Nid-de-poule sur l'Avenue Saint-Édouard!" -> "nid de poule sur l avenue saint edouard"
    """
    text = strip_accents(text or "").lower().replace("œ", "oe").replace("æ", "ae")
    return _NOT_WORD.sub(" ", text).strip()
