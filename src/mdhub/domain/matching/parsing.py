"""Parse an entity type's ``match:`` section into a :class:`MatchingSpec`, naming every problem.

The section, as in ``config/model.yaml``::

    match:
      match_threshold: 12          # score (log2 units) at or above which records are linked
      review_threshold: 6          # at or above: linked to a new golden record, and reviewed
      max_block_size: 200          # candidate blocks are capped at this size
      ambiguity_margin: 3          # a match below 12 + 3 with a rival golden record: review
      blocking:
        - {name: email, parts: [email]}
        - name: name_year
          parts: [{attribute: last_name, transform: soundex}, {attribute: birth_date, transform: year}]
      comparators:
        - {attribute: first_name, method: jaro_winkler, m: 0.9, u: 0.02, nicknames: true}
      rules:
        - {name: different_birth_date, attribute: birth_date, when: different, then: no_match}

Problems go to the model's collector with their key path (``entities.customer.match.comparators[0].m``)
and, for a closed set, the accepted values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from mdhub.domain.matching.spec import (
    BlockingKeySpec,
    BlockingPart,
    ComparatorSpec,
    MatchingSpec,
    MatchRule,
    Method,
    PhoneticAlgorithm,
    RuleOutcome,
    RuleWhen,
    Transform,
    default_levels,
)

__all__ = ["ProblemSink", "parse_matching"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_E = TypeVar("_E", bound=StrEnum)

_MATCH_KEYS = (
    "match_threshold",
    "review_threshold",
    "max_block_size",
    "ambiguity_margin",
    "blocking",
    "comparators",
    "rules",
)
_BLOCKING_KEYS = ("name", "parts", "unordered")
_PART_KEYS = ("attribute", "transform", "length")
_COMPARATOR_KEYS = ("attribute", "method", "m", "u", "agree", "disagree")
_RULE_KEYS = ("name", "attribute", "when", "then")

_STRING_OPTIONS = ("nicknames", "swap_with")
_OPTIONS: dict[Method, tuple[str, ...]] = {
    Method.EXACT: _STRING_OPTIONS,
    Method.JARO_WINKLER: _STRING_OPTIONS,
    Method.LEVENSHTEIN: _STRING_OPTIONS,
    Method.TOKEN_SET: _STRING_OPTIONS,
    Method.PHONETIC: (*_STRING_OPTIONS, "algorithm"),
    Method.DATE: (
        "tolerance_days",
        "tolerance_similarity",
        "swapped_day_month",
        "swapped_similarity",
    ),
    Method.NUMERIC: ("tolerance", "relative_tolerance"),
}
_ALL_OPTIONS = tuple(dict.fromkeys(o for options in _OPTIONS.values() for o in options))

# which attribute types each method / transform reads (None: any type)
_STRING = frozenset({"string"})
_DATES = frozenset({"date", "timestamp"})
_METHOD_TYPES: dict[Method, frozenset[str] | None] = {
    Method.EXACT: None,
    Method.JARO_WINKLER: _STRING,
    Method.LEVENSHTEIN: _STRING,
    Method.TOKEN_SET: frozenset({"string", "string_list"}),
    Method.PHONETIC: _STRING,
    Method.DATE: _DATES,
    Method.NUMERIC: frozenset({"integer", "number"}),
}
_TRANSFORM_TYPES: dict[Transform, frozenset[str] | None] = {
    Transform.VALUE: None,
    Transform.SOUNDEX: _STRING,
    Transform.METAPHONE: _STRING,
    Transform.YEAR: _DATES,
    Transform.PREFIX: _STRING,
    Transform.DIGITS: frozenset({"string", "integer"}),
    Transform.INITIAL: _STRING,
}


class ProblemSink(Protocol):
    """Where problems go: the model parser's collector (``add`` a message at a key path)."""

    def add(self, path: str, message: str) -> None:
        """Record one problem at ``path``."""

    def unknown_keys(self, path: str, data: Mapping[str, Any], accepted: tuple[str, ...]) -> None:
        """Record every key of ``data`` that is not ``accepted``."""


