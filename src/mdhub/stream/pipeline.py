"""One entity type's processing of a source message, with no Kafka client in sight.

:class:`EntityPipeline.process` decodes, validates, merges and encodes; the stream agent only feeds
it messages, a way to read state, and sends what it returns. The same code runs in-process in tests.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from mdhub.domain.commands import apply_command
from mdhub.domain.identity import golden_id_for
from mdhub.domain.merge import Applied, Rejected, Unchanged, apply_change
from mdhub.domain.model import EntityModel
from mdhub.domain.records import CandidateChange, GoldenRecord, GoldenStatus, Reason
from mdhub.domain.standardize import apply_standardizers
from mdhub.domain.validation import ReasonCode, standardize, validate_change
from mdhub.errors import DecodeError
from mdhub.naming import Stage, topic_name
from mdhub.serde.catalog import SchemaCatalog
from mdhub.serde.generate import fullname
from mdhub.serde.mapping import (
    change_event_to_avro,
    change_from_avro,
    command_from_avro,
    golden_from_avro,
    golden_to_avro,
    rejected_to_avro,
)

__all__ = ["EntityPipeline", "Message", "Outcome", "Output", "StepResult"]

StateLoader = Callable[[bytes], bytes | None]


@dataclass(frozen=True, slots=True)
class Message:
    """A consumed Kafka message (coordinates, raw key and value, timestamp in ms)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Output:
    """A message to produce; ``value=None`` is a tombstone."""

    topic: str
    key: bytes
    value: bytes | None


class Outcome(StrEnum):
    """How an input ended (the reconciliation categories)."""

    ACCEPTED = "accepted"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


@dataclass(slots=True)
class StepResult:
    """What processing one message produced."""

    outcome: Outcome
    outputs: list[Output] = field(default_factory=list)
    state_key: bytes | None = None
    state_value: bytes | None = None  # the new state to store when state_key is set
    reasons: tuple[Reason, ...] = ()
    golden_version: int | None = None


