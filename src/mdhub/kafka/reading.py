"""Read topics from their start to the end they have now (rebuilds, reconciliation)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from mdhub.errors import KafkaUnavailableError

__all__ = ["Snapshot", "consume_ready", "read_to_end", "snapshot_ends"]

BATCH = 500
IDLE_LIMIT_S = 60.0


def consume_ready(consumer: Consumer, limit: int, timeout: float) -> list[KafkaMessage]:
    """Wait up to ``timeout`` s for one message, then take up to ``limit`` in all of those that
    have already arrived, without waiting for more.

    ``Consumer.consume(limit, timeout)`` itself waits until it has ``limit`` messages or the
    timeout has passed, so at a low rate every message waited for a batch to fill: 100 messages/s
    on one partition, read with ``consume(500, timeout=0.5)``, reached the reader after p50 265 /
    p95 490 ms; read with this, after 15 / 27 ms (both with the projector's ``fetch.wait.max.ms``
    of 25 ms). Under load the client's prefetched messages still fill whole batches. The
    projector, the rebuild, the lag source and the bundle counter read with it; the router keeps
    its window, which gathers inputs into bundles (see ``Router._round``).
    """
    first = consumer.consume(1, timeout=timeout)
    if not first or limit <= 1:
        return first
    return first + consumer.consume(limit - 1, timeout=0)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The non-empty partitions of some topics and the end offsets they had when looked at."""

    ends: dict[tuple[str, int], int]
    total: int  # messages between the low watermarks and those ends


def snapshot_ends(consumer: Consumer, topics: Iterable[str], timeout: float) -> Snapshot:
    """Look up the current end of every non-empty partition of ``topics`` (missing ones skipped).

    Raises:
        KafkaUnavailableError: Kafka cannot be reached.
    """
    ends: dict[tuple[str, int], int] = {}
    total = 0
    try:
        meta = consumer.list_topics(timeout=timeout)
        for topic in topics:
            info = meta.topics.get(topic)
            if info is None or info.error is not None:
                continue
            for partition in info.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout
                )
                if high > low:
                    ends[(topic, partition)] = high
                    total += high - low
    except KafkaException as exc:
        raise KafkaUnavailableError(
            f"Kafka is not reachable ({exc}); check `mdhub stack status` or MDHUB_KAFKA__BOOTSTRAP_SERVERS"
        ) from exc
    return Snapshot(ends, total)


def read_to_end(
    consumer: Consumer, snapshot: Snapshot, on_batch: Callable[[Sequence[KafkaMessage]], None]
) -> None:
    """Assign the snapshot's partitions from offset 0 and hand over batches until their ends.

    Raises:
        KafkaUnavailableError: nothing arrived for a minute.
    """
    ends = dict(snapshot.ends)
    if not ends:
        return
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in ends])
    idle_deadline = time.monotonic() + IDLE_LIMIT_S
    while ends:
        messages = [m for m in consume_ready(consumer, BATCH, 0.5) if m.error() is None]
        if not messages:
            if time.monotonic() > idle_deadline:
                topics = sorted({t for t, _ in ends})
                raise KafkaUnavailableError(
                    f"no progress reading {', '.join(topics)} for {IDLE_LIMIT_S:.0f}s"
                )
            continue
        idle_deadline = time.monotonic() + IDLE_LIMIT_S
        on_batch(messages)
        for m in messages:
            key = (str(m.topic()), int(m.partition() or 0))
            if key in ends and int(m.offset() or 0) + 1 >= ends[key]:
                del ends[key]
    consumer.unassign()
