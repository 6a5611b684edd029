"""The routing decision: category, department, priority, SLA, sinks, and the rule that made it.

Order of precedence, so an agent can always tell why: the category's defaults from the
catalogue (or the 311 triage queue when no category is recognized), then the FIRST rule of
rules.yaml whose `when` holds, whose `then` overrides those defaults field by field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import datetime, time

from .addresses import Place
from .categorize import Categorization
from .loader import RuleBook
from .schema import Rule, SinkTarget

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Facts:
    """What the router looks at, all already normalized."""

    text: str
    language: str
    channel: str
    received_at: datetime  # timezone-aware
    lat: float | None = None
    lon: float | None = None
    category: str | None = None  # given explicitly by the submitter or an agent


@dataclass
class Decision:
    category: str | None
    category_name: str
    kind: str
    department: str
    priority: str
    sla_hours: float
    sinks: list[dict]
    rule: str | None
    matched_by: str  # "rule", "category", "explicit_category" or "triage"
    district: str | None
    after_hours: bool
    template: str
    categorization: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """What ``dataclasses.asdict`` gives (containers copied all the way down), without its
        deep copy of every leaf: the leaves here are immutable (str, numbers, bool, None)."""
        return {name: _copied(getattr(self, name)) for name in _DECISION_FIELDS}


def _copied(value):
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_copied(item) for item in value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


_DECISION_FIELDS = tuple(f.name for f in fields(Decision))


def tried(book: RuleBook, text: str, language: str, channel: str, received_at: datetime, lat: float | None = None,
          lon: float | None = None, address: str | None = None) -> tuple[Decision, Place | None]:
    """The decision for a sentence an administrator tries (``gateway rules test``, the rules
    console), reached as the pipeline reaches it for a message: without coordinates, the
    place its address, else its words, name in the city's address register (a house, a
    corner) gives them, hence its district. Returns the decision and that place."""
    place = None
    if lat is None or lon is None:
        place = book.addresses.find(address) if address else book.addresses.find_in_text(text)
        if place is not None:
            lat, lon = place.lat, place.lon
    return decide(book, Facts(text=text, language=language, channel=channel, received_at=received_at,
                              lat=lat, lon=lon)), place


def decide(book: RuleBook, facts: Facts) -> Decision:
    """Applies the catalogue and the rules to ``facts``. Raises KeyError for an unknown
    explicit category (callers validate it first)."""
    if facts.category:
        book.categories[facts.category]  # noqa: B018 - validates the explicit category
        found = Categorization(facts.category, 1.0, matched=["(explicit)"])
        keyword_hits = {m.category for m in book.rule_keywords.matches(facts.text)}
    else:
        found, keyword_hits = book.categorizer.read(facts.text)  # one pass for the categories and the rules
    district = book.areas.locate(facts.lat, facts.lon)
    after_hours = _after_hours(book, facts.received_at)
    rule = _first_rule(book, facts, found.category, district.code if district else None, after_hours,
                       {int(hit) for hit in keyword_hits})
    category = (rule.then.category if rule and rule.then.category else None) or found.category
    base = book.categories.get(category) if category else None
    then = rule.then if rule else None
    department = (then and then.department) or (base.department if base else book.city.triage_department)
    extra_sinks = list(then.sinks) if then else []
    matched_by = "rule" if rule else ("explicit_category" if facts.category else ("category" if base else "triage"))
    return Decision(
        category=category,
        category_name=book.category_name(category, facts.language),
        kind=base.kind if base else "service_request",
        department=department,
        priority=(then and then.priority) or (base.priority if base else "routine"),
        sla_hours=(then and then.sla_hours) or (base.sla_hours if base else book.city.triage_sla_hours),
        sinks=_sinks(book.departments[department].sinks + extra_sinks, book.departments[department].language),
        rule=rule.name if rule else None,
        matched_by=matched_by,
        district=district.code if district else None,
        after_hours=after_hours,
        template=(then and then.template) or "acknowledgement",
        categorization=found.as_dict(),
    )


def _first_rule(book, facts: Facts, category, district, after_hours, keyword_hits: set[int]) -> Rule | None:
    """``keyword_hits``: the rules (by position) one of whose keyword phrases the text holds."""
    default_priority = book.categories[category].priority if category in book.categories else "routine"
    for i, rule in enumerate(book.rules):
        when = rule.when
        if when.category and category not in when.category:
            continue
        if when.keywords and i not in keyword_hits:
            continue
        if when.channel and facts.channel not in when.channel:
            continue
        if when.district and district not in when.district:
            continue
        if when.priority and default_priority not in when.priority:
            continue
        if when.after_hours is not None and when.after_hours != after_hours:
            continue
        return rule
    return None


def _after_hours(book: RuleBook, moment: datetime) -> bool:
    """Outside the city's business hours, or on a day it is closed (a holiday)."""
    local = moment.astimezone(book.timezone)
    hours = book.city.business_hours
    start, end = time.fromisoformat(hours.start), time.fromisoformat(hours.end)
    return (WEEKDAYS[local.weekday()] not in hours.days or not (start <= local.time() < end)
            or book.closed_days.closed_on(local.date()) is not None)


def _sinks(targets: list[SinkTarget], language: str) -> list[dict]:
    """Sink settings, deduplicated (a rule may repeat the department's own sink)."""
    out: list[dict] = []
    for target in targets:
        settings = {"language": language, **target.settings()}
        if settings not in out:
            out.append(settings)
    return out
