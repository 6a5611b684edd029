"""`gateway rules`: check the configuration folder and try a sentence against its rules."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from .settings import load_settings


@click.group()
def rules():
    """Routing rules in config/."""


def _config_dir(path: str | None) -> Path:
    return Path(path or str(load_settings()["GATEWAY_CONFIG_DIR"]))


def _load_book(path: str | None):
    from adapters import registry
    from router import load_rulebook

    return load_rulebook(_config_dir(path), set(registry.SINKS))


def check_config(settings) -> None:
    """Stop `gateway serve` with the problems of an invalid configuration."""
    from router import ConfigError

    try:
        _load_book(str(settings["GATEWAY_CONFIG_DIR"]))
    except ConfigError as exc:
        raise click.ClickException(f"the configuration is invalid:\n{exc}") from exc


@rules.command("check")
@click.argument("path", required=False)
def rules_check(path: str | None):
    """Validate the configuration folder (default: GATEWAY_CONFIG_DIR)."""
    from dedup import load_dedup_rules
    from router import ConfigError

    try:
        book = _load_book(path)
        load_dedup_rules(book.directory, set(book.categories))  # config/dedup.yaml too
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    click.echo(f"OK: {len(book.categories)} categories, {len(book.departments)} departments, "
               f"{len(book.rules)} rules, {len(book.areas.districts)} districts, "
               f"{len(book.addresses):,} addresses, {len(book.addresses.landmarks)} named places")


@rules.command("test")
@click.argument("text")
@click.option("--lang", type=click.Choice(["fr", "en"]), default=None, help="detected when absent")
@click.option("--channel", default="api", show_default=True)
@click.option("--lat", type=float, default=None)
@click.option("--lon", type=float, default=None)
@click.option("--address", default=None, help="the address given (default: the one TEXT names, if any)")
@click.option("--at", "when", default=None, help="ISO time of reception (default: now)")
@click.option("--config", "path", default=None, help="configuration folder")
def rules_test(text, lang, channel, lat, lon, address, when, path):
    """Show the routing decision for TEXT as JSON, with the rule that made it. Without
    --lat/--lon, the place its address (or TEXT) names in the address register locates it."""
    from normalizer.language import detect
    from router import ConfigError, tried

    try:
        book = _load_book(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    language = lang or detect(text, book.city.default_language)
    received = datetime.fromisoformat(when) if when else datetime.now(UTC)
    if received.tzinfo is None:
        received = received.replace(tzinfo=book.timezone)
    decision, place = tried(book, text, language, channel, received, lat, lon, address)
    out = {"language": language, **({"place": place.address, "lat": place.lat, "lon": place.lon} if place else {}),
           **decision.as_dict()}
    out["sla"] = f"{decision.sla_hours:g} h"
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))
