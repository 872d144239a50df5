"""Apply one candidate change to a golden record: stale checks, survivorship and versioning.

:func:`apply_change` is pure: the same state and change always give the same outcome, and time comes
from the change, never from the clock. Replaying a change that was already applied is a no-op.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from mdhub.domain.model import EntityModel
from mdhub.domain.records import (
    Attributes,
    CandidateChange,
    Cause,
    CauseKind,
    ChangeEvent,
    GoldenRecord,
    GoldenStatus,
    Link,
    Op,
    Override,
    Reason,
    SourceRecord,
)
from mdhub.domain.survivorship import survive
from mdhub.domain.versioning import content_hash

__all__ = ["Applied", "Outcome", "Rejected", "Unchanged", "apply_change", "rebuild", "with_link"]

STALE_SOURCE_VERSION = "STALE_SOURCE_VERSION"
CONFLICTING_SOURCE_VERSION = "CONFLICTING_SOURCE_VERSION"


@dataclass(frozen=True, slots=True)
class Applied:
    """The change made a new golden version (``golden.status`` may be ``retired``)."""

    golden: GoldenRecord
    event: ChangeEvent


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The change was accepted but changed nothing visible; ``state`` is the state to keep."""

    state: GoldenRecord | None
    why: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """The change cannot be applied (stale or conflicting source version)."""

    reasons: tuple[Reason, ...]


Outcome = Applied | Unchanged | Rejected


def _diff(before: Attributes, after: Attributes, order: list[str]) -> tuple[str, ...]:
    return tuple(name for name in order if before.get(name) != after.get(name))


def _version_check(existing: SourceRecord | None, change: CandidateChange) -> Outcome | None:
    if existing is None:
        return None
    if change.source_version < existing.source_version:
        return Rejected(
            (
                Reason(
                    STALE_SOURCE_VERSION,
                    f"source version {change.source_version} of {change.source_ref} is older than "
                    f"the applied version {existing.source_version}",
                ),
            )
        )
    if change.source_version == existing.source_version:
        same = (change.op is Op.DELETE and existing.deleted) or (
            change.op is Op.UPSERT
            and not existing.deleted
            and dict(change.attributes) == dict(existing.attributes)
        )
        if same:
            return Unchanged(None, "duplicate")
        return Rejected(
            (
                Reason(
                    CONFLICTING_SOURCE_VERSION,
                    f"source version {change.source_version} of {change.source_ref} was already "
                    "applied with different content; publish changes with a higher source_version",
                ),
            )
        )
    return None


def with_link(links: tuple[Link, ...], link: Link) -> tuple[Link, ...]:
    """``links`` with ``link`` in place of the one of its source record, ordered by source ref."""
    kept = tuple(k for k in links if k.source_ref != link.source_ref)
    return tuple(sorted((*kept, link), key=lambda k: k.source_ref))


def apply_change(
    entity: EntityModel,
    state: GoldenRecord | None,
    change: CandidateChange,
    golden_id: str,
    link: Link | None = None,
) -> Outcome:
    """Apply ``change`` to the golden record ``state`` (None when it does not exist yet).

    Args:
        entity: the entity model (survivorship and trust).
        state: the current golden state, including the crosswalk of source records.
        change: a validated candidate change.
        golden_id: the golden id the change resolved to.
        link: why the change's source record belongs to this golden record, when that is new.

    Returns:
        :class:`Applied` with the new version and its change event, :class:`Unchanged` when nothing
        visible changed (a duplicate, or the same values again), or :class:`Rejected` for stale input.
    """
    existing = state.source(change.source, change.source_key) if state is not None else None
    checked = _version_check(existing, change)
    if checked is not None:
        return Unchanged(state, "duplicate") if isinstance(checked, Unchanged) else checked

    record = SourceRecord(
        source=change.source,
        source_key=change.source_key,
        source_version=change.source_version,
        occurred_at=change.occurred_at,
        change_id=change.change_id,
        attributes={} if change.op is Op.DELETE else dict(change.attributes),
        deleted=change.op is Op.DELETE,
    )
    others = tuple(r for r in (state.sources if state else ()) if r.source_ref != change.source_ref)
    if change.op is Op.DELETE and state is None:
        # Remember the delete (a state at version 0, nothing published): an older upsert of the
        # same source record that arrives later is then refused as stale instead of applied.
        marker = GoldenRecord(
            golden_id=golden_id,
            entity=entity.name,
            version=0,
            status=GoldenStatus.RETIRED,
            attributes={},
            lineage={},
            sources=(record,),
            created_at=change.occurred_at,
            updated_at=change.occurred_at,
            content_hash=content_hash(GoldenStatus.RETIRED, {}, {}, (record,)),
        )
        return Unchanged(marker, "delete of an unknown source record")
    sources = tuple(sorted((*others, record), key=lambda r: r.source_ref))
    cause = Cause(CauseKind.SOURCE_CHANGE, change.change_id, change.source, change.source_key)
    overrides = state.overrides if state is not None else ()
    links = None if link is None else with_link(state.links if state else (), link)
    return rebuild(entity, state, golden_id, sources, overrides, cause, change.occurred_at, links)


def rebuild(
    entity: EntityModel,
    state: GoldenRecord | None,
    golden_id: str,
    sources: tuple[SourceRecord, ...],
    overrides: tuple[Override, ...],
    cause: Cause,
    occurred_at: dt.datetime,
    links: tuple[Link, ...] | None = None,
) -> Applied | Unchanged:
    """Run survivorship over ``sources`` and ``overrides``; make a version if anything changed.

    Args:
        entity: the entity model.
        state: the golden record before the change (None if new).
        golden_id: its id.
        sources: every source record of the crosswalk (deleted ones included).
        overrides: the values pinned by stewards.
        cause: what caused the change (for the change event).
        occurred_at: event time of the cause.
        links: why each source record belongs (kept from ``state`` when None).
    """
    if links is None:
        links = state.links if state is not None else ()
    active = tuple(r for r in sources if not r.deleted)
    attributes, lineage = survive(entity, active, overrides)
    status = GoldenStatus.ACTIVE if active else GoldenStatus.RETIRED
    digest = content_hash(status, attributes, lineage, sources)

    if state is not None and state.content_hash == digest and state.status is status:
        kept = replace(state, sources=sources, overrides=overrides, links=links)
        return Unchanged(kept, "no visible change")

    before = state.attributes if state is not None else {}
    changed = _diff(before, attributes, list(entity.attributes))
    version = (state.version if state is not None else 0) + 1
    updated_at = max(state.updated_at, occurred_at) if state is not None else occurred_at
    golden = GoldenRecord(
        golden_id=golden_id,
        entity=entity.name,
        version=version,
        status=status,
        attributes=attributes,
        lineage=lineage,
        sources=sources,
        created_at=state.created_at if state is not None and state.version > 0 else occurred_at,
        updated_at=updated_at,
        content_hash=digest,
        overrides=overrides,
        links=links,
    )
    event = ChangeEvent(
        golden_id=golden_id,
        entity=entity.name,
        version=version,
        status=status,
        changed=changed,
        before={name: before[name] for name in changed if name in before},
        after={name: attributes[name] for name in changed if name in attributes},
        cause=cause,
        occurred_at=occurred_at,
    )
    return Applied(golden, event)
