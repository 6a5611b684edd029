"""Everything a request handler or a job needs, built once per process by create_app."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from adapters import registry
from adapters.errors import AdapterMisconfiguredError
from router import RuleBookHolder

from .db import Database

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: dict[str, Any]
    db: Database
    rules: RuleBookHolder
    jobs: Any = None  # gateway.queue.InlineQueue or RqQueue
    _adapters: dict[tuple[str, str], Any] = field(default_factory=dict)
    health: dict[str, dict] = field(default_factory=dict)  # adapter -> last success/error
    retention_done_at: Any = None  # the last retention passes in this process (gateway/retention.py)
    retention_payloads_after: int = 0  # raw payloads erased up to this id

    def public_url(self, path: str) -> str:
        return str(self.settings["GATEWAY_PUBLIC_URL"]).rstrip("/") + path

    def inbound_parser(self, name: str):
        return self._adapter("inbound", name, registry.INBOUND)

    def sink(self, sink_type: str):
        return self._adapter("sink", sink_type, registry.SINKS)

    def outbound(self, channel: str):
        """The adapter that writes to citizens on ``channel``, or None if there is none."""
        if channel not in registry.OUTBOUND:
            return None
        try:
            return self._adapter("outbound", channel, registry.OUTBOUND)
        except AdapterMisconfiguredError as exc:  # disabled, shown in health; others still work
            self.record_health(f"notify:{channel}", ok=False, detail=f"{type(exc).__name__}: {exc}")
            return None

    def misconfiguration(self, kind: str, name: str) -> str | None:
        """Why the adapter ``name`` ("inbound", "outbound" or "sink") cannot be built, or None."""
        table = {"inbound": registry.INBOUND, "outbound": registry.OUTBOUND, "sink": registry.SINKS}[kind]
        try:
            self._adapter(kind, name, table)
        except AdapterMisconfiguredError as exc:
            return str(exc)
        return None

    def _adapter(self, kind: str, name: str, table: dict):
        key = (kind, name)
        if key not in self._adapters:
            if name not in table:
                raise AdapterMisconfiguredError(f"no {kind} adapter named {name!r}")
            self._adapters[key] = table[name](self.settings)
        return self._adapters[key]

    def record_health(self, name: str, ok: bool, detail: str = "") -> None:
        from .models import utcnow

        row = self.health.setdefault(name, {})
        row["last_success" if ok else "last_error"] = utcnow().isoformat()
        row["misconfigured"] = not ok and detail.startswith("AdapterMisconfiguredError")
        if not ok:
            row["error"] = detail
