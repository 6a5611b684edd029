"""The shape of config/: city, service catalogue, departments, rules, templates.

Pydantic models validate each file; cross-file references (a rule naming a department,
a category naming a sink type) are checked by the loader with the same file/line errors.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Priority = Literal["urgent", "routine", "deferrable"]
Kind = Literal["service_request", "complaint", "information_request", "suggestion"]
Language = Literal["fr", "en"]
Channel = Literal["phone", "sms", "email", "messenger", "telegram", "walk_in", "web", "open311", "api"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{2,64}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Names(_Model):
    fr: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def get(self, language: str) -> str:
        return self.en if language == "en" else self.fr


class Keywords(_Model):
    fr: list[str] = Field(default_factory=list)
    en: list[str] = Field(default_factory=list)

    def all(self) -> list[str]:
        return self.fr + self.en


class BusinessHours(_Model):
    start: str = Field("08:00", pattern=r"^\d{2}:\d{2}$")
    end: str = Field("17:00", pattern=r"^\d{2}:\d{2}$")
    days: list[Weekday] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])
    holidays: str | None = Field(None, pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")  # "CA-QC": closed on its holidays
    closed: list[Annotated[str, StringConstraints(pattern=r"^(\d{4}-)?\d{2}-\d{2}$")]] = Field(default_factory=list)


class City(_Model):
    name: Names
    default_language: Language = "fr"
    timezone: str = "America/Toronto"
    phone_region: str = Field("CA", pattern=r"^[A-Z]{2}$")
    code_prefix: str = Field("R", pattern=r"^[A-Z]{1,3}$")
    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    triage_department: Code
    triage_sla_hours: float = Field(24, gt=0)
    reply_to: str | None = None


class CityFile(_Model):
    city: City


class AttributeValue(_Model):
    key: str = Field(min_length=1, max_length=64)
    name: Names


class Attribute(_Model):
    """A question the service asks (Open311 service definition attribute)."""

    code: Code
    datatype: Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"] = "string"
    required: bool = False
    variable: bool = True  # False: an information shown to the citizen, no answer expected
    description: Names
    order: int | None = None
    values: list[AttributeValue] = Field(default_factory=list)

    @model_validator(mode="after")
    def _lists_have_values(self):
        if self.datatype.endswith("valuelist") and not self.values:
            raise ValueError(f"attribute {self.code}: a {self.datatype} needs values")
        return self


class Category(_Model):
    code: Code
    name: Names
    kind: Kind = "service_request"
    keywords: Keywords = Field(default_factory=Keywords)
    department: Code
    priority: Priority = "routine"
    sla_hours: float = Field(gt=0, le=24 * 365)
    attributes: list[Attribute] = Field(default_factory=list)


class CatalogueFile(_Model):
    categories: list[Category] = Field(min_length=1)


class SinkTarget(BaseModel):
    """One delivery target: ``type`` picks the adapter, the other keys are its settings."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)
    type: str = Field(min_length=1)

    def settings(self) -> dict:
        return self.model_dump()


class Department(_Model):
    code: Code
    name: Names
    language: Language = "fr"
    sinks: list[SinkTarget] = Field(default_factory=list)


class DepartmentsFile(_Model):
    departments: list[Department] = Field(min_length=1)


class When(_Model):
    category: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    channel: list[Channel] = Field(default_factory=list)
    district: list[str] = Field(default_factory=list)
    priority: list[Priority] = Field(default_factory=list)
    after_hours: bool | None = None


class Then(_Model):
    category: str | None = None
    department: str | None = None
    priority: Priority | None = None
    sla_hours: float | None = Field(None, gt=0, le=24 * 365)
    sinks: list[SinkTarget] = Field(default_factory=list)
    template: str | None = None


class Rule(_Model):
    name: str = Field(min_length=1, max_length=80)
    description: str | None = None
    when: When
    then: Then


class RulesFile(_Model):
    rules: list[Rule] = Field(default_factory=list)


class Template(_Model):
    title: str | None = Field(None, min_length=1, max_length=80)  # a ready-made reply's name, for agents
    subject: str | None = None
    body: str = Field(min_length=1)


class TemplatesFile(_Model):
    templates: dict[str, dict[Language, Template]]


class NamedPlace(_Model):
    """A park, an arena, the city hall: a place citizens name instead of an address."""

    name: Names
    also: list[str] = Field(default_factory=list)  # other names citizens give it, in any language
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class PlacesFile(_Model):
    places: list[NamedPlace] = Field(default_factory=list)
