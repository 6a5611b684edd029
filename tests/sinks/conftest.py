"""A routed request as sinks receive it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.base import RequestSummary


@pytest.fixture
def summary() -> RequestSummary:
    return RequestSummary(
        code="R-2026-4821735", category="pothole", category_name="Nid-de-poule", department="travaux_publics",
        priority="routine", status="routed", channel="api", language="fr",
        description="Gros nid-de-poule devant le 145 rue Wellington.", address="145, rue Wellington",
        district="centre", lat=45.4405, lon=-75.719, sla_due_at=datetime(2026, 11, 25, 17, 0, tzinfo=UTC),
        created_at=datetime(2026, 11, 22, 9, 0, tzinfo=UTC), track_url="http://127.0.0.1:8311/track/R-2026-4821735",
        rule=None, attachments=("http://127.0.0.1:8311/attachments/7",),
    )