class _Counted:
    """Forwards problems to the model's collector and counts them."""

    def __init__(self, sink: ProblemSink) -> None:
        self.sink = sink
        self.count = 0

    def add(self, path: str, message: str) -> None:
        self.count += 1
        self.sink.add(path, message)

    def unknown_keys(self, path: str, data: Mapping[str, Any], accepted: tuple[str, ...]) -> None:
        for key in data:
            if key not in accepted:
                self.add(f"{path}.{key}", f"unknown key; accepted keys: {', '.join(accepted)}")


def _choices(enum: type[StrEnum]) -> str:
    return ", ".join(member.value for member in enum)


def _enum(problems: _Counted, path: str, value: Any, enum: type[_E], what: str) -> _E | None:
    try:
        return enum(value)
    except ValueError:
        problems.add(path, f"{value!r} is not a {what}; accepted: {_choices(enum)}")
        return None


def _mapping(problems: _Counted, path: str, value: Any) -> Mapping[str, Any] | None:
    if not isinstance(value, Mapping):
        problems.add(path, f"must be a mapping, got {type(value).__name__}")
        return None
    return value


def _list(problems: _Counted, path: str, value: Any, what: str) -> list[Any]:
    if value is None or value == []:
        problems.add(path, f"declare at least one {what}")
        return []
    if not isinstance(value, list):
        problems.add(path, f"must be a list of {what}s, got {type(value).__name__}")
        return []
    return value


def _number(
    problems: _Counted, path: str, value: Any, low: float | None = None, high: float | None = None
) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.add(path, f"must be a number, got {value!r}")
        return None
    if low is not None and high is not None and not low <= value <= high:
        problems.add(path, f"must be from {low:g} to {high:g}, got {value!r}")
        return None
    if low is not None and value < low:
        problems.add(path, f"must be at least {low:g}, got {value!r}")
        return None
    return float(value)


