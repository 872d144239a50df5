"""Domain values: candidate changes, source records, golden records and change events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "Attributes",
    "CandidateChange",
    "Cause",
    "CauseKind",
    "ChangeEvent",
    "GoldenRecord",
    "GoldenStatus",
    "Lineage",
    "Link",
    "LinkContribution",
    "LinkMethod",
    "Op",
    "Override",
    "Reason",
    "SourceRecord",
    "Value",
]

Value = str | int | float | bool | dt.date | dt.datetime | tuple[str, ...]
"""An attribute value; ``None`` (absent) is never stored in :data:`Attributes`."""

Attributes = Mapping[str, Value]


class Op(StrEnum):
    """What a candidate change does to its source record."""

    UPSERT = "upsert"
    DELETE = "delete"


class GoldenStatus(StrEnum):
    """Lifecycle of a golden record."""

    ACTIVE = "active"
    RETIRED = "retired"
    MERGED = "merged"
    ERASED = "erased"


class CauseKind(StrEnum):
    """What caused a golden version."""

    SOURCE_CHANGE = "source_change"
    STEWARD_COMMAND = "steward_command"


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an input was rejected: a stable code, the attribute (if any) and a readable message."""

    code: str
    message: str
    attribute: str | None = None


@dataclass(frozen=True, slots=True)
class CandidateChange:
    """A source system's proposed change of one of its records."""

    change_id: str
    entity: str
    source: str
    source_key: str
    op: Op
    source_version: int
    occurred_at: dt.datetime
    attributes: Attributes = field(default_factory=dict)

    @property
    def source_ref(self) -> str:
        """``<source>:<source_key>``, the Kafka key of the change."""
        return f"{self.source}:{self.source_key}"


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """The latest accepted state of one source record contributing to a golden record."""

    source: str
    source_key: str
    source_version: int
    occurred_at: dt.datetime
    change_id: str
    attributes: Attributes
    deleted: bool = False

    @property
    def source_ref(self) -> str:
        """``<source>:<source_key>``."""
        return f"{self.source}:{self.source_key}"


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a golden attribute's value came from and by which rule."""

    source: str
    source_key: str
    rule: str
    occurred_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Override:
    """A value a data steward pinned on a golden attribute; it wins over every source."""

    attribute: str
    value: Value
    command_id: str
    issued_at: dt.datetime


class LinkMethod(StrEnum):
    """How a source record came to belong to its golden record."""

    CREATED = "created"  # it created the golden record (nothing matched)
    MATCHED = "matched"  # its score reached the match threshold
    RULE = "rule"  # a deterministic match rule decided
    STEWARD_LINK = "steward_link"  # a steward linked it (link, merge, accepted review)
    SPLIT = "split"  # a steward or a re-evaluation moved it out to a golden record of its own


@dataclass(frozen=True, slots=True)
class LinkContribution:
    """One comparator's part in a match score."""

    attribute: str
    method: str
    similarity: float | None
    weight: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Link:
    """Why one source record belongs to its golden record (the explanation of the link)."""

    source: str
    source_key: str
    method: LinkMethod
    decided_at: dt.datetime
    score: float | None = None
    matched_ref: str | None = None  # the source record it was compared with and matched
    blocking_key: str | None = None  # the blocking key that found that candidate
    rule: str | None = None
    contributions: tuple[LinkContribution, ...] = ()
    command_id: str | None = None  # the steward command that decided, if any
    merged_from: str | None = None  # the golden record it came from in a golden-to-golden merge

    @property
    def source_ref(self) -> str:
        """``<source>:<source_key>``."""
        return f"{self.source}:{self.source_key}"


@dataclass(frozen=True, slots=True)
class Cause:
    """What caused a golden version: a source change or a steward command."""

    kind: CauseKind
    id: str
    source: str | None = None
    source_key: str | None = None


@dataclass(frozen=True, slots=True)
class GoldenRecord:
    """One real-world entity's merged view, with its contributing sources (the crosswalk)."""

    golden_id: str
    entity: str
    version: int
    status: GoldenStatus
    attributes: Attributes
    lineage: Mapping[str, Lineage]
    sources: tuple[SourceRecord, ...]
    created_at: dt.datetime
    updated_at: dt.datetime
    content_hash: str
    merged_into: str | None = None
    overrides: tuple[Override, ...] = ()
    links: tuple[Link, ...] = ()

    @property
    def active_sources(self) -> tuple[SourceRecord, ...]:
        """The source records that contribute (deleted ones are kept only to refuse stale input)."""
        return tuple(record for record in self.sources if not record.deleted)

    def source(self, source: str, source_key: str) -> SourceRecord | None:
        """Return the source record (deleted or not), if the golden record has seen it."""
        for record in self.sources:
            if record.source == source and record.source_key == source_key:
                return record
        return None


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One accepted golden version and what changed (before and after of changed attributes)."""

    golden_id: str
    entity: str
    version: int
    status: GoldenStatus
    changed: tuple[str, ...]
    before: Attributes
    after: Attributes
    cause: Cause
    occurred_at: dt.datetime
