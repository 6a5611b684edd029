"""HTML form fields → the intake document shared with the API (adapters.channels.web_form)."""

from __future__ import annotations


def _number(raw: str | None):
    if raw is None or not raw.strip():
        return None
    try:
        return float(raw.replace(",", "."))
    except ValueError:
        return raw  # left as text: validation names the field


def submission_from_form(form, channel: str, language: str | None) -> dict:
    document = {
        "channel": form.get("channel", channel) if channel == "walk_in" else channel,
        "description": form.get("description", ""),
        "citizen": {
            "name": form.get("name") or None,
            "email": form.get("email") or None,
            "phone": form.get("phone") or None,
            "preferred_channel": form.get("preferred_channel") or None,
            "consent": form.get("consent", "yes") != "no",
        },
        "location": {
            "address": form.get("address") or None,
            "lat": _number(form.get("lat")),
            "lon": _number(form.get("lon")),
        },
    }
    chosen_language = form.get("language") or language
    if chosen_language in ("fr", "en"):
        document["language"] = chosen_language
    if form.get("category"):
        document["category"] = form["category"]
    return document
