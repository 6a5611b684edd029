"""Loads and validates the whole of config/ into one immutable RuleBook.

Files (all under the config directory): city.yaml, catalogue.yaml, departments.yaml,
rules.yaml, templates.yaml, districts.geojson, addresses.csv and places.yaml (both optional).
Every problem is reported with its file, line and field; the first load of a broken
configuration fails, a later one keeps the last good RuleBook (see holder.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ValidationError

from . import schema
from .addresses import AddressRegister
from .areas import Areas
from .categorize import Categorizer, PhraseIndex
from .closed_days import ClosedDays, problem_with
from .places import Landmarks
from .yamlfile import ConfigError, LocatedDocument, Problem, load

FILES = ("city.yaml", "catalogue.yaml", "departments.yaml", "rules.yaml", "templates.yaml")
AREAS_FILE = "districts.geojson"
ADDRESSES_FILE = "addresses.csv"  # the city's address register: optional
PLACES_FILE = "places.yaml"  # its named places (parks, arenas…): optional
REQUIRED_TEMPLATES = ("acknowledgement", "status_update")


@dataclass
class RuleBook:
    directory: Path
    city: schema.City
    categories: dict[str, schema.Category]
    departments: dict[str, schema.Department]
    rules: list[schema.Rule]
    templates: dict[str, dict[str, schema.Template]]
    areas: Areas
    categorizer: Categorizer
    rule_keywords: PhraseIndex
    timezone: ZoneInfo
    addresses: AddressRegister = field(default_factory=lambda: AddressRegister())
    closed_days: ClosedDays = field(default_factory=ClosedDays)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def category_name(self, code: str | None, language: str) -> str:
        if code and code in self.categories:
            return self.categories[code].name.get(language)
        return "Triage 311" if language == "fr" else "311 triage"

    def department_name(self, code: str | None, language: str) -> str:
        """Its name in ``language``; the code itself for a department no longer configured."""
        if code and code in self.departments:
            return self.departments[code].name.get(language)
        return code or "—"


def fingerprint(directory: Path) -> tuple:
    """Changes whenever a configuration file is edited, added or removed."""
    rows = []
    for name in FILES + (AREAS_FILE, ADDRESSES_FILE, PLACES_FILE):
        path = directory / name
        if path.exists():
            stat = path.stat()
            rows.append((name, stat.st_mtime_ns, stat.st_size))
    return tuple(rows)


def load_rulebook(directory: Path, sink_types: set[str] | None = None) -> RuleBook:
    """Raises ConfigError listing every problem found (file, line, field, message)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError([Problem(str(directory), None, "", "configuration folder not found")])
    problems: list[Problem] = []
    docs, models = {}, {}
    for name, model in (
        ("city.yaml", schema.CityFile),
        ("catalogue.yaml", schema.CatalogueFile),
        ("departments.yaml", schema.DepartmentsFile),
        ("rules.yaml", schema.RulesFile),
        ("templates.yaml", schema.TemplatesFile),
    ):
        doc, parsed = _validate(directory / name, model, problems)
        docs[name], models[name] = doc, parsed
    areas = None
    try:
        areas = Areas.load(directory / AREAS_FILE)
    except ConfigError as exc:
        problems += exc.problems
    addresses = None
    try:
        addresses = AddressRegister.load(directory / ADDRESSES_FILE)
    except ConfigError as exc:
        problems += exc.problems
    city = models["city.yaml"]
    try:  # named in the city's language
        landmarks = Landmarks.load(directory / PLACES_FILE, city.city.default_language if city else "fr")
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    addresses.landmarks = landmarks
    book = _assemble(directory, models, areas)
    book.addresses = addresses
    _check_references(book, docs, sink_types, problems)
    if problems:
        raise ConfigError(problems)
    return book


def _validate(path: Path, model: type[BaseModel], problems: list[Problem]):
    if not path.exists():
        problems.append(Problem(str(path), None, "", "file missing"))
        return None, None
    try:
        doc = load(path)
    except ConfigError as exc:
        problems += exc.problems
        return None, None
    if not isinstance(doc.data, dict):
        problems.append(Problem(str(path), 1, "", "expected a mapping at the top level"))
        return doc, None
    try:
        return doc, model.model_validate(doc.data)
    except ValidationError as exc:
        for error in exc.errors():
            problems.append(doc.problem(tuple(error["loc"]), error["msg"]))
        return doc, None


