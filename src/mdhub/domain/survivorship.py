"""Survivorship: choose each golden attribute's value among the contributing source records.

Every rule is deterministic: ties fall back to source trust, then recency, then the source
reference, so the same sources always give the same golden record whatever their arrival order.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from mdhub.domain.model import AttributeSpec, EntityModel, Rule, SurvivalPlan
from mdhub.domain.records import Lineage, Override, SourceRecord, Value

__all__ = ["survive"]

_Candidate = tuple[SourceRecord, Value]


def _priority(entity: EntityModel) -> Callable[[_Candidate], tuple[Any, ...]]:
    def key(candidate: _Candidate) -> tuple[Any, ...]:
        record = candidate[0]
        return (
            entity.trust(record.source),
            record.occurred_at,
            record.source_version,
            record.source_ref,
        )

    return key


def _recency(entity: EntityModel) -> Callable[[_Candidate], tuple[Any, ...]]:
    def key(candidate: _Candidate) -> tuple[Any, ...]:
        record = candidate[0]
        return (
            record.occurred_at,
            record.source_version,
            entity.trust(record.source),
            record.source_ref,
        )

    return key


def _comparable(value: Value) -> tuple[int, Any]:
    # Orders values of one attribute type; the leading tag keeps mixed types from raising.
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, dt.datetime):
        return (2, value.timestamp())
    if isinstance(value, dt.date):
        return (3, value.toordinal())
    return (4, str(value))


def _ranking(spec: AttributeSpec) -> Callable[[Value], tuple[int, Any]]:
    # An enum is declared in order (bronze, silver, gold, platinum): min and max follow that order,
    # not the alphabet, which would rank silver above gold.
    if spec.enum is None:
        return _comparable
    order = {member: index for index, member in enumerate(spec.enum)}

    def rank(value: Value) -> tuple[int, Any]:
        if isinstance(value, str) and value in order:
            return (5, order[value])
        return _comparable(value)

    return rank


def _length(value: Value) -> int:
    return len(value) if isinstance(value, str | tuple) else len(str(value))


def _choose(
    spec: AttributeSpec, entity: EntityModel, candidates: Sequence[_Candidate]
) -> tuple[Value, SourceRecord]:
    by_priority = _priority(entity)
    rule = spec.survivorship
    if rule is Rule.SOURCE_PRIORITY:
        record, value = max(candidates, key=by_priority)
    elif rule is Rule.MOST_RECENT:
        record, value = max(candidates, key=_recency(entity))
    elif rule is Rule.MOST_FREQUENT:
        counts = Counter(_comparable(value) for _, value in candidates)
        record, value = max(candidates, key=lambda c: (counts[_comparable(c[1])], by_priority(c)))
    elif rule is Rule.LONGEST:
        record, value = max(candidates, key=lambda c: (_length(c[1]), by_priority(c)))
    elif rule is Rule.MIN:
        # the smallest value; among sources holding it, the most trusted is named in the lineage
        rank = _ranking(spec)
        record, value = max(candidates, key=lambda c: (_negate(rank(c[1])), by_priority(c)))
    elif rule is Rule.MAX:
        rank = _ranking(spec)
        record, value = max(candidates, key=lambda c: (rank(c[1]), by_priority(c)))
    elif rule is Rule.UNION:
        merged: set[str] = set()
        for _, value in candidates:
            merged.update(_members(value))
        record, _ = max(candidates, key=by_priority)
        value = tuple(sorted(merged))
    else:  # pragma: no cover - Rule is closed
        raise AssertionError(rule)
    return value, record


class _Reversed:
    __slots__ = ("key",)

    def __init__(self, key: tuple[int, Any]) -> None:
        self.key = key

    def __lt__(self, other: _Reversed) -> bool:
        return bool(other.key < self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)


def _negate(key: tuple[int, Any]) -> _Reversed:
    return _Reversed(key)


STEWARD = "steward"
OVERRIDE_RULE = "steward_override"


_UNION = Rule.UNION


def _members(value: Value) -> tuple[str, ...]:
    """The members a value adds to a union: a list's items, or the value as text."""
    return value if isinstance(value, tuple) else (str(value),)


def survive(
    entity: EntityModel, sources: Sequence[SourceRecord], overrides: Sequence[Override] = ()
) -> tuple[dict[str, Value], dict[str, Lineage]]:
    """Return the golden attributes and their lineage from the contributing source records.

    Args:
        entity: the entity model (attribute rules and source trust).
        sources: the contributing (not deleted) source records.
        overrides: values pinned by stewards; they win over every source (rule
            ``steward_override``, lineage source ``steward`` and the command id as source key).

    Returns:
        ``(attributes, lineage)``: attributes with a value, in model order, and for each of them the
        source record and rule that won.
    """
    plan = entity.survival
    if len(sources) == 1 and not overrides:
        return _lone(plan, sources[0])
    attributes: dict[str, Value] = {}
    lineage: dict[str, Lineage] = {}
    pinned = {o.attribute: o for o in overrides}
    shared: dict[tuple[int, str], Lineage] = {}  # one (immutable) Lineage per winner and rule
    for name, spec, rule, rule_name in plan:
        if name in pinned:
            pin = pinned[name]
            attributes[name] = pin.value
            lineage[name] = Lineage(STEWARD, pin.command_id, OVERRIDE_RULE, pin.issued_at)
            continue
        candidates = [
            (record, record.attributes[name]) for record in sources if name in record.attributes
        ]
        if not candidates:
            continue
        if len(candidates) == 1 and rule is not _UNION:
            winner, value = candidates[0]  # the common case: every rule agrees on a lone value
        else:
            value, winner = _choose(spec, entity, candidates)
        attributes[name] = value
        found = shared.get((id(winner), rule_name))
        if found is None:
            found = shared[(id(winner), rule_name)] = Lineage(
                winner.source, winner.source_key, rule_name, winner.occurred_at
            )
        lineage[name] = found
    return attributes, lineage


def _lone(plan: SurvivalPlan, record: SourceRecord) -> tuple[dict[str, Value], dict[str, Lineage]]:
    """:func:`survive` of one source record without overrides (most golden records): every rule
    picks its value, a union its distinct members in order."""
    values = record.attributes
    attributes: dict[str, Value] = {}
    lineage: dict[str, Lineage] = {}
    shared: dict[str, Lineage] = {}  # one Lineage per rule
    for name, _, rule, rule_name in plan:
        if name not in values:
            continue
        value = values[name]
        attributes[name] = tuple(sorted(set(_members(value)))) if rule is _UNION else value
        found = shared.get(rule_name)
        if found is None:
            found = shared[rule_name] = Lineage(
                record.source, record.source_key, rule_name, record.occurred_at
            )
        lineage[name] = found
    return attributes, lineage
