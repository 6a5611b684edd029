"""A copy of the sample city's config/ for a test to edit, and the sink types it may name."""

from __future__ import annotations

import shutil

import pytest

from adapters import registry
from tests.conftest import ROOT

SINKS = set(registry.SINKS)


@pytest.fixture
def config_dir(tmp_path):
    target = tmp_path / "config"
    shutil.copytree(ROOT / "config", target)
    return target
