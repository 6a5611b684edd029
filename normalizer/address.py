"""Addresses as citizens type or say them: the house number and the street, read the same
whatever the street's type, direction or punctuation ("145, rue Wellington Nord" and
"145 Wellington" are one street). Dedup compares and indexes addresses with it; the city's
address register (router/addresses.py) finds the place an address names.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache

from .text import fold

# Street types, directions and "saint" are left out of the street key: "145, rue Wellington
# Nord" and "145 Wellington" are one street; Myrtle St and Myrtle Ave share a key, and
# scoring (numbers, coordinates) tells them apart.
_NOT_NAME = frozenset("""
street st rue r avenue ave av road rd boulevard blvd boul bd chemin ch drive dr place pl lane
ln court ct terrace ter square sq highway hwy circle cir parkway pkwy way montee route rte
north nord n south sud s east est e west ouest w o saint sainte ste
""".split())
_TYPES = _NOT_NAME - frozenset("north nord n south sud s east est e west ouest w o saint sainte".split())
_FILLER = {"de", "du", "des", "la", "le", "l", "d", "of", "the"}
_NUMBER = re.compile(r"^\s*(\d{1,6})(?:\s*[-–]\s*\d+)?[a-z]?\b[\s,]*", re.IGNORECASE)
_INTERSECTION = re.compile(r"^\s*intersection of\s+", re.IGNORECASE)


def is_street_type(word: str) -> bool:
    """Whether a folded word is a street's type ("rue", "st", "avenue", "boul")."""
    return word in _TYPES


@lru_cache(maxsize=16384)  # the same open requests are compared again and again
def parse_address(address: str | None) -> tuple[int | None, str] | None:
    """(house number or None, street key) or None when no street can be read.

    "108 Myrtle St Beacon Hill" and "106, Myrtle Street" give (108, "myrtle st ...") and
    (106, "myrtle st"); the key keeps the street name and its type, and stops there.
    """
    if not address or not address.strip():
        return None
    text = _INTERSECTION.sub("", address)
    number = None
    found = _NUMBER.match(text)
    if found:
        number, text = int(found.group(1)), text[found.end():]
    street = re.split(r",|&| and | et ", text)[0]
    words = [w for w in fold(street).split() if w not in _FILLER]
    key = []
    for word in words:
        if word not in _NOT_NAME:
            key.append(word)
        elif key and word in _TYPES:
            break  # "108 Myrtle St Beacon Hill": the street ends with its type
    key = key or words
    if not key or all(k.isdigit() for k in key):
        return None
    return number, " ".join(key)[:120]


# A house number standing alone in a sentence: not part of 12.5, 3/4, 10:30 or 819-555-0123.
_NUMBER_IN_TEXT = re.compile(r"(?<![\w.,/:-])(\d{1,5})(?![\w/:.,-]*\d)")
_CLAUSE_END = re.compile(r"[,.;:!?()\n]")


def street_words(text: str) -> list[str]:
    """The words of a street's name at the start of ``text``, as parse_address keeps them
    (types, directions and "de la" left out; the name stops at a type that follows it)."""
    name: list[str] = []
    for word in fold(_CLAUSE_END.split(text, maxsplit=1)[0]).split():
        if word in _FILLER:
            continue
        if word not in _NOT_NAME:
            name.append(word)
        elif name and word in _TYPES:
            break
    return name


def numbers_in_text(text: str | None):
    """(house number, the text that follows it) for each number standing alone in ``text``."""
    for found in _NUMBER_IN_TEXT.finditer(text or ""):
        yield int(found.group(1)), text[found.end():found.end() + 80].lstrip(" ,")  # "au 60, rue Saint-Jean"


# Two streets that meet: "au coin de Wellington et King", "à l'angle des rues Cartier et
# Principale", "corner of Wellington and King", "pothole at Wellington and King",
# "intersection Wellington / King", "feu brisé Wellington/King". In a sentence, streets joined
# by "et" / "and" need a word for the corner before them ("Wellington et King" may be two
# places); joined by "/" or "&" they are one. An address field that holds two streets
# ("Wellington et King") is a corner by itself.
_CORNER_WORD = re.compile(r"\b(?:coin|angle|intersection|croisement|carrefour|corner|junction|at)\b\s*",
                          re.IGNORECASE)
_AND = re.compile(r"\s+(?:et|and)\s+|\s*[&/]\s*", re.IGNORECASE)
_SLASH = re.compile(r"(?<=[^\W\d])\s*[&/]\s*(?=[^\W\d])")  # between letters: not 24/7 or 3/4


def corners_in_text(text: str | None, whole: bool = False):
    """(words before, words after) for each place ``text`` may name as where two streets
    meet, as street_words reads them ("de la rue Wellington Nord" is ["wellington"]). The
    street before is the one its words END with; the one after, the one they BEGIN with (to
    the end of the clause). ``whole``: the text is an address field."""
    text = text or ""
    starts = [found.end() for found in _CORNER_WORD.finditer(text)]
    for start in starts or ([0] if whole else []):
        clause = _CLAUSE_END.split(text[start:start + 160], maxsplit=1)[0]
        joined = _AND.search(clause)
        if joined is not None:
            yield street_words(clause[:joined.start()]), street_words(clause[joined.end():])
    for joined in _SLASH.finditer(text):
        before = _CLAUSE_END.split(text[max(0, joined.start() - 60):joined.start()])[-1]
        yield street_words(before), street_words(text[joined.end():joined.end() + 80])


def with_registered_place(message, register):
    """``message`` (a Normalized) given the place its address names in the city's address
    register (config/addresses.csv): its coordinates, and the address as the register writes
    it, so that two ways of writing one address are one place. The address is the one given
    as such, else the first one its words name ("devant le 145 rue Wellington, …": an SMS,
    an e-mail, a voicemail's transcript). Only for a message without coordinates of its own
    (a GPS fix is kept), and only when the register knows that house number on exactly one
    street of that name; otherwise unchanged."""
    if register is None or (message.lat is not None and message.lon is not None):
        return message
    if message.address:
        place = register.find(message.address)
    else:
        place = register.find_in_text(" ".join(filter(None, [message.subject, message.text])))
    if place is None:
        return message
    return replace(message, lat=place.lat, lon=place.lon, address=place.address)
