"""Shared by the inbox's tests."""

from __future__ import annotations

import pytest

from tests.support.staff import fixture, submit


@pytest.fixture
def seeded(runtime):
    """Three requests from three doors: web (EN), phone (urgent), counter (anonymous)."""
    return {
        "light": submit(runtime, fixture("request__streetlight_en")),
        "water": submit(runtime, fixture("request__water_main_urgent")),
        "graffiti": submit(runtime, fixture("request__anonymous_walk_in")),
    }
