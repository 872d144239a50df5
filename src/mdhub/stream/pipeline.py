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
from itertools import islice

from mdhub.domain.commands import IDENTITY_ACTIONS, Action, StewardCommand, apply_command
from mdhub.domain.merge import Applied, Rejected
from mdhub.domain.model import EntityModel
from mdhub.domain.records import (
    CandidateChange,
    Cause,
    CauseKind,
    GoldenRecord,
    GoldenStatus,
    Reason,
)
from mdhub.domain.resolve import (
    MatchKeys,
    PotentialMatch,
    Resolution,
    Resolver,
    ReviewStatus,
    pair_id,
)
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
    potential_match_to_avro,
    rejected_to_avro,
)
from mdhub.stream.identity import IdentityIndex, summary_key

__all__ = ["EntityPipeline", "Message", "Outcome", "Output", "StepResult", "standardized_change"]

StateLoader = Callable[[bytes], bytes | None]
DECODED_CACHE_SIZE = 10_000
"""Decoded golden records kept (the most recently read; the store holds every one's bytes). A
full garbage collection walks every object the worker keeps, and a decoded golden record is a few
dozen: with 200,000 the benchmark's worker (80,000 keys) paused 0.56-1.03 s per full collection,
4.6 s in all over 100,000 changes; with 10,000, 0.37-0.45 s and 2.2-2.6 s, at the same throughput
(1,579 and 1,641 changes/s against 1,613: updates of keys not kept are decoded again). The states
the worker writes are not kept (see ``EntityPipeline._resolved``), only those it reads and leaves
unchanged (candidates, merge partners)."""


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
    PENDING_REVIEW = "pending_review"  # accepted, with a potential match for a steward


@dataclass(slots=True)
class StepResult:
    """What processing one message produced."""

    outcome: Outcome
    outputs: list[Output] = field(default_factory=list)
    writes: list[tuple[bytes, bytes | None]] = field(default_factory=list)  # state key -> value
    reasons: tuple[Reason, ...] = ()
    golden_version: int | None = None
    comparisons: int = 0
    capped: tuple[str, ...] = ()


