"""The entity model: which entity types exist, their attributes, sources and survivorship rules.

The model is data (``config/model.yaml``); :func:`parse_model` turns the loaded mapping into frozen
values and collects *every* problem, each naming the file, the key path and what is accepted.
Adding an entity type is a model entry, not a code change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mdhub.domain.errors import ModelError
from mdhub.domain.matching import MatchingSpec, parse_matching

__all__ = [
    "AttrType",
    "AttributeSpec",
    "EntityModel",
    "HubModel",
    "Rule",
    "SourceSpec",
    "SurvivalPlan",
    "parse_model",
]

SUPPORTED_MODEL_VERSIONS = (1,)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class AttrType(StrEnum):
    """The value types an attribute can have."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    TIMESTAMP = "timestamp"
    STRING_LIST = "string_list"


class Standardizer(StrEnum):
    """Standardizers an attribute can name (applied in order, after trimming whitespace)."""

    LOWER = "lower"
    UPPER = "upper"
    TITLE = "title"
    EMAIL = "email"
    PHONE_E164 = "phone_e164"
    COUNTRY_ISO2 = "country_iso2"


class Rule(StrEnum):
    """Survivorship rules: how one attribute's golden value is chosen among the sources."""

    SOURCE_PRIORITY = "source_priority"
    MOST_RECENT = "most_recent"
    MOST_FREQUENT = "most_frequent"
    LONGEST = "longest"
    MIN = "min"
    MAX = "max"
    UNION = "union"


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """One attribute of an entity type."""

    name: str
    type: AttrType
    survivorship: Rule
    required: bool = False
    description: str = ""
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    standardizers: tuple[Standardizer, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A source system allowed to publish an entity type, with its trust (higher wins)."""

    name: str
    trust: int
    description: str = ""


SurvivalPlan = tuple[tuple[str, AttributeSpec, Rule, str], ...]
"""Per attribute: name, spec, survivorship rule and the rule's name (:attr:`EntityModel.survival`)."""


@dataclass(frozen=True, slots=True)
class EntityModel:
    """An entity type: attributes in declaration order, its sources, and how its records match.

    ``matching`` is None for an entity type without a ``match:`` section: its source records never
    match each other (each one gets its own golden record).
    """

    name: str
    description: str
    attributes: Mapping[str, AttributeSpec]
    sources: Mapping[str, SourceSpec]
    default_rule: Rule
    matching: MatchingSpec | None = None
    default_region: str | None = None
    survival: SurvivalPlan = field(init=False, repr=False, compare=False)
    """Per attribute in declaration order: name, spec, survivorship rule and the rule's name,
    derived once (survivorship reads them for every golden version; an enum member's ``value`` is
    a property)."""

    def __post_init__(self) -> None:
        survival = tuple(
            (name, spec, spec.survivorship, spec.survivorship.value)
            for name, spec in self.attributes.items()
        )
        object.__setattr__(self, "survival", survival)

    def trust(self, source: str) -> int:
        """Return the trust of ``source`` (0 for a source the model does not know)."""
        spec = self.sources.get(source)
        return spec.trust if spec is not None else 0


@dataclass(frozen=True, slots=True)
class HubModel:
    """The whole model file."""

    version: int
    entities: Mapping[str, EntityModel]
    origin: str = "<model>"

    def entity(self, name: str) -> EntityModel:
        """Return the entity type ``name`` or raise a :class:`KeyError` naming the known ones."""
        try:
            return self.entities[name]
        except KeyError:
            raise KeyError(
                f"unknown entity type {name!r}; the model declares: {', '.join(self.entities)}"
            ) from None


_ENTITY_KEYS = (
    "description",
    "attributes",
    "sources",
    "survivorship",
    "match",
    "default_region",
)
_ATTR_KEYS = (
    "type",
    "required",
    "description",
    "min_length",
    "max_length",
    "pattern",
    "enum",
    "minimum",
    "maximum",
    "survivorship",
    "standardize",
)
_SOURCE_KEYS = ("trust", "description")
_SURVIVORSHIP_KEYS = ("default", "rules")


class _Problems:
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{self.origin}: {path}: {message}")

    def unknown_keys(self, path: str, data: Mapping[str, Any], accepted: tuple[str, ...]) -> None:
        for key in data:
            if key not in accepted:
                self.add(f"{path}.{key}", f"unknown key; accepted keys: {', '.join(accepted)}")


def _choices(enum: type[StrEnum]) -> str:
    return ", ".join(member.value for member in enum)


def _mapping(problems: _Problems, path: str, value: Any) -> Mapping[str, Any] | None:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.add(path, f"must be a mapping, got {type(value).__name__}")
        return None
    return value


def _optional_int(problems: _Problems, path: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.add(path, f"must be a non-negative integer, got {value!r}")
        return None
    return value


def _optional_number(problems: _Problems, path: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(path, f"must be a number, got {value!r}")
        return None
    return float(value)


def _rule(problems: _Problems, path: str, value: Any) -> Rule | None:
    try:
        return Rule(value)
    except ValueError:
        problems.add(path, f"{value!r} is not a survivorship rule; accepted: {_choices(Rule)}")
        return None


def _parse_attribute(
    problems: _Problems,
    path: str,
    name: str,
    raw: Any,
    default_rule: Rule,
    rules: Mapping[str, Any],
) -> AttributeSpec | None:
    if isinstance(raw, str):
        raw = {"type": raw}
    data = _mapping(problems, path, raw)
    if data is None:
        return None
    problems.unknown_keys(path, data, _ATTR_KEYS)
    # a bad type or rule does not stop the checks: every problem of the attribute is reported
    attr_type: AttrType | None
    try:
        attr_type = AttrType(data.get("type", "string"))
    except ValueError:
        problems.add(
            f"{path}.type", f"{data.get('type')!r} is not a type; accepted: {_choices(AttrType)}"
        )
        attr_type = None
    rule_value = data.get("survivorship", rules.get(name))
    rule = (
        default_rule if rule_value is None else _rule(problems, f"{path}.survivorship", rule_value)
    )
    if rule is Rule.UNION and attr_type not in (None, AttrType.STRING_LIST):
        problems.add(f"{path}.survivorship", "rule 'union' needs type string_list")
    if attr_type is AttrType.STRING_LIST and rule is not Rule.UNION and rule_value is None:
        rule = Rule.UNION
    pattern = data.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            problems.add(f"{path}.pattern", f"not a valid regular expression: {exc}")
    enum = data.get("enum")
    if enum is not None and (
        not isinstance(enum, list) or not enum or not all(isinstance(v, str) for v in enum)
    ):
        problems.add(f"{path}.enum", "must be a non-empty list of strings")
        enum = None
    required = data.get("required", False)
    if not isinstance(required, bool):
        problems.add(f"{path}.required", f"must be true or false, got {required!r}")
        required = False
    min_length = _optional_int(problems, f"{path}.min_length", data.get("min_length"))
    max_length = _optional_int(problems, f"{path}.max_length", data.get("max_length"))
    minimum = _optional_number(problems, f"{path}.minimum", data.get("minimum"))
    maximum = _optional_number(problems, f"{path}.maximum", data.get("maximum"))
    if attr_type is None or rule is None:
        return None
    return AttributeSpec(
        name=name,
        type=attr_type,
        survivorship=rule,
        required=required,
        description=str(data.get("description", "")),
        min_length=min_length,
        max_length=max_length,
        pattern=pattern,
        enum=tuple(enum) if enum is not None else None,
        minimum=minimum,
        maximum=maximum,
        standardizers=_standardizers(
            problems, f"{path}.standardize", data.get("standardize"), attr_type
        ),
    )


def _standardizers(
    problems: _Problems, path: str, value: Any, attr_type: AttrType
) -> tuple[Standardizer, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        problems.add(path, "must be a standardizer name or a list of them")
        return ()
    out: list[Standardizer] = []
    for item in items:
        try:
            out.append(Standardizer(item))
        except ValueError:
            problems.add(
                path, f"{item!r} is not a standardizer; accepted: {_choices(Standardizer)}"
            )
    if out and attr_type not in (AttrType.STRING, AttrType.STRING_LIST):
        problems.add(path, f"standardizers apply to string attributes, not {attr_type.value}")
        return ()
    return tuple(out)


def _parse_entity(problems: _Problems, path: str, name: str, raw: Any) -> EntityModel | None:
    data = _mapping(problems, path, raw)
    if data is None:
        return None
    problems.unknown_keys(path, data, _ENTITY_KEYS)
    surv = _mapping(problems, f"{path}.survivorship", data.get("survivorship")) or {}
    problems.unknown_keys(f"{path}.survivorship", surv, _SURVIVORSHIP_KEYS)
    default_rule = _rule(
        problems, f"{path}.survivorship.default", surv.get("default", "source_priority")
    )
    rules = _mapping(problems, f"{path}.survivorship.rules", surv.get("rules")) or {}

    attributes: dict[str, AttributeSpec] = {}
    raw_attrs = _mapping(problems, f"{path}.attributes", data.get("attributes"))
    if raw_attrs is not None and not raw_attrs:
        problems.add(f"{path}.attributes", "an entity type needs at least one attribute")
    for attr_name, attr_raw in (raw_attrs or {}).items():
        attr_path = f"{path}.attributes.{attr_name}"
        if not isinstance(attr_name, str) or not _NAME.match(attr_name):
            problems.add(attr_path, f"attribute names must match {_NAME.pattern}")
            continue
        spec = _parse_attribute(
            problems, attr_path, attr_name, attr_raw, default_rule or Rule.SOURCE_PRIORITY, rules
        )
        if spec is not None:
            attributes[attr_name] = spec
    for rule_attr in rules:
        if raw_attrs is not None and rule_attr not in raw_attrs:
            problems.add(
                f"{path}.survivorship.rules.{rule_attr}", "names no attribute of the entity"
            )

    sources: dict[str, SourceSpec] = {}
    raw_sources = _mapping(problems, f"{path}.sources", data.get("sources"))
    if raw_sources is not None and not raw_sources:
        problems.add(f"{path}.sources", "an entity type needs at least one source")
    for source_name, source_raw in (raw_sources or {}).items():
        source_path = f"{path}.sources.{source_name}"
        if not isinstance(source_name, str) or not _NAME.match(source_name):
            problems.add(source_path, f"source names must match {_NAME.pattern}")
            continue
        source_data = _mapping(problems, source_path, source_raw)
        if source_data is None:
            continue
        problems.unknown_keys(source_path, source_data, _SOURCE_KEYS)
        trust = source_data.get("trust", 0)
        if isinstance(trust, bool) or not isinstance(trust, int) or not 0 <= trust <= 100:
            problems.add(f"{source_path}.trust", f"must be an integer from 0 to 100, got {trust!r}")
            continue
        sources[source_name] = SourceSpec(
            source_name, trust, str(source_data.get("description", ""))
        )
    # an attribute whose own declaration is invalid (type None) is not reported again by `match`
    declared = {
        attr_name: attributes[attr_name].type.value if attr_name in attributes else None
        for attr_name in (raw_attrs or {})
        if isinstance(attr_name, str)
    }
    matching = parse_matching(problems, f"{path}.match", data.get("match"), declared)
    return EntityModel(
        name=name,
        description=str(data.get("description", "")),
        attributes=attributes,
        sources=sources,
        default_rule=default_rule or Rule.SOURCE_PRIORITY,
        matching=matching,
        default_region=_region(problems, f"{path}.default_region", data.get("default_region")),
    )


def _region(problems: _Problems, path: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z]{2}", value):
        problems.add(path, f"must be an ISO 3166-1 alpha-2 code such as DE or US, got {value!r}")
        return None
    return value


def parse_model(data: Any, origin: str = "<model>") -> HubModel:
    """Build a :class:`HubModel` from loaded data, or raise one error listing every problem.

    Args:
        data: the model as loaded from YAML/JSON (a mapping).
        origin: where it came from (a file path), named in every message.

    Raises:
        ModelError: one line per problem, each naming ``origin``, the key path and what is accepted.
    """
    problems = _Problems(origin)
    top = _mapping(problems, "(top level)", data)
    if top is None:
        raise ModelError("\n".join(problems.items))
    problems.unknown_keys("(top level)", top, ("model_version", "entities"))
    version = top.get("model_version")
    # 1.0 == 1 and True == 1 in Python: only a real integer names a model version
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or version not in SUPPORTED_MODEL_VERSIONS
    ):
        problems.add(
            "model_version",
            f"{version!r} is not supported; accepted: {', '.join(map(str, SUPPORTED_MODEL_VERSIONS))}",
        )
    entities: dict[str, EntityModel] = {}
    raw_entities = _mapping(problems, "entities", top.get("entities"))
    if raw_entities is not None and not raw_entities:
        problems.add("entities", "declare at least one entity type")
    for name, raw in (raw_entities or {}).items():
        if not isinstance(name, str) or not _NAME.match(name):
            problems.add(f"entities.{name}", f"entity names must match {_NAME.pattern}")
            continue
        entity = _parse_entity(problems, f"entities.{name}", name, raw)
        if entity is not None:
            entities[name] = entity
    if problems.items:
        raise ModelError(
            f"the entity model is invalid ({len(problems.items)} problem(s)):\n"
            + "\n".join(problems.items)
        )
    assert isinstance(version, int)
    return HubModel(version=version, entities=entities, origin=origin)
