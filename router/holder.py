"""Keeps the rules in force, reloads them when config/ changes, never swaps in a broken set."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from .loader import RuleBook, fingerprint, load_rulebook
from .yamlfile import ConfigError

log = logging.getLogger(__name__)


class RuleBookHolder:
    """Thread-safe access to the current RuleBook.

    Every process (web workers, job workers) checks the files' fingerprint at most every
    ``check_every`` seconds, so an edit is picked up everywhere without a restart. A broken
    edit is logged with its file and line and kept in ``last_error``; the last good rules
    stay in force.
    """

    def __init__(self, directory: Path, sink_types: set[str] | None = None, check_every: float = 2.0):
        self.directory = Path(directory)
        self.sink_types = sink_types
        self.check_every = check_every
        self._lock = threading.Lock()
        self._book = load_rulebook(self.directory, sink_types)  # fails loudly at start-up
        self._fingerprint = fingerprint(self.directory)
        self._checked_at = time.monotonic()
        self.last_error: ConfigError | None = None

    @property
    def current(self) -> RuleBook:
        if time.monotonic() - self._checked_at >= self.check_every:
            self.reload_if_changed()
        return self._book

    def reload_if_changed(self) -> bool:
        with self._lock:
            self._checked_at = time.monotonic()
            latest = fingerprint(self.directory)
            if latest == self._fingerprint:
                return False
            self._fingerprint = latest
            return self._reload_locked()

    def reload(self) -> bool:
        """Reload now; True when the new rules are in force. Never raises ConfigError."""
        with self._lock:
            self._fingerprint = fingerprint(self.directory)
            return self._reload_locked()

    def _reload_locked(self) -> bool:
        try:
            self._book = load_rulebook(self.directory, self.sink_types)
        except ConfigError as exc:
            self.last_error = exc
            log.error("configuration not reloaded, last good rules kept:\n%s", exc)
            return False
        self.last_error = None
        log.info("configuration reloaded from %s", self.directory)
        return True
