"""Continuity of the resolve stream: each message of an owned partition once, in offset order.

The worker's ledger (:class:`mdhub.domain.ledger.Ledger`) skips an input whose source offset it
already covers, which is right only if the inputs reach the agent in the router's order with none
left out. faust's consumer does not promise that:

* after a rebalance with table recovery, faust seeks the stream partitions to their committed
  offsets while its fetcher already runs (it read the changelogs), and then resumes flow control,
  which clears every stream queue (mode's ``FlowControlEvent.resume``). Messages fetched after the
  seek and still queued are dropped, and the fetcher goes on after them (faust-streaming issue
  #596, open: "A race condition in recovery causes unrecoverable gaps in acked offsets and
  consequently blocks committing"). Seen in the kill -9 test, before this check existed:
  ~500 inputs of one source partition missing from the batch after a restart. They are never
  acknowledged, so the group's committed offset stays before them, but the later inputs that were
  processed moved the ledger past them, so a restart skipped them as done: lost for good. (The
  group's commit also stopped there, which the stall watch then took for a stalled consumer.)
  :mod:`mdhub.stream.flow` now keeps faust from clearing the queues at that moment; this check
  stays as the guard against any other way to lose messages.
* a seek back to the committed offsets (after a rebalance, or a fetch while flow is stopped)
  delivers messages again that the agent already had.

So the agent checks every batch before it processes any of it. A message below the partition's
next expected offset is a re-delivery: it is left out (and acknowledged). A message beyond it means
messages went missing: the worker exits (:data:`mdhub.stream.exits.EXIT_STREAM_GAP`) without
processing or acknowledging anything of the batch, and a restart resumes from the committed
offset, which lies at or before the first missing message. The first expected offset of a
partition is the group's committed offset when the worker first sees the partition after an
assignment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["StreamContinuity", "StreamGap"]


class StreamGap(Exception):
    """Messages of a partition went missing between the agent's batches."""

    def __init__(self, partition: int, expected: int, got: int) -> None:
        self.partition = partition
        self.expected = expected
        self.got = got
        super().__init__(
            f"partition {partition}: the next message should be offset {expected}, the stream "
            f"gave {got} ({got - expected} message(s) missing)"
        )


@dataclass(slots=True)
class StreamContinuity:
    """The next offset the agent expects on each resolve partition it owns."""

    expected: dict[int, int] = field(default_factory=dict)

    def unknown(self, partitions: Iterable[int]) -> set[int]:
        """Those of ``partitions`` without an expected offset (new since the last assignment)."""
        return {p for p in partitions if p not in self.expected}

    def start(self, starts: Mapping[int, int]) -> None:
        """Expect each partition's messages from the given offset (the committed one)."""
        self.expected.update(starts)

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions revoked: their next assignment starts from the committed offset again."""
        for partition in partitions:
            self.expected.pop(partition, None)

    def admit(self, coordinates: Sequence[tuple[int, int]]) -> list[int]:
        """Indexes of the messages (``(partition, offset)``, in stream order) to process.

        Re-delivered messages are left out. Expected offsets move only when the whole batch is
        admitted; a partition seen for the first time (no :meth:`start`) starts at its first
        message.

        Raises:
            StreamGap: a message is beyond its partition's expected offset.
        """
        expected = dict(self.expected)
        admitted: list[int] = []
        for index, (partition, offset) in enumerate(coordinates):
            want = expected.get(partition, offset)
            if offset < want:
                continue
            if offset > want:
                raise StreamGap(partition, want, offset)
            expected[partition] = offset + 1
            admitted.append(index)
        self.expected = expected
        return admitted