def _positive_int(problems: _Counted, path: str, value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.add(path, f"must be a positive integer, got {value!r}")
        return None
    return value


def _flag(problems: _Counted, path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        problems.add(path, f"must be true or false, got {value!r}")
        return False
    return value


def _unique_name(problems: _Counted, path: str, value: Any, seen: set[str]) -> str | None:
    if not isinstance(value, str) or not _NAME.match(value):
        problems.add(path, f"must be a name matching {_NAME.pattern}, got {value!r}")
        return None
    if value in seen:
        problems.add(path, f"{value!r} is declared twice")
        return None
    seen.add(value)
    return value


class _Context:
    """The entity's attributes (name -> type, None for one whose declaration is itself invalid)."""

    def __init__(self, problems: _Counted, attribute_types: Mapping[str, str | None]) -> None:
        self.problems = problems
        self.types = attribute_types

    def attribute(self, path: str, value: Any, accepted_types: frozenset[str] | None) -> str | None:
        if not isinstance(value, str) or value not in self.types:
            self.problems.add(
                path,
                f"{value!r} names no attribute of the entity; accepted: {', '.join(self.types)}",
            )
            return None
        attr_type = self.types[value]
        if accepted_types is not None and attr_type is not None and attr_type not in accepted_types:
            self.problems.add(
                path,
                f"attribute {value!r} is of type {attr_type}; this needs type "
                f"{' or '.join(sorted(accepted_types))}",
            )
            return None
        return value


def _parse_part(ctx: _Context, path: str, raw: Any) -> BlockingPart | None:
    if isinstance(raw, str):
        raw = {"attribute": raw}
    data = _mapping(ctx.problems, path, raw)
    if data is None:
        return None
    ctx.problems.unknown_keys(path, data, _PART_KEYS)
    transform = _enum(
        ctx.problems, f"{path}.transform", data.get("transform", "value"), Transform, "transform"
    )
    if "attribute" not in data:
        ctx.problems.add(f"{path}.attribute", "is required")
        return None
    accepted = _TRANSFORM_TYPES[transform] if transform is not None else None
    attribute = ctx.attribute(f"{path}.attribute", data["attribute"], accepted)
    length = 4
    if "length" in data:
        if transform is not Transform.PREFIX:
            ctx.problems.add(f"{path}.length", "applies to transform prefix only")
        length = _positive_int(ctx.problems, f"{path}.length", data["length"]) or 4
    if transform is None or attribute is None:
        return None
    return BlockingPart(attribute, transform, length)


def _parse_blocking(ctx: _Context, path: str, raw: Any) -> tuple[BlockingKeySpec, ...]:
    keys: list[BlockingKeySpec] = []
    names: set[str] = set()
    for index, item in enumerate(_list(ctx.problems, path, raw, "blocking key")):
        item_path = f"{path}[{index}]"
        data = _mapping(ctx.problems, item_path, item)
        if data is None:
            continue
        ctx.problems.unknown_keys(item_path, data, _BLOCKING_KEYS)
        name = _unique_name(ctx.problems, f"{item_path}.name", data.get("name"), names)
        raw_parts = _list(ctx.problems, f"{item_path}.parts", data.get("parts"), "part")
        parts = [
            _parse_part(ctx, f"{item_path}.parts[{i}]", part) for i, part in enumerate(raw_parts)
        ]
        unordered = _flag(ctx.problems, f"{item_path}.unordered", data.get("unordered", False))
        if name is not None and raw_parts and all(p is not None for p in parts):
            keys.append(
                BlockingKeySpec(name, tuple(p for p in parts if p is not None), bool(unordered))
            )
    return tuple(keys)


def _parse_options(
    ctx: _Context, path: str, data: Mapping[str, Any], method: Method | None
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    accepted = _OPTIONS[method] if method is not None else _ALL_OPTIONS
    for key in _ALL_OPTIONS:
        if key not in data:
            continue
        if key not in accepted:
            allowed = ", ".join(m.value for m in Method if key in _OPTIONS[m])
            ctx.problems.add(f"{path}.{key}", f"applies to method {allowed} only")
            continue
        value = data[key]
        option_path = f"{path}.{key}"
        if key in ("nicknames", "swapped_day_month"):
            options[key] = _flag(ctx.problems, option_path, value)
        elif key == "swap_with":
            options[key] = ctx.attribute(option_path, value, _STRING)
            if options[key] is not None and options[key] == data.get("attribute"):
                ctx.problems.add(option_path, "must name another attribute than the comparator's")
                options[key] = None
        elif key == "algorithm":
            options[key] = _enum(
                ctx.problems, option_path, value, PhoneticAlgorithm, "phonetic algorithm"
            )
        elif key == "tolerance_days":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                ctx.problems.add(option_path, f"must be a non-negative integer, got {value!r}")
            else:
                options[key] = value
        elif key in ("tolerance_similarity", "swapped_similarity"):
            options[key] = _number(ctx.problems, option_path, value, 0.0, 1.0)
        else:  # tolerance, relative_tolerance
            options[key] = _number(ctx.problems, option_path, value, 0.0, None)
    return {key: value for key, value in options.items() if value is not None}


def _parse_comparator(ctx: _Context, path: str, raw: Any) -> ComparatorSpec | None:
    problems = ctx.problems
    data = _mapping(problems, path, raw)
    if data is None:
        return None
    before = problems.count
    problems.unknown_keys(path, data, _COMPARATOR_KEYS + _ALL_OPTIONS)
    method = _enum(problems, f"{path}.method", data.get("method"), Method, "comparator method")
    attribute = ctx.attribute(
        f"{path}.attribute",
        data.get("attribute"),
        _METHOD_TYPES[method] if method is not None else None,
    )
    m = _number(problems, f"{path}.m", data.get("m"))
    u = _number(problems, f"{path}.u", data.get("u"))
    for key, value in (("m", m), ("u", u)):
        if value is not None and not 0.0 < value < 1.0:
            problems.add(f"{path}.{key}", f"must be between 0 and 1 (exclusive), got {value:g}")
    if m is not None and u is not None and 0.0 < u < 1.0 and 0.0 < m < 1.0 and m <= u:
        problems.add(
            f"{path}.m",
            f"must be greater than u ({u:g}): agreement must be likelier for a true match, "
            f"got {m:g}",
        )
    agree_default, disagree_default = default_levels(method or Method.EXACT)
    agree = _number(problems, f"{path}.agree", data["agree"], 0.0, 1.0) if "agree" in data else None
    disagree = (
        _number(problems, f"{path}.disagree", data["disagree"], 0.0, 1.0)
        if "disagree" in data
        else None
    )
    if (disagree if disagree is not None else disagree_default) >= (
        agree if agree is not None else agree_default
    ):
        problems.add(f"{path}.disagree", "must be below agree")
    options = _parse_options(ctx, path, data, method)
    if problems.count > before or method is None or attribute is None:
        return None
    assert m is not None and u is not None
    return ComparatorSpec(
        attribute=attribute, method=method, m=m, u=u, agree=agree, disagree=disagree, **options
    )


def _parse_rule(ctx: _Context, path: str, raw: Any, names: set[str]) -> MatchRule | None:
    data = _mapping(ctx.problems, path, raw)
    if data is None:
        return None
    ctx.problems.unknown_keys(path, data, _RULE_KEYS)
    name = _unique_name(ctx.problems, f"{path}.name", data.get("name"), names)
    attribute = ctx.attribute(f"{path}.attribute", data.get("attribute"), None)
    when = _enum(ctx.problems, f"{path}.when", data.get("when"), RuleWhen, "rule condition")
    then = _enum(ctx.problems, f"{path}.then", data.get("then"), RuleOutcome, "rule outcome")
    if name is None or attribute is None or when is None or then is None:
        return None
    return MatchRule(name, attribute, when, then)


def parse_matching(
    problems: ProblemSink, path: str, raw: Any, attribute_types: Mapping[str, str | None]
) -> MatchingSpec | None:
    """Parse an entity's ``match:`` section, reporting every problem to ``problems``.

    Args:
        problems: the model parser's collector.
        path: the section's key path, e.g. ``entities.customer.match``.
        raw: the section as loaded (``None``: the entity type does not match records).
        attribute_types: the entity's attribute names with their type names (``string``,
            ``date``...), or None for an attribute whose own declaration is invalid.

    Returns:
        The spec, or None when the section is absent or has problems.
    """
    if raw is None:
        return None
    counted = _Counted(problems)
    data = _mapping(counted, path, raw)
    if data is None:
        return None
    counted.unknown_keys(path, data, _MATCH_KEYS)
    ctx = _Context(counted, attribute_types)

    match_threshold = _number(counted, f"{path}.match_threshold", data.get("match_threshold"))
    review_threshold = _number(counted, f"{path}.review_threshold", data.get("review_threshold"))
    if (
        match_threshold is not None
        and review_threshold is not None
        and review_threshold > match_threshold
    ):
        counted.add(
            f"{path}.review_threshold",
            f"must be at most match_threshold ({match_threshold:g}), got {review_threshold:g}",
        )
    max_block_size = 200
    if "max_block_size" in data:
        max_block_size = (
            _positive_int(counted, f"{path}.max_block_size", data["max_block_size"]) or 200
        )
    ambiguity_margin = 0.0
    if "ambiguity_margin" in data:
        margin = _number(counted, f"{path}.ambiguity_margin", data["ambiguity_margin"], low=0)
        if margin is not None:
            ambiguity_margin = margin

    blocking = _parse_blocking(ctx, f"{path}.blocking", data.get("blocking"))
    comparators = tuple(
        c
        for index, item in enumerate(
            _list(counted, f"{path}.comparators", data.get("comparators"), "comparator")
        )
        if (c := _parse_comparator(ctx, f"{path}.comparators[{index}]", item)) is not None
    )
    raw_rules = data.get("rules")
    rule_names: set[str] = set()
    rules: list[MatchRule] = []
    if raw_rules is not None:
        if not isinstance(raw_rules, list):
            counted.add(f"{path}.rules", f"must be a list of rules, got {type(raw_rules).__name__}")
        else:
            for index, item in enumerate(raw_rules):
                rule = _parse_rule(ctx, f"{path}.rules[{index}]", item, rule_names)
                if rule is not None:
                    rules.append(rule)

    if counted.count:
        return None
    assert match_threshold is not None and review_threshold is not None
    return MatchingSpec(
        blocking=blocking,
        comparators=comparators,
        rules=tuple(rules),
        match_threshold=match_threshold,
        review_threshold=review_threshold,
        max_block_size=max_block_size,
        ambiguity_margin=ambiguity_margin,
    )
