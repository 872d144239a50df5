"""What a subscriber yields: golden records, tombstones, change events, rejections; and decoders."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from mdhub.domain.model import EntityModel
from mdhub.domain.records import ChangeEvent, GoldenRecord, Reason
from mdhub.domain.validation import ReasonCode
from mdhub.errors import DecodeError
from mdhub.serde.catalog import SchemaCatalog
from mdhub.serde.generate import fullname
from mdhub.serde.mapping import change_event_from_avro, golden_from_avro

__all__ = ["Decoder", "Received", "Rejection", "Tombstone", "decoder_for"]

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A golden record is gone from the golden topic: drop it from any local copy.

    It follows the record's final version (status ``retired`` when its last source deleted it,
    ``erased`` when a data steward erased it); compaction later removes the key altogether.

    Attributes:
        golden_id: the id of the golden record that is gone.
    """

    golden_id: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input the hub refused, from the rejected topic: the original bytes and every reason.

    Attributes:
        entity: the entity type.
        stage: the stage that refused it: ``validate``, ``merge`` or ``steward``.
        topic: where the input was (usually the source topic).
        partition: its partition there.
        offset: its offset there.
        timestamp: its Kafka timestamp.
        key: its original key bytes.
        value: its original value bytes, untouched.
        change_id: the change's id, when the input could be decoded.
        source: the source system, when the input could be decoded.
        source_key: the source record's key, when the input could be decoded.
        reasons: every reason: a stable code, a message and the attribute concerned.
        rejected_at: event time of the rejection (the input's timestamp, not the wall clock).
    """

    entity: str
    stage: str
    topic: str
    partition: int
    offset: int
    timestamp: dt.datetime | None
    key: bytes | None
    value: bytes | None
    change_id: str | None
    source: str | None
    source_key: str | None
    reasons: tuple[Reason, ...]
    rejected_at: dt.datetime

    @property
    def codes(self) -> tuple[str, ...]:
        """The reason codes, e.g. ``("REQUIRED", "PATTERN")``."""
        return tuple(reason.code for reason in self.reasons)


@dataclass(frozen=True, slots=True)
class Received(Generic[R]):
    """One consumed message with its coordinates and its decoded record.

    Attributes:
        topic: the topic.
        partition: the partition.
        offset: the message's offset.
        key: the Kafka key as text (a golden id; ``<source>:<source_key>`` on the rejected topic).
        timestamp: the Kafka timestamp, when the message has one.
        record: the decoded record; ``None`` only when ``error`` is set.
        value: the raw message value (``None`` for a tombstone).
        error: why the value could not be decoded (e.g. a writer schema missing from
            ``schemas/``); ``None`` when it was.
    """

    topic: str
    partition: int
    offset: int
    key: str | None
    timestamp: dt.datetime | None
    record: R | None
    value: bytes | None
    error: DecodeError | None = None


Decoder = Callable[[str | None, bytes | None], R]
"""Turns a message's key and value into a record (raises DecodeError)."""


def _rejection(data: dict[str, Any]) -> Rejection:
    return Rejection(
        entity=data["entity"],
        stage=data["stage"],
        topic=data["topic"],
        partition=data["partition"],
        offset=data["offset"],
        timestamp=data.get("timestamp"),
        key=data.get("key"),
        value=data.get("value"),
        change_id=data.get("change_id"),
        source=data.get("source"),
        source_key=data.get("source_key"),
        reasons=tuple(Reason(r["code"], r["message"], r.get("attribute")) for r in data["reasons"]),
        rejected_at=data["rejected_at"],
    )


def _no_value(kind: str) -> DecodeError:
    return DecodeError(ReasonCode.UNDECODABLE, f"a message without a value on the {kind} topic")


def decoder_for(kind: str, entity: EntityModel, catalog: SchemaCatalog) -> Decoder[Any]:
    """The decoder of an entity's ``golden``, ``changes`` or ``rejected`` topic.

    Raises:
        ValueError: another kind.
        SchemaError: the catalog lacks the schema.
    """
    if kind == "golden":
        codec = catalog.codec(fullname(entity.name, "GoldenRecord"))

        def golden(key: str | None, value: bytes | None) -> GoldenRecord | Tombstone:
            if value is None:
                if not key:
                    raise DecodeError(ReasonCode.MISSING_KEY, "a tombstone without a key")
                return Tombstone(key)
            data = codec.decode(value)
            try:
                return golden_from_avro(data, entity)
            except (KeyError, ValueError, TypeError) as exc:
                raise DecodeError(
                    ReasonCode.UNDECODABLE, f"not a valid {codec.fullname}: {exc!r}"
                ) from exc

        return golden
    if kind == "changes":
        codec = catalog.codec(fullname(entity.name, "ChangeEvent"))

        def change(key: str | None, value: bytes | None) -> ChangeEvent:
            if value is None:
                raise _no_value(kind)
            data = codec.decode(value)
            try:
                return change_event_from_avro(data)
            except (KeyError, ValueError, TypeError) as exc:
                raise DecodeError(
                    ReasonCode.UNDECODABLE, f"not a valid {codec.fullname}: {exc!r}"
                ) from exc

        return change
    if kind == "rejected":
        codec = catalog.codec("mdhub.common.RejectedRecord")

        def rejected(key: str | None, value: bytes | None) -> Rejection:
            if value is None:
                raise _no_value(kind)
            data = codec.decode(value)
            try:
                return _rejection(data)
            except (KeyError, ValueError, TypeError) as exc:
                raise DecodeError(
                    ReasonCode.UNDECODABLE, f"not a valid {codec.fullname}: {exc!r}"
                ) from exc

        return rejected
    raise ValueError(f"topic must be golden, changes or rejected, not {kind!r}")
