"""Validate and standardize a candidate change against its entity model.

Every violation is collected (never just the first) as a :class:`Reason` with a stable code.
Validation never raises on any input: bad data is data.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import replace
from functools import lru_cache

from mdhub.domain.model import AttributeSpec, AttrType, EntityModel
from mdhub.domain.records import CandidateChange, Op, Reason, Value

__all__ = ["ReasonCode", "check_attribute", "standardize", "validate_change"]


class ReasonCode:
    """The stable reason codes of the rejected topic (documented for producers)."""

    UNDECODABLE = "UNDECODABLE"
    UNKNOWN_SCHEMA = "UNKNOWN_SCHEMA"
    INVALID_UTF8 = "INVALID_UTF8"
    MISSING_KEY = "MISSING_KEY"
    KEY_MISMATCH = "KEY_MISMATCH"
    WRONG_ENTITY = "WRONG_ENTITY"
    OVERSIZED = "OVERSIZED"
    TYPE = "TYPE"
    FUTURE_TIMESTAMP = "FUTURE_TIMESTAMP"
    UNKNOWN_SOURCE = "UNKNOWN_SOURCE"
    REQUIRED = "REQUIRED"
    TOO_SHORT = "TOO_SHORT"
    TOO_LONG = "TOO_LONG"
    PATTERN = "PATTERN"
    NOT_ALLOWED = "NOT_ALLOWED"
    BELOW_MINIMUM = "BELOW_MINIMUM"
    ABOVE_MAXIMUM = "ABOVE_MAXIMUM"
    STALE_SOURCE_VERSION = "STALE_SOURCE_VERSION"
    CONFLICTING_SOURCE_VERSION = "CONFLICTING_SOURCE_VERSION"


_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _standardize_value(value: Value) -> Value | None:
    if isinstance(value, str):
        if "  " not in value and value.isprintable() and value == value.strip():
            return value or None  # the common case: nothing to collapse or trim
        cleaned = _SPACES.sub(" ", value).strip()
        return cleaned or None
    if isinstance(value, tuple):
        items = tuple(dict.fromkeys(v for v in (_SPACES.sub(" ", s).strip() for s in value) if v))
        return items or None
    return value


def standardize(change: CandidateChange) -> CandidateChange:
    """Return ``change`` with trimmed strings; empty strings and lists count as absent."""
    cleaned: dict[str, Value] = {}
    for name, value in change.attributes.items():
        std = _standardize_value(value)
        if std is not None:
            cleaned[name] = std
    return replace(change, attributes=cleaned)


def _check_value(spec: AttributeSpec, value: Value) -> list[Reason]:
    reasons: list[Reason] = []
    name = spec.name
    if isinstance(value, str | tuple):
        length = len(value)
        if spec.min_length is not None and length < spec.min_length:
            reasons.append(
                Reason(ReasonCode.TOO_SHORT, f"{name} is shorter than {spec.min_length}", name)
            )
        if spec.max_length is not None and length > spec.max_length:
            reasons.append(
                Reason(ReasonCode.TOO_LONG, f"{name} is longer than {spec.max_length}", name)
            )
    if isinstance(value, str):
        if spec.pattern is not None and not _compiled(spec.pattern).fullmatch(value):
            reasons.append(
                Reason(ReasonCode.PATTERN, f"{name} {value!r} does not match {spec.pattern}", name)
            )
        if spec.enum is not None and value not in spec.enum:
            reasons.append(
                Reason(
                    ReasonCode.NOT_ALLOWED,
                    f"{name} {value!r} is not one of: {', '.join(spec.enum)}",
                    name,
                )
            )
    if spec.type in (AttrType.INTEGER, AttrType.NUMBER) and isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            # NaN would pass every range check, win or lose a max/min survivorship at random and
            # make a golden record that no JSON reader takes
            reasons.append(
                Reason(ReasonCode.TYPE, f"{name} must be a finite number, got {value!r}", name)
            )
            return reasons
        if spec.minimum is not None and value < spec.minimum:
            reasons.append(
                Reason(ReasonCode.BELOW_MINIMUM, f"{name} {value} is below {spec.minimum}", name)
            )
        if spec.maximum is not None and value > spec.maximum:
            reasons.append(
                Reason(ReasonCode.ABOVE_MAXIMUM, f"{name} {value} is above {spec.maximum}", name)
            )
    if spec.type is AttrType.DATE and isinstance(value, dt.date):
        year = value.year
        if spec.minimum is not None and year < spec.minimum:
            reasons.append(
                Reason(
                    ReasonCode.BELOW_MINIMUM, f"{name} year {year} is before {spec.minimum:g}", name
                )
            )
        if spec.maximum is not None and year > spec.maximum:
            reasons.append(
                Reason(
                    ReasonCode.ABOVE_MAXIMUM, f"{name} year {year} is after {spec.maximum:g}", name
                )
            )
    return reasons


def _type_ok(spec: AttributeSpec, value: Value) -> bool:
    kind = spec.type
    if kind is AttrType.STRING:
        return isinstance(value, str)
    if kind is AttrType.INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is AttrType.NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is AttrType.BOOLEAN:
        return isinstance(value, bool)
    if kind is AttrType.DATE:
        return isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    if kind is AttrType.TIMESTAMP:
        return isinstance(value, dt.datetime) and value.tzinfo is not None
    return isinstance(value, tuple) and all(isinstance(v, str) for v in value)


def check_attribute(spec: AttributeSpec, value: Value) -> list[Reason]:
    """Every rule of one attribute that ``value`` breaks, its type included."""
    if not _type_ok(spec, value):
        return [
            Reason(
                ReasonCode.TYPE,
                f"{spec.name} must be a {spec.type.value}, got {value!r}",
                spec.name,
            )
        ]
    return _check_value(spec, value)


def validate_change(entity: EntityModel, change: CandidateChange) -> list[Reason]:
    """Return every rule the change breaks (an empty list when it is valid).

    Deletes are checked only for their source; upserts for every attribute rule of the model.
    """
    reasons: list[Reason] = []
    if change.source not in entity.sources:
        reasons.append(
            Reason(
                ReasonCode.UNKNOWN_SOURCE,
                f"source {change.source!r} may not publish {entity.name}; "
                f"known sources: {', '.join(entity.sources)}",
            )
        )
    if change.op is Op.DELETE:
        return reasons
    for name, spec in entity.attributes.items():
        value = change.attributes.get(name)
        if value is None:
            if spec.required:
                reasons.append(Reason(ReasonCode.REQUIRED, f"{name} is required", name))
            continue
        reasons.extend(_check_value(spec, value))
    return reasons
