"""Every registered sink has its module docstring, its fixture folder and its test file."""

from __future__ import annotations

import importlib

import pytest

from adapters import registry

from .conftest import FIXTURES, ROOT


@pytest.mark.parametrize("name", sorted(registry.SINKS))
def test_every_sink_has_docs_fixtures_and_tests(name):
    module = importlib.import_module(f"adapters.sinks.{name}")
    assert module.__doc__ and len(module.__doc__) > 200, "the docstring names the provider's docs and quirks"
    assert (FIXTURES / name).is_dir() and any((FIXTURES / name).iterdir())
    assert (ROOT / "tests" / "sinks" / f"test_{name}.py").is_file()


@pytest.mark.parametrize("name", sorted(registry.SINKS))
def test_every_sink_can_check_its_settings(name):
    sink = registry.SINKS[name]({})
    assert callable(getattr(sink, "check", None)) and sink.type == name
