"""A backlog of stored web-form messages for the pipeline to work through."""

from __future__ import annotations

import json

from gateway.intake import store_inbound


def store_web_forms(runtime, count: int, prefix: str) -> list[int]:
    """``count`` web-form reports stored as received (not yet processed), each from its own
    citizen; their inbound ids."""
    ids = []
    for i in range(count):
        document = {"channel": "web", "description": f"Nid de poule profond devant le {10 + 2 * i} chemin des Outardes",
                    "citizen": {"email": f"{prefix}{i}@example.org"}}
        ids.append(store_inbound(runtime, "web_form", f"{prefix}:{i}", json.dumps(document).encode(),
                                 "application/json")[0])
    return ids
