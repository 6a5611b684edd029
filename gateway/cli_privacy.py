"""`gateway privacy`: the retention of citizens' personal data (gateway/retention.py), by hand."""

from __future__ import annotations

import json
from datetime import timedelta

import click


@click.group()
def privacy():
    """Citizens' personal data: what the retention period erases, and erasing one citizen."""


@privacy.command("purge")
@click.option("--days", type=float, default=None, help="the period (default: GATEWAY_RETENTION_DAYS)")
@click.option("--dry-run", is_flag=True, help="count what would be erased, erase nothing")
def purge(days, dry_run):
    """Forget the citizens whose requests all ended longer ago than the period, and erase the
    raw payloads older than it (what the scheduler does every hour)."""
    from .cli import _app
    from .models import utcnow
    from .retention import run

    runtime = _app().extensions["runtime"]
    days = float(runtime.settings.get("GATEWAY_RETENTION_DAYS") or 0) if days is None else days
    if not days > 0:  # 0, negative or nan: no period
        raise click.ClickException(f"no retention period: {days:g} days (--days, else GATEWAY_RETENTION_DAYS, must be above 0); "
                                   "nothing was erased")
    now = utcnow()
    done = run(runtime, now - timedelta(days=days), now, dry_run=dry_run)
    click.echo(json.dumps({"days": days, "dry_run": dry_run, "citizens_forgotten": done["citizens"],
                           "raw_payloads_erased": done["payloads"]}))


@privacy.command("forget")
@click.argument("contact")
def forget(contact):
    """Forget at once the citizen reached at CONTACT (an e-mail address, a phone number, a
    chat id), on their request: their open requests go on, without news to them."""
    from .cli import _app
    from .retention import forget as forget_citizen
    from .retention import reached_at

    runtime = _app().extensions["runtime"]
    with runtime.db.session() as session:
        citizen_id = reached_at(session, _stored_forms(runtime, contact))
        if citizen_id is None:
            raise click.ClickException(f"no citizen is reached at {contact}: nothing was changed")
        forget_citizen(session, citizen_id)
    click.echo(f"citizen {citizen_id} forgotten: name and contact points erased")


def _stored_forms(runtime, contact: str) -> list[str]:
    """The ways CONTACT may be stored: as given (a chat id), an e-mail address in lower case,
    a phone number in E.164 ("(819) 555-0177" and "8195550177" are "+18195550177")."""
    from normalizer.phone import to_e164

    contact = contact.strip()
    phone = to_e164(contact, runtime.rules.current.city.phone_region) if "@" not in contact else None
    return list(dict.fromkeys(filter(None, [contact, contact.lower() if "@" in contact else None, phone])))
