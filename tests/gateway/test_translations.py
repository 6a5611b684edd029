"""French is a first-class language: every string of the staff's and citizens' pages (the
code and the templates, extracted as `pybabel extract` does with babel.cfg) has its French
translation, with the same placeholders, so no French page shows an English sentence and
none fails to render."""

from __future__ import annotations

import re

from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from tests.conftest import ROOT

CATALOG = ROOT / "gateway" / "translations" / "fr" / "LC_MESSAGES" / "messages.po"
KEYWORDS = {"_": None, "_l": None, "gettext": None, "lazy_gettext": None, "ngettext": (1, 2)}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def _extracted() -> dict:
    with open(ROOT / "babel.cfg") as config:
        method_map, options_map = parse_mapping_cfg(config)
    found = {}
    for filename, line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS):
        found.setdefault(message, f"{filename}:{line}")
    return found


def _as_tuple(text) -> tuple:
    return text if isinstance(text, tuple) else (text,)


def test_every_string_shown_to_people_has_its_french_translation():
    extracted = _extracted()
    with open(CATALOG, "rb") as po:
        catalog = read_po(po, locale="fr")
    assert len(extracted) > 300  # the extraction did find the pages' strings
    untranslated = {}
    for message, where in extracted.items():
        entry = catalog.get(message[0] if isinstance(message, tuple) else message)
        if entry is None or not all(_as_tuple(entry.string)) or entry.fuzzy:
            untranslated[where] = message
    assert untranslated == {}


def test_french_translations_keep_the_placeholders():
    with open(CATALOG, "rb") as po:
        catalog = read_po(po, locale="fr")
    wrong = {}
    for entry in catalog:
        if not entry.id or not entry.string:
            continue
        wanted = set(PLACEHOLDER.findall(" ".join(_as_tuple(entry.id))))
        for text in _as_tuple(entry.string):
            if set(PLACEHOLDER.findall(text)) - wanted or (wanted - set(PLACEHOLDER.findall(text)) - {"num"}):
                wrong[_as_tuple(entry.id)[0]] = text
    assert wrong == {}
