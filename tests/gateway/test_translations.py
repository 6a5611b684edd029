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


# Events whose type is composed: scheduler.py records f"sla_{state}".
COMPOSED_EVENTS = ("sla_approaching", "sla_breached")


def _event_types() -> set[str]:
    """Every event type the gateway's code records (``type="…"`` in gateway/)."""
    found = set(COMPOSED_EVENTS)
    for path in (ROOT / "gateway").rglob("*.py"):
        found |= set(re.findall(r'\btype="([a-z_]+)"', path.read_text(encoding="utf-8")))
    return found


def test_every_event_of_a_request_s_history_is_named_in_french_on_the_agent_s_page(client, runtime, seeded):
    """An agent reading a request's history sees what happened in words, never a code such
    as "message_added"."""
    from gateway.models import Event
    from tests.support.staff import get_request, make_user, page, sign_in

    types = _event_types()
    assert {"message_added", "location_added", "escalated", "received"} <= types  # the scan finds them
    request = get_request(runtime, seeded["light"])
    with runtime.db.session() as db:
        db.add_all(Event(request_id=request.id, actor="system:test", type=kind, data={}) for kind in types)
        db.add_all([Event(request_id=request.id, actor="system:pipeline", type="reported_again",
                          data={"request": "R-2026-0000042"}),
                    Event(request_id=request.id, actor="department:eau", type="declined",
                          data={"from": "eau", "to": "centre_311", "note": "pas chez nous"})])
    sign_in(client, make_user(runtime, "agent"))
    client.get("/inbox?lang=fr")

    shown = page(client, f"/inbox/r/{seeded['light']}")

    assert [kind for kind in sorted(types) if f"<strong>{kind}</strong>" in shown] == []
    assert "Message du citoyen ajouté" in shown and "Échéance dépassée" in shown
    assert "Langue</dt><dd>Anglais" in shown and "Répondre au citoyen (en anglais)" in shown
    assert 'href="/inbox/r/R-2026-0000042"' in shown  # what it happened with, where it says
    assert "— Eau potable et égouts : « pas chez nous »" in shown
