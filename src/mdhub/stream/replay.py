"""The resolve stage without Kafka: the same pipeline over inputs in the router's order.

Used as the oracle of integration tests (what the hub must have computed from the inputs on its
topics), by the matching benchmark, and to reason about replays: feeding the same inputs in the
same order always gives the same golden ids and records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from mdhub.domain.records import GoldenRecord
from mdhub.stream.identity import IdentityIndex
from mdhub.stream.pipeline import EntityPipeline, Message, Outcome, Output, StepResult

__all__ = ["LocalResolveStage", "router_order"]


def router_order(messages: Iterable[Message], topic_rank: dict[str, int]) -> list[Message]:
    """Sort inputs as the router forwards them: broker time, topic rank, partition, offset."""
    return sorted(
        messages,
        key=lambda m: (m.timestamp_ms or 0, topic_rank.get(m.topic, 99), m.partition, m.offset),
    )


@dataclass
class LocalResolveStage:
    """One shard of the resolve stage in memory: state store, identity index, outputs."""

    pipeline: EntityPipeline
    store: dict[bytes, bytes] = field(default_factory=dict)
    index: IdentityIndex = field(default_factory=IdentityIndex)
    outputs: list[Output] = field(default_factory=list)
    comparisons: int = 0

    def feed(self, message: Message) -> StepResult:
        """Process one input (a source change or, on the commands topic, a steward command)."""
        if message.topic == self.pipeline.commands_topic:
            result = self.pipeline.process_command(message, self.store.get, self.index)
        else:
            result = self.pipeline.process(message, self.store.get, self.index)
        for key, value in result.writes:
            if value is None:
                self.store.pop(key, None)
            else:
                self.store[key] = value
        self.outputs.extend(result.outputs)
        self.comparisons += result.comparisons
        return result

    def feed_all(self, messages: Iterable[Message]) -> dict[Outcome, int]:
        """Feed inputs in the given order; return how many ended how."""
        counts: dict[Outcome, int] = {}
        for message in messages:
            outcome = self.feed(message).outcome
            counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    def goldens(self) -> dict[str, GoldenRecord]:
        """The latest state of every golden record (merged redirects included)."""
        out: dict[str, GoldenRecord] = {}
        for key, value in self.store.items():
            if key.startswith(b"__"):
                continue
            state = self.pipeline.decode_state(value)
            if state is not None and state.version > 0:
                out[key.decode()] = state
        return out

    def clusters(self) -> dict[str, str]:
        """Source ref -> golden id, for every active source record."""
        return {
            ref: summary.golden_id
            for ref, summary in self.index.summaries.items()
            if summary.active
        }