class EntityPipeline:
    """Validate and merge the candidate changes of one entity type."""

    def __init__(
        self,
        entity: EntityModel,
        catalog: SchemaCatalog,
        namespace: str,
        *,
        max_payload_bytes: int = 1_048_576,
        max_future_skew: dt.timedelta = dt.timedelta(days=1),
    ) -> None:
        self.entity = entity
        self.max_payload_bytes = max_payload_bytes
        self.max_future_skew = max_future_skew
        self.change_codec = catalog.codec(fullname(entity.name, "CandidateChange"))
        self.golden_codec = catalog.codec(fullname(entity.name, "GoldenRecord"))
        self.event_codec = catalog.codec(fullname(entity.name, "ChangeEvent"))
        self.rejected_codec = catalog.codec("mdhub.common.RejectedRecord")
        self.source_topic = topic_name(namespace, entity.name, Stage.SOURCE)
        self.golden_topic = topic_name(namespace, entity.name, Stage.GOLDEN)
        self.changes_topic = topic_name(namespace, entity.name, Stage.CHANGES)
        self.rejected_topic = topic_name(namespace, entity.name, Stage.REJECTED)
        self.state_topic = topic_name(namespace, entity.name, Stage.STATE)
        self.commands_topic = topic_name(namespace, entity.name, Stage.COMMANDS)
        self.command_codec = catalog.codec("mdhub.common.StewardCommand")

    # -- helpers -----------------------------------------------------------------------------

    def _reject(
        self,
        msg: Message,
        reasons: tuple[Reason, ...],
        stage: str,
        change: CandidateChange | None = None,
    ) -> StepResult:
        timestamp = (
            dt.datetime.fromtimestamp(msg.timestamp_ms / 1000, dt.UTC) if msg.timestamp_ms else None
        )
        envelope = rejected_to_avro(
            entity=self.entity.name,
            stage=stage,
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            timestamp=timestamp,
            key=msg.key,
            value=msg.value,
            reasons=reasons,
            change=change,
        )
        # Keyed like the input, so every rejection of one source record lands on one partition.
        key = (
            msg.key if msg.key is not None else f"{msg.topic}/{msg.partition}/{msg.offset}".encode()
        )
        out = Output(self.rejected_topic, key, self.rejected_codec.encode(envelope))
        return StepResult(Outcome.REJECTED, [out], reasons=reasons)

    def decode_state(self, data: bytes | None) -> GoldenRecord | None:
        """Decode a stored state value."""
        return golden_from_avro(self.golden_codec.decode(data), self.entity) if data else None

    def encode_golden(self, golden: GoldenRecord) -> bytes:
        """Encode a golden record (the golden topic's and the state's format)."""
        return self.golden_codec.encode(golden_to_avro(self.entity, golden))

    # -- the stage ---------------------------------------------------------------------------

    def parse(self, msg: Message) -> CandidateChange | StepResult:
        """Decode and validate a source message: a candidate change, or the rejection."""
        if msg.value is None:
            return self._reject(
                msg, (Reason(ReasonCode.UNDECODABLE, "message has no value"),), "validate"
            )
        if len(msg.value) > self.max_payload_bytes:
            reason = Reason(
                ReasonCode.OVERSIZED,
                f"payload of {len(msg.value)} bytes exceeds the limit of {self.max_payload_bytes}",
            )
            return self._reject(msg, (reason,), "validate")
        try:
            change = change_from_avro(self.change_codec.decode(msg.value))
        except DecodeError as exc:
            return self._reject(msg, (Reason(exc.code, str(exc)),), "validate")
        reasons: list[Reason] = []
        if change.entity != self.entity.name:
            reasons.append(
                Reason(
                    ReasonCode.WRONG_ENTITY,
                    f"a {change.entity!r} change on the {self.entity.name!r} topic {msg.topic}",
                )
            )
        if not msg.key:
            reasons.append(
                Reason(ReasonCode.MISSING_KEY, "the Kafka key must be '<source>:<source_key>'")
            )
        elif msg.key != change.source_ref.encode():
            reasons.append(
                Reason(
                    ReasonCode.KEY_MISMATCH,
                    f"Kafka key {msg.key!r} is not '<source>:<source_key>' = {change.source_ref!r}",
                )
            )
        if not change.source_key:
            reasons.append(Reason(ReasonCode.MISSING_KEY, "source_key is empty", "source_key"))
        if msg.timestamp_ms is not None:
            limit = (
                dt.datetime.fromtimestamp(msg.timestamp_ms / 1000, dt.UTC) + self.max_future_skew
            )
            if change.occurred_at > limit:
                reasons.append(
                    Reason(
                        ReasonCode.FUTURE_TIMESTAMP,
                        f"occurred_at {change.occurred_at.isoformat()} is more than "
                        f"{self.max_future_skew} after the message was published",
                        "occurred_at",
                    )
                )
        change, problems = apply_standardizers(self.entity, standardize(change))
        reasons.extend(problems)
        reasons.extend(validate_change(self.entity, change))
        if reasons:
            return self._reject(msg, tuple(reasons), "validate", change)
        return change

    def process(self, msg: Message, load_state: StateLoader) -> StepResult:
        """Process one source message; ``load_state(golden_id)`` returns the stored state bytes."""
        parsed = self.parse(msg)
        if isinstance(parsed, StepResult):
            return parsed
        change = parsed
        golden_id = golden_id_for(self.entity.name, change.source, change.source_key)
        key = golden_id.encode()
        state = self.decode_state(load_state(key))
        outcome = apply_change(self.entity, state, change, golden_id)
        if isinstance(outcome, Rejected):
            return self._reject(msg, outcome.reasons, "merge", change)
        if isinstance(outcome, Unchanged):
            result = StepResult(Outcome.UNCHANGED)
            if outcome.state is not None and outcome.state is not state:
                result.state_key = key
                result.state_value = self.encode_golden(outcome.state)
            return result
        assert isinstance(outcome, Applied)
        return self._applied(outcome, key)

    def _applied(self, outcome: Applied, key: bytes) -> StepResult:
        golden = outcome.golden
        golden_bytes = self.encode_golden(golden)
        event_bytes = self.event_codec.encode(change_event_to_avro(self.entity, outcome.event))
        outputs = [
            Output(self.changes_topic, key, event_bytes),
            Output(self.golden_topic, key, golden_bytes),
        ]
        if golden.status in (GoldenStatus.RETIRED, GoldenStatus.ERASED):
            # the final version (an erased one holds no attribute) tells readers to drop it; the
            # tombstone after it lets compaction remove the key
            outputs.append(Output(self.golden_topic, key, None))
        return StepResult(
            Outcome.ACCEPTED,
            outputs,
            state_key=key,
            state_value=golden_bytes,
            golden_version=golden.version,
        )

    def process_command(self, msg: Message, load_state: StateLoader) -> StepResult:
        """Apply one steward command from the commands topic."""
        if msg.value is None:
            return self._reject(
                msg, (Reason(ReasonCode.UNDECODABLE, "command has no value"),), "steward"
            )
        try:
            data = self.command_codec.decode(msg.value)
            command = command_from_avro(data, self.entity)
        except DecodeError as exc:
            return self._reject(msg, (Reason(exc.code, str(exc)),), "steward")
        except (ValueError, KeyError) as exc:
            return self._reject(
                msg,
                (Reason("MALFORMED_COMMAND", f"not a valid steward command: {exc}"),),
                "steward",
            )
        if command.entity != self.entity.name:
            reason = Reason(ReasonCode.WRONG_ENTITY, f"a {command.entity!r} command on {msg.topic}")
            return self._reject(msg, (reason,), "steward")
        key = command.golden_id.encode()
        state = self.decode_state(load_state(key))
        outcome = apply_command(self.entity, state, command)
        if isinstance(outcome, Rejected):
            return self._reject(msg, outcome.reasons, "steward")
        if isinstance(outcome, Unchanged):
            return StepResult(Outcome.UNCHANGED)
        return self._applied(outcome, key)


def new_change_id() -> str:
    """A fresh change id for producers that do not bring their own."""
    return str(uuid.uuid4())