def standardized_change(
    entity: EntityModel, change: CandidateChange
) -> tuple[CandidateChange, list[Reason]]:
    """``change`` as it is validated and resolved: strings trimmed, then each attribute's
    standardizers applied; with the values they refused. The worker's helper process
    (:mod:`mdhub.stream.ahead`) prepares its answers with the same function."""
    return apply_standardizers(entity, standardize(change))


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
        self.review_codec = catalog.codec("mdhub.common.PotentialMatch")
        self.review_topic = topic_name(namespace, entity.name, Stage.REVIEW)
        self.resolver = Resolver(entity)
        narrowing = entity.matching._plan.narrowing if entity.matching is not None else None
        # the date the identity index keeps in its blocks for the resolver (Narrowing)
        self._date_key = narrowing.key if narrowing is not None else None
        # decoded golden states by id, with the bytes they came from (LRU-ish, insertion order)
        self.decoded: dict[str, tuple[bytes, GoldenRecord]] = {}

    # -- helpers -----------------------------------------------------------------------------

    def reject(
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
            return self.reject(
                msg, (Reason(ReasonCode.UNDECODABLE, "message has no value"),), "validate"
            )
        if len(msg.value) > self.max_payload_bytes:
            reason = Reason(
                ReasonCode.OVERSIZED,
                f"payload of {len(msg.value)} bytes exceeds the limit of {self.max_payload_bytes}",
            )
            return self.reject(msg, (reason,), "validate")
        try:
            change = change_from_avro(self.change_codec.decode(msg.value))
        except DecodeError as exc:
            return self.reject(msg, (Reason(exc.code, str(exc)),), "validate")
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
        change, problems = standardized_change(self.entity, change)
        reasons.extend(problems)
        reasons.extend(validate_change(self.entity, change))
        if reasons:
            return self.reject(msg, tuple(reasons), "validate", change)
        return change

    def workspace(self, load_state: StateLoader, index: IdentityIndex) -> _Workspace:
        """The resolver's view of the state: golden records from the store, summaries and blocks
        from the in-memory index."""
        index.date_by(self._date_key)
        return _Workspace(self, load_state, index)

    def process(
        self,
        msg: Message,
        load_state: StateLoader,
        index: IdentityIndex | None = None,
        keys: MatchKeys | None = None,
    ) -> StepResult:
        """Process one source message; ``load_state(key)`` returns the stored state bytes.
        ``keys``: the match keys of the message's change, when computed already (see
        :meth:`mdhub.domain.resolve.Resolver.resolve`)."""
        parsed = self.parse(msg)
        if isinstance(parsed, StepResult):
            return parsed
        change = parsed
        index = index if index is not None else IdentityIndex()
        ws = self.workspace(load_state, index)
        resolution = self.resolver.resolve(ws, change, keys)
        if resolution.rejected is not None:
            return self.reject(msg, resolution.rejected.reasons, "merge", change)
        return self._resolved(resolution, ws, index)

    def _resolved(self, resolution: Resolution, ws: _Workspace, index: IdentityIndex) -> StepResult:
        outputs: list[Output] = []
        encoded: dict[int, bytes] = {}
        for applied in resolution.goldens:
            golden = applied.golden
            key = golden.golden_id.encode()
            golden_bytes = self.encode_golden(golden)
            encoded[id(golden)] = golden_bytes
            event_bytes = self.event_codec.encode(change_event_to_avro(self.entity, applied.event))
            outputs.append(Output(self.changes_topic, key, event_bytes))
            outputs.append(Output(self.golden_topic, key, golden_bytes))
            if golden.status in (GoldenStatus.RETIRED, GoldenStatus.ERASED):
                # the final version (an erased one holds no attribute) tells readers to drop it;
                # the tombstone after it lets compaction remove the key
                outputs.append(Output(self.golden_topic, key, None))
        for match in resolution.reviews:
            outputs.append(
                Output(
                    self.review_topic,
                    match.pair_id.encode(),
                    self.review_codec.encode(potential_match_to_avro(self.entity.name, match)),
                )
            )
        writes: list[tuple[bytes, bytes | None]] = []
        for golden_id, state in resolution.states.items():
            data = encoded.get(id(state)) or self.encode_golden(state)
            writes.append((golden_id.encode(), data))
            # Not kept decoded: few new states are read again soon (an update of the same golden
            # record), and keeping each alive until then cost more than decoding those again (in
            # process, the benchmark's 100,000 changes: 256 us per change against 229; the
            # collector walked every kept state twice). A copy kept from an earlier read is stale.
            ws.forget(golden_id)
        for ref, summary in resolution.summaries.items():
            stamped = index.stamp(summary)
            writes.append((summary_key(ref), stamped.to_json()))
            index.put(stamped)
        if resolution.goldens:
            outcome = Outcome.PENDING_REVIEW if resolution.reviews else Outcome.ACCEPTED
        else:
            outcome = Outcome.UNCHANGED
        last = resolution.goldens[-1].golden.version if resolution.goldens else None
        return StepResult(
            outcome,
            outputs,
            writes=writes,
            golden_version=last,
            comparisons=resolution.comparisons,
            capped=tuple(resolution.capped),
        )

    def process_command(
        self, msg: Message, load_state: StateLoader, index: IdentityIndex | None = None
    ) -> StepResult:
        """Apply one steward command from the commands topic."""
        if msg.value is None:
            return self.reject(
                msg, (Reason(ReasonCode.UNDECODABLE, "command has no value"),), "steward"
            )
        try:
            data = self.command_codec.decode(msg.value)
            command = command_from_avro(data, self.entity)
        except DecodeError as exc:
            return self.reject(msg, (Reason(exc.code, str(exc)),), "steward")
        except (ValueError, KeyError) as exc:
            return self.reject(
                msg,
                (Reason("MALFORMED_COMMAND", f"not a valid steward command: {exc}"),),
                "steward",
            )
        if command.entity != self.entity.name:
            reason = Reason(ReasonCode.WRONG_ENTITY, f"a {command.entity!r} command on {msg.topic}")
            return self.reject(msg, (reason,), "steward")
        index = index if index is not None else IdentityIndex()
        ws = self.workspace(load_state, index)
        if command.action in IDENTITY_ACTIONS:
            resolution = self._identity_command(ws, command)
        else:
            resolution = Resolution()
            state = ws.golden(command.golden_id)
            outcome = apply_command(self.entity, state, command)
            if isinstance(outcome, Rejected):
                resolution.rejected = outcome
            elif isinstance(outcome, Applied):
                resolution.goldens.append(outcome)
                resolution.states[command.golden_id] = outcome.golden
                if outcome.golden.status is GoldenStatus.ERASED and state is not None:
                    resolution.summaries.update(self.resolver.erase_summaries(ws, state))
        if resolution.rejected is not None:
            return self.reject(msg, resolution.rejected.reasons, "steward")
        return self._resolved(resolution, ws, index)

    def _identity_command(self, ws: _Workspace, command: StewardCommand) -> Resolution:
        cause = Cause(CauseKind.STEWARD_COMMAND, command.command_id)
        at = command.issued_at
        action = command.action
        resolver = self.resolver

        def need(*values: str | None) -> Resolution | None:
            if all(values):
                return None
            out = Resolution()
            out.rejected = Rejected(
                (Reason("MALFORMED_COMMAND", f"{action.value} needs more arguments"),)
            )
            return out

        if action is Action.MERGE:
            missing = need(command.golden_id, command.other_golden_id)
            if missing:
                return missing
            refs = []
            for golden_id in (command.golden_id, command.other_golden_id):
                state = ws.golden(golden_id or "")
                if state is None or state.status is not GoldenStatus.ACTIVE:
                    out = Resolution()
                    out.rejected = Rejected(
                        (Reason("NOT_ACTIVE", f"golden {golden_id} is not an active record"),)
                    )
                    return out
                refs.append(state.active_sources[0].source_ref)
            return resolver.link(ws, refs[0], refs[1], command.command_id, at, cause)
        if action is Action.SPLIT:
            missing = need(command.golden_id, command.source_ref)
            return missing or resolver.split(
                ws, command.golden_id, command.source_ref or "", command.command_id, at, cause
            )
        missing = need(command.source_ref, command.other_ref)
        if missing:
            return missing
        a, b = command.source_ref or "", command.other_ref or ""
        if action in (Action.LINK, Action.ACCEPT_MATCH):
            out = resolver.link(ws, a, b, command.command_id, at, cause)
        else:
            undo = action is Action.UNDO_NOT_MATCH
            out = resolver.not_match(ws, a, b, command.command_id, at, cause, undo=undo)
        if out.rejected is None and action in (Action.ACCEPT_MATCH, Action.REJECT_MATCH):
            sa, sb = out.summaries.get(a) or ws.summary(a), out.summaries.get(b) or ws.summary(b)
            status = (
                ReviewStatus.ACCEPTED if action is Action.ACCEPT_MATCH else ReviewStatus.REJECTED
            )
            out.reviews.append(
                PotentialMatch(
                    pair_id=command.pair_id or pair_id(self.entity.name, a, b),
                    status=status,
                    ref=a,
                    golden_id=sa.golden_id if sa else "",
                    candidate_ref=b,
                    candidate_golden_id=sb.golden_id if sb else "",
                    score=0.0,
                    blocking_key=None,
                    contributions=(),
                    detected_at=at,
                    decided_by=command.command_id,
                )
            )
        return out


class _Workspace:
    """Golden states read from the store, decoded once and kept while unchanged, summaries and
    blocks from the identity index."""

    def __init__(
        self, pipeline: EntityPipeline, load_state: StateLoader, index: IdentityIndex
    ) -> None:
        self.pipeline = pipeline
        self.load_state = load_state
        self.index = index
        self.summary = index.summaries.get  # the dict's own method: one call less per lookup
        self.block = index.block
        self.dated_block = index.dated_block

    def golden(self, golden_id: str) -> GoldenRecord | None:
        data = self.load_state(golden_id.encode())
        if not data:
            return None
        cache = self.pipeline.decoded
        hit = cache.get(golden_id)
        if hit is not None and hit[0] == data:
            return hit[1]
        state = self.pipeline.decode_state(data)
        self.remember(golden_id, data, state)
        return state

    def forget(self, golden_id: str) -> None:
        """Drop a decoded copy of ``golden_id`` (its state was just written)."""
        self.pipeline.decoded.pop(golden_id, None)

    def remember(self, golden_id: str, data: bytes, state: GoldenRecord | None) -> None:
        cache = self.pipeline.decoded
        if state is None:
            cache.pop(golden_id, None)
            return
        if len(cache) >= DECODED_CACHE_SIZE and golden_id not in cache:
            # the oldest eighth at once: a dict finds its first entry by walking past the ones
            # deleted before it, so evicting one at a time cost 3.6-6.5 us per insert (0.2 now)
            for old in list(islice(cache, DECODED_CACHE_SIZE // 8 or 1)):
                del cache[old]
        cache[golden_id] = (data, state)


def new_change_id() -> str:
    """A fresh change id for producers that do not bring their own."""
    return str(uuid.uuid4())
