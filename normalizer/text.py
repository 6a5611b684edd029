"""Text cleaning and folding shared by the normalizer, the router and dedup."""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]")
_SPACES = re.compile(r"[ \t\xa0]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def clean(text: str) -> str:
    """Readable text: NFC, no control characters, tidy spaces and blank lines."""
    text = unicodedata.normalize("NFC", text or "").replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def fold(text: str) -> str:
    """Case-, accent- and punctuation-folded text for matching.

    "Nid-de-poule sur l'Avenue Saint-Édouard!" -> "nid de poule sur l avenue saint edouard"
    """
    text = strip_accents(text or "").lower().replace("œ", "oe").replace("æ", "ae")
    return _NOT_WORD.sub(" ", text).strip()
