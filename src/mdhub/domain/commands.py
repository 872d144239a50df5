"""Data-steward commands: pin (override) an attribute, clear a pin, erase a golden record.

Commands enter the pipeline like data (a topic of their own) so every decision is an event that
replays. :func:`apply_command` is pure and idempotent: applying a command again changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from mdhub.domain.merge import Applied, Outcome, Rejected, Unchanged, rebuild
from mdhub.domain.model import EntityModel
from mdhub.domain.records import (
    Cause,
    CauseKind,
    ChangeEvent,
    GoldenRecord,
    GoldenStatus,
    Override,
    Reason,
    Value,
)
from mdhub.domain.validation import check_attribute
from mdhub.domain.versioning import content_hash

__all__ = ["IDENTITY_ACTIONS", "Action", "StewardCommand", "apply_command"]

UNKNOWN_GOLDEN = "UNKNOWN_GOLDEN"
UNKNOWN_ATTRIBUTE = "UNKNOWN_ATTRIBUTE"
NOT_ACTIVE = "NOT_ACTIVE"
MISSING_VALUE = "MISSING_VALUE"


class Action(StrEnum):
    """What a steward command does."""

    OVERRIDE = "override"
    CLEAR_OVERRIDE = "clear_override"
    ERASE = "erase"
    # identity decisions (applied by the resolver, see mdhub.domain.resolve)
    LINK = "link"  # force two source records into one golden record
    SPLIT = "split"  # move a source record out of its golden record for good
    MERGE = "merge"  # merge two golden records
    NOT_MATCH = "not_match"  # two source records are different entities
    UNDO_NOT_MATCH = "undo_not_match"
    ACCEPT_MATCH = "accept_match"  # a potential match from the review queue is right: link
    REJECT_MATCH = "reject_match"  # ... is wrong: not a match


IDENTITY_ACTIONS = frozenset(
    {
        Action.LINK,
        Action.SPLIT,
        Action.MERGE,
        Action.NOT_MATCH,
        Action.UNDO_NOT_MATCH,
        Action.ACCEPT_MATCH,
        Action.REJECT_MATCH,
    }
)


@dataclass(frozen=True, slots=True)
class StewardCommand:
    """A steward's decision about one golden record."""

    command_id: str
    entity: str
    golden_id: str
    action: Action
    issued_at: dt.datetime
    attribute: str | None = None
    value: Value | None = None
    issued_by: str | None = None
    reason: str | None = None
    source_ref: str | None = None
    other_ref: str | None = None
    other_golden_id: str | None = None
    pair_id: str | None = None


def _reject(code: str, message: str, attribute: str | None = None) -> Rejected:
    return Rejected((Reason(code, message, attribute),))


def _erase(entity: EntityModel, state: GoldenRecord, command: StewardCommand) -> Outcome:
    if state.status is GoldenStatus.ERASED:
        return Unchanged(state, "already erased")
    # Only the fact of the erasure is kept: no attribute, source, lineage or pin survives.
    erased = GoldenRecord(
        golden_id=state.golden_id,
        entity=entity.name,
        version=state.version + 1,
        status=GoldenStatus.ERASED,
        attributes={},
        lineage={},
        sources=(),
        created_at=state.created_at,
        updated_at=command.issued_at,
        content_hash=content_hash(GoldenStatus.ERASED, {}, {}, ()),
    )
    event = ChangeEvent(
        golden_id=state.golden_id,
        entity=entity.name,
        version=erased.version,
        status=GoldenStatus.ERASED,
        changed=(),
        before={},
        after={},
        cause=Cause(CauseKind.STEWARD_COMMAND, command.command_id),
        occurred_at=command.issued_at,
    )
    return Applied(erased, event)


def apply_command(
    entity: EntityModel, state: GoldenRecord | None, command: StewardCommand
) -> Outcome:
    """Apply a steward command to the golden record ``state``.

    Returns:
        :class:`Applied` with the new version, :class:`Unchanged` when the command changes nothing
        (e.g. the same pin again), or :class:`Rejected` with the reasons it cannot be applied.
    """
    if state is None:
        return _reject(UNKNOWN_GOLDEN, f"no golden {entity.name} {command.golden_id}")
    if command.action is Action.ERASE:
        return _erase(entity, state, command)
    if state.status is not GoldenStatus.ACTIVE:
        return _reject(
            NOT_ACTIVE, f"golden {entity.name} {command.golden_id} is {state.status.value}"
        )
    name = command.attribute
    if name is None or name not in entity.attributes:
        return _reject(
            UNKNOWN_ATTRIBUTE,
            f"{name!r} is not an attribute of {entity.name}; attributes: {', '.join(entity.attributes)}",
            name,
        )
    others = tuple(o for o in state.overrides if o.attribute != name)
    if command.action is Action.OVERRIDE:
        if command.value is None:
            return _reject(MISSING_VALUE, "an override needs a value", name)
        problems = check_attribute(entity.attributes[name], command.value)
        if problems:
            return Rejected(tuple(problems))
        pin = Override(name, command.value, command.command_id, command.issued_at)
        overrides = tuple(sorted((*others, pin), key=lambda o: o.attribute))
        current = next((o for o in state.overrides if o.attribute == name), None)
        if current is not None and current.value == command.value:
            return Unchanged(state, "the same value is already pinned")
    else:
        overrides = others
        if len(overrides) == len(state.overrides):
            return Unchanged(state, "nothing pinned")
    cause = Cause(CauseKind.STEWARD_COMMAND, command.command_id)
    return rebuild(
        entity, state, state.golden_id, state.sources, overrides, cause, command.issued_at
    )
