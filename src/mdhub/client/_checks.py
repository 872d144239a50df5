"""Build a candidate change from a producer's values and check it as the hub's worker will.

The worker standardizes a change (trim, e-mail, phone, country, case) and then checks every rule of
the entity model; so do these checks, on a copy: what is sent is the producer's own values, untouched
(the source topic keeps original inputs). Every problem is collected, with the reason codes of the
rejected topic, and raised together as one :class:`~mdhub.errors.ValidationError`.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, NoReturn

from mdhub.domain.model import AttributeSpec, AttrType, EntityModel
from mdhub.domain.records import CandidateChange, Op, Reason, Value
from mdhub.domain.standardize import apply_standardizers
from mdhub.domain.validation import ReasonCode, standardize, validate_change
from mdhub.errors import ValidationError
from mdhub.serde.catalog import AvroCodec
from mdhub.serde.mapping import change_to_avro

__all__ = [
    "MAX_FUTURE_SKEW",
    "SCHEMA",
    "UNKNOWN_ATTRIBUTE",
    "VersionClock",
    "build_change",
    "check_change",
    "encode_change",
]

SCHEMA = "SCHEMA"
"""Reason code of a value the Avro schema refuses (e.g. an integer beyond 64 bits)."""

UNKNOWN_ATTRIBUTE = "UNKNOWN_ATTRIBUTE"
"""Reason code of an attribute the entity model does not declare."""

MAX_FUTURE_SKEW = dt.timedelta(days=1)
"""The worker rejects changes that occurred more than this after they were published."""

_ARTICLE = {AttrType.INTEGER: "an", AttrType.STRING_LIST: "a"}


class VersionClock:
    """Default source versions: microseconds since the epoch, strictly increasing per clock.

    ``mdhub publish`` uses the same scale (publish time in ms times 1000 plus the line), so records
    published either way compare sensibly.
    """

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        """Return a version newer than every one this clock returned before."""
        with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1000)
            return self._last


def _type_problem(spec: AttributeSpec, value: Any) -> Reason:
    article = _ARTICLE.get(spec.type, "a")
    hint = {
        AttrType.DATE: " (a datetime.date)",
        AttrType.TIMESTAMP: " (a datetime.datetime with a time zone)",
        AttrType.STRING_LIST: " (a list of strings)",
    }.get(spec.type, "")
    return Reason(
        ReasonCode.TYPE,
        f"{spec.name} must be {article} {spec.type.value}{hint}, got {type(value).__name__} "
        f"{value!r}",
        spec.name,
    )


def _coerce(spec: AttributeSpec, value: Any) -> Value | None:
    """The value as the model's type (lists become tuples, integers of a number become floats)."""
    kind = spec.type
    if kind is AttrType.STRING:
        return value if isinstance(value, str) else None
    if kind is AttrType.INTEGER:
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if kind is AttrType.NUMBER:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok else None
    if kind is AttrType.BOOLEAN:
        return value if isinstance(value, bool) else None
    if kind is AttrType.DATE:
        ok = isinstance(value, dt.date) and not isinstance(value, dt.datetime)
        return value if ok else None
    if kind is AttrType.TIMESTAMP:
        ok = isinstance(value, dt.datetime) and value.tzinfo is not None
        return value if ok else None
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _attributes(
    entity: EntityModel, attributes: Mapping[Any, Any]
) -> tuple[dict[str, Value], list[Reason], set[str]]:
    """Typed attributes, the problems, and the names of attributes with a wrong type."""
    out: dict[str, Value] = {}
    reasons: list[Reason] = []
    mistyped: set[str] = set()
    for name, value in attributes.items():
        spec = entity.attributes.get(name) if isinstance(name, str) else None
        if spec is None:
            reasons.append(
                Reason(
                    UNKNOWN_ATTRIBUTE,
                    f"{name!r} is not an attribute of {entity.name}; it has: "
                    + ", ".join(entity.attributes),
                    str(name),
                )
            )
            continue
        if value is None:
            continue  # absent
        typed = _coerce(spec, value)
        if typed is None:
            reasons.append(_type_problem(spec, value))
            mistyped.add(name)
            continue
        out[name] = typed
    return out, reasons, mistyped


def _rule_reasons(entity: EntityModel, change: CandidateChange, mistyped: set[str]) -> list[Reason]:
    """What the worker's validate stage would say about ``change``'s values."""
    std, reasons = apply_standardizers(entity, standardize(change))
    reasons.extend(validate_change(entity, std))
    # an attribute already reported for its type is not also "required"
    return [r for r in reasons if r.attribute not in mistyped]


def encode_change(entity: EntityModel, change: CandidateChange, codec: AvroCodec) -> bytes:
    """Encode a change (single-object encoding), or raise why the Avro schema refuses it.

    Encoding is the check (fastavro's writer refuses what the schema cannot hold); only a refused
    change pays for the slower, detailed validation that names the fields.

    Raises:
        ValidationError: the schema's every complaint, code ``SCHEMA``.
    """
    record = change_to_avro(entity, change)
    try:
        return codec.encode(record)
    except (ValueError, TypeError, OverflowError, AttributeError, KeyError) as exc:
        problems = codec.problems(record) or [str(exc)]
    _raise(
        change.source_ref,
        entity,
        [Reason(SCHEMA, f"does not fit {codec.fullname}: {problem}") for problem in problems],
    )


