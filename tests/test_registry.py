"""Every registered adapter has its fixtures and its test file; every fixture folder is used."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from adapters import registry

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"
# Registry keys whose fixtures or tests live under another adapter's name.
SHARED = {"email_smtp": "email", "web_form": "web_form"}


def all_test_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in TESTS.rglob("test_*.py"))


def test_every_registered_adapter_is_tested():
    text = all_test_text()
    names = set(registry.INBOUND) | set(registry.OUTBOUND) | set(registry.SINKS)
    for name in names:
        module = {**registry.INBOUND, **registry.OUTBOUND, **registry.SINKS}[name]
        owner = getattr(module, "__self__", None) or module
        qualified = getattr(owner, "__module__", "") or ""
        assert name in text or qualified.rsplit(".", 1)[-1] in text, f"no test mentions adapter {name}"


def test_every_inbound_adapter_has_fixtures():
    for name in registry.INBOUND:
        folder = FIXTURES / SHARED.get(name, name)
        assert folder.is_dir() and any(folder.iterdir()), f"no fixtures for inbound adapter {name}"


def test_every_fixture_file_is_used_by_a_test():
    text = all_test_text()
    for path in FIXTURES.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".eml", ".txt", ".csv", ".xml") and "README" not in path.name:
            assert path.stem in text or path.name in text or path.parent.name in text, f"unused fixture {path}"


@pytest.mark.parametrize("name", sorted(registry.SINKS))
def test_every_sink_has_docs_fixtures_and_tests(name):
    module = importlib.import_module(f"adapters.sinks.{name}")
    assert module.__doc__ and len(module.__doc__) > 200, "the docstring names the provider's docs and quirks"
    assert (FIXTURES / name).is_dir() and any((FIXTURES / name).iterdir())
    assert (TESTS / "sinks" / f"test_{name}.py").is_file()


@pytest.mark.parametrize("name", sorted(registry.SINKS))
def test_every_sink_can_check_its_settings(name):
    sink = registry.SINKS[name]({})
    assert callable(getattr(sink, "check", None)) and sink.type == name