def _assemble(directory: Path, models: dict, areas: Areas) -> RuleBook:
    city = models["city.yaml"].city
    categories = {c.code: c for c in models["catalogue.yaml"].categories}
    rules = models["rules.yaml"].rules
    rule_phrases = {str(i): r.when.keywords for i, r in enumerate(rules)}  # by position, as decide reads them
    try:
        timezone = ZoneInfo(city.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        timezone = ZoneInfo("UTC")  # reported as a problem by _check_references
    return RuleBook(
        directory=directory,
        city=city,
        categories=categories,
        departments={d.code: d for d in models["departments.yaml"].departments},
        rules=rules,
        templates=models["templates.yaml"].templates,
        areas=areas,
        categorizer=Categorizer({code: c.keywords.all() for code, c in categories.items()}, rule_phrases),
        rule_keywords=PhraseIndex(rule_phrases),  # for a message whose category was given: no categorizing
        timezone=timezone,
        closed_days=ClosedDays(city.business_hours.holidays, city.business_hours.closed),
    )


def _check_references(book: RuleBook, docs: dict, sink_types, problems: list[Problem]) -> None:
    city, cat, dep, rul, tpl = (docs[n] for n in FILES)
    ok_categories, ok_departments = set(book.categories), set(book.departments)
    ok_districts = set(book.areas.districts)

    def expect(doc: LocatedDocument, loc: tuple, value, allowed: set, what: str) -> None:
        if value is not None and value not in allowed:
            choices = ", ".join(sorted(allowed)) or "none defined"
            problems.append(doc.problem(loc, f"unknown {what} '{value}' (known: {choices})"))

    try:
        ZoneInfo(book.city.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(city.problem(("city", "timezone"), f"unknown time zone '{book.city.timezone}'"))
    expect(city, ("city", "triage_department"), book.city.triage_department, ok_departments, "department")
    hours = book.city.business_hours
    for where, what in problem_with(hours.holidays, hours.closed):
        problems.append(city.problem(("city", "business_hours", *where), what))
    _check_unique(cat, "categories", [c.code for c in book.categories.values()], problems)
    for i, category in enumerate(book.categories.values()):
        expect(cat, ("categories", i, "department"), category.department, ok_departments, "department")
    for i, department in enumerate(book.departments.values()):
        for j, sink in enumerate(department.sinks):
            if sink_types is not None:
                expect(dep, ("departments", i, "sinks", j, "type"), sink.type, sink_types, "sink type")
    for i, rule in enumerate(book.rules):
        for j, code in enumerate(rule.when.category):
            expect(rul, ("rules", i, "when", "category", j), code, ok_categories, "category")
        for j, code in enumerate(rule.when.district):
            expect(rul, ("rules", i, "when", "district", j), code, ok_districts, "district")
        expect(rul, ("rules", i, "then", "category"), rule.then.category, ok_categories, "category")
        expect(rul, ("rules", i, "then", "department"), rule.then.department, ok_departments, "department")
        expect(rul, ("rules", i, "then", "template"), rule.then.template, set(book.templates), "template")
        for j, sink in enumerate(rule.then.sinks):
            if sink_types is not None:
                expect(rul, ("rules", i, "then", "sinks", j, "type"), sink.type, sink_types, "sink type")
    _check_unique(rul, "rules", [r.name for r in book.rules], problems, key="name")
    _check_templates(book, tpl, problems)


def _check_unique(doc, section: str, values: list[str], problems, key: str = "code") -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            problems.append(doc.problem((section, i, key), f"duplicate {key} '{value}'"))
        seen.add(value)


def _check_templates(book: RuleBook, doc: LocatedDocument, problems: list[Problem]) -> None:
    env = SandboxedEnvironment()
    for name in REQUIRED_TEMPLATES:
        for language in ("fr", "en"):
            if language not in book.templates.get(name, {}):
                problems.append(doc.problem(("templates", name), f"missing the '{language}' version"))
    for name, versions in book.templates.items():
        for language, template in versions.items():
            for part in ("subject", "body"):
                text = getattr(template, part)
                try:
                    env.parse(text or "")
                except TemplateSyntaxError as exc:
                    loc = ("templates", name, language, part)
                    problems.append(doc.problem(loc, f"template error: {exc.message}"))