def _raise(change_ref: str, entity: EntityModel, reasons: list[Reason]) -> NoReturn:
    # the messages name their attribute already
    listed = "; ".join(f"{r.message} [{r.code}]" for r in reasons)
    raise ValidationError(
        f"{entity.name} {change_ref} was not sent, {len(reasons)} problem(s): {listed}", reasons
    )


def _problems(
    entity: EntityModel,
    change: CandidateChange,
    *,
    rules: bool,
    now: dt.datetime,
    mistyped: set[str] | None = None,
) -> list[Reason]:
    """Every problem of a built change but the schema's (see :func:`encode_change`)."""
    reasons: list[Reason] = []
    if change.entity != entity.name:
        reasons.append(
            Reason(ReasonCode.WRONG_ENTITY, f"a {change.entity!r} change for {entity.name!r}")
        )
    if not change.source_key:
        reasons.append(Reason(ReasonCode.MISSING_KEY, "source_key is empty", "source_key"))
    if not rules:
        return reasons
    if mistyped is None:
        _, type_reasons, mistyped = _attributes(entity, change.attributes)
        reasons.extend(type_reasons)
    if change.occurred_at.tzinfo is None:
        reasons.append(
            Reason(
                ReasonCode.TYPE, "occurred_at needs a time zone, e.g. datetime.UTC", "occurred_at"
            )
        )
    elif change.occurred_at > now + MAX_FUTURE_SKEW:
        reasons.append(
            Reason(
                ReasonCode.FUTURE_TIMESTAMP,
                f"occurred_at {change.occurred_at.isoformat()} is more than {MAX_FUTURE_SKEW} "
                "in the future",
                "occurred_at",
            )
        )
    known = {k: v for k, v in change.attributes.items() if k not in mistyped}
    reasons.extend(_rule_reasons(entity, replace(change, attributes=known), mistyped))
    return reasons


def check_change(
    entity: EntityModel,
    change: CandidateChange,
    codec: AvroCodec,
    *,
    rules: bool = True,
    now: dt.datetime | None = None,
) -> bytes:
    """Check a ready-made change (entity, key, the model's rules, the Avro schema) and encode it.

    Args:
        rules: check the model's rules (types, required, length, pattern, enum, range,
            standardizers); without, only what the schema needs to encode the change.
        now: the publishing moment (for the future-timestamp check).

    Returns:
        the change's single-object encoding.

    Raises:
        ValidationError: with every problem.
    """
    reasons = _problems(entity, change, rules=rules, now=now or dt.datetime.now(dt.UTC))
    if reasons:
        _raise(change.source_ref, entity, reasons)
    return encode_change(entity, change, codec)


def build_change(
    entity: EntityModel,
    source: str,
    clock: VersionClock,
    *,
    source_key: Any,
    attributes: Mapping[Any, Any] | None,
    op: Op | str,
    source_version: Any,
    occurred_at: Any,
    change_id: Any,
) -> CandidateChange:
    """Build a candidate change from a producer's values, filling the defaults, and check it.

    The Avro schema is checked when the change is encoded (:func:`encode_change`).

    Defaults: ``source_version`` from ``clock``, ``occurred_at`` now (UTC), ``change_id`` a new
    UUID. Attribute values must have their model type already (lists may stand for tuples,
    integers for numbers).

    Raises:
        ValidationError: with every problem of the envelope and the attributes.
    """
    now = dt.datetime.now(dt.UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the wire keeps ms
    reasons: list[Reason] = []
    key = source_key
    if not isinstance(source_key, str):
        reasons.append(
            Reason(
                ReasonCode.TYPE,
                f"source_key must be a str, got {type(source_key).__name__} {source_key!r}",
                "source_key",
            )
        )
        key = str(source_key)
    try:
        kind = Op(op)
    except ValueError:
        reasons.append(
            Reason(ReasonCode.NOT_ALLOWED, f"op {op!r} is not one of: upsert, delete", "op")
        )
        kind = Op.UPSERT
    version = clock.next() if source_version is None else source_version
    if isinstance(version, bool) or not isinstance(version, int):
        reasons.append(
            Reason(
                ReasonCode.TYPE,
                f"source_version must be an int, got {type(version).__name__} {version!r}",
                "source_version",
            )
        )
        version = 0
    elif version < 0:
        reasons.append(
            Reason(
                ReasonCode.BELOW_MINIMUM, "source_version must not be negative", "source_version"
            )
        )
    when = now if occurred_at is None else occurred_at
    if not isinstance(when, dt.datetime):
        reasons.append(
            Reason(
                ReasonCode.TYPE,
                "occurred_at must be a datetime.datetime with a time zone, got "
                f"{type(when).__name__} {when!r}",
                "occurred_at",
            )
        )
        when = now
    if change_id is None:
        change_id = str(uuid.uuid4())
    elif not isinstance(change_id, str) or not change_id:
        reasons.append(Reason(ReasonCode.TYPE, "change_id must be a non-empty str", "change_id"))
        change_id = str(uuid.uuid4())
    values, attribute_reasons, mistyped = _attributes(entity, attributes or {})
    reasons.extend(attribute_reasons)
    change = CandidateChange(
        change_id=change_id,
        entity=entity.name,
        source=source,
        source_key=key,
        op=kind,
        source_version=version,
        occurred_at=when,
        attributes=values,
    )
    reasons.extend(_problems(entity, change, rules=True, now=now, mistyped=mistyped))
    if reasons:
        _raise(f"{source}:{key}", entity, reasons)
    return change
