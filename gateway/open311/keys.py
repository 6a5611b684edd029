"""Who may POST to the Open311 server: API keys, secrets only from the environment.

``OPEN311_API_KEY`` is the one key of a small set-up (its client is named "default"). More
clients are listed in ``config/open311.yaml``, each naming the environment variable that holds
its key, never the key itself::

    api_keys:
      - client: fixmystreet
        env: OPEN311_KEY_FIXMYSTREET
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

import yaml

CONFIG_FILE = "open311.yaml"
log = logging.getLogger(__name__)


class KeyConfigError(ValueError):
    """config/open311.yaml is malformed; no key from it is accepted."""


def configured_keys(settings) -> dict[str, str]:
    """{client name: key} for every key whose environment variable is set. A malformed
    config/open311.yaml is logged and its clients refused; OPEN311_API_KEY still works."""
    keys = {}
    if settings.get("OPEN311_API_KEY"):
        keys["default"] = str(settings["OPEN311_API_KEY"])
    try:
        declared = _declared(Path(str(settings["GATEWAY_CONFIG_DIR"])) / CONFIG_FILE)
    except KeyConfigError as exc:
        log.error("Open311 clients not loaded: %s", exc)
        declared = []
    for client, env in declared:
        if settings.get(env):
            keys[client] = str(settings[env])
    return keys


def client_for(settings, given: str | None) -> str | None:
    """The client name owning ``given``, or None when the key is missing or wrong."""
    if not given:
        return None
    found = None
    for client, key in configured_keys(settings).items():
        if hmac.compare_digest(given.encode(), key.encode()):  # compare them all: no timing hint
            found = found or client
    return found


def _declared(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise KeyConfigError(f"{path}: {exc}") from exc
    rows = document.get("api_keys", []) if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise KeyConfigError(f"{path}: api_keys must be a list")
    declared = []
    for number, row in enumerate(rows, 1):
        if not (isinstance(row, dict) and isinstance(row.get("client"), str) and isinstance(row.get("env"), str)):
            raise KeyConfigError(f"{path}: api_keys item {number} needs 'client' and 'env' strings")
        declared.append((row["client"], row["env"]))
    return declared
