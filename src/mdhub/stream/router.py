"""The router: one deterministic order of an entity's inputs, for identity resolution.

Identity decisions depend on order (the first record of a person creates the golden record, later
ones link to it), and they must be the same when the hub replays its inputs from offset 0. Source
changes arrive on many partitions of the source topic and steward commands on the commands topic,
so the router merges all of an entity's input partitions into the entity's *resolve* topic in one
order that does not depend on when a consumer happened to fetch what:

* records are ordered by their broker append time (the source and commands topics use
  ``message.timestamp.type=LogAppendTime``), then topic (source before commands), partition and
  offset;
* a record is forwarded only once every other partition is known to hold nothing that sorts
  before it: either that partition's next record is already fetched, or the broker said (one
  ``ListOffsets`` request) that the partition had nothing unread at a moment later than the
  record's time plus a safety margin.

The same inputs therefore give the same order live and on replay. The inputs of a round go to the
entity's shard partition (partition 0 unless the model shards) in bundles
(:mod:`mdhub.stream.bundle`) that keep each input's coordinates, so rejections, ledgers and
reconciliation still name the source topic, partition and offset; an input too large for a bundle
goes alone, keyed like the input, with its coordinates in headers. Delivery is at-least-once:
offsets are committed only after Kafka has the forwarded records, and the worker's ledger skips
what a restarted router sends again.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from mdhub.kafka.config import admin_config, consumer_config
from mdhub.kafka.producer import HubProducer
from mdhub.settings import KafkaSettings
from mdhub.stream.bundle import H_BUNDLE, MAX_INPUTS, BundleCodec, oversized, runs

__all__ = [
    "H_KEY_NONE",
    "H_OFFSET",
    "H_PARTITION",
    "H_TIMESTAMP",
    "H_TOPIC",
    "OrderedMerge",
    "Pending",
    "Router",
    "shard_partition",
]

log = logging.getLogger("mdhub.router")

H_TOPIC = "mdhub-src-topic"
H_PARTITION = "mdhub-src-partition"
H_OFFSET = "mdhub-src-offset"
H_TIMESTAMP = "mdhub-src-ts"
H_KEY_NONE = "mdhub-src-nokey"

TP = tuple[str, int]


def shard_partition(shard: str | None, partitions: int) -> int:
    """The resolve-topic partition of a shard value (partition 0 when the model has no shards)."""
    if shard is None or partitions <= 1:
        return 0
    return zlib.crc32(shard.encode()) % partitions


@dataclass(slots=True)
class Pending:
    """A fetched input waiting for its turn."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class _Lane:
    queue: deque[Pending] = field(default_factory=deque)
    last_ts: int = -1  # append time of the newest record fetched (append times only grow)
    caught_up_at: int = -1  # local ms when the broker showed nothing unread
    next_offset: int = -1  # next offset to fetch


class OrderedMerge:
    """Merge partitions by (timestamp, topic rank, partition, offset), emitting only what is safe.

    Pure bookkeeping, no Kafka: :class:`Router` feeds it fetched records and what the broker said
    about partitions with nothing buffered.
    """

    def __init__(self, tps: Iterable[TP], rank: dict[str, int], margin_ms: int) -> None:
        self.rank = rank
        self.margin_ms = margin_ms
        self.lanes: dict[TP, _Lane] = {tp: _Lane() for tp in tps}

    def add(self, record: Pending) -> None:
        """Buffer a fetched record (records of one partition arrive in offset order)."""
        lane = self.lanes[(record.topic, record.partition)]
        lane.queue.append(record)
        lane.last_ts = max(lane.last_ts, record.timestamp)
        lane.next_offset = record.offset + 1

    def caught_up(self, tp: TP, at_ms: int) -> None:
        """The broker showed ``tp`` with nothing unread at local time ``at_ms``."""
        self.lanes[tp].caught_up_at = at_ms

    def _order(self, tp: TP, timestamp: int, offset: int) -> tuple[int, int, int, int]:
        return (timestamp, self.rank.get(tp[0], 99), tp[1], offset)

    def _bound(self, tp: TP, lane: _Lane) -> tuple[int, int, int, int]:
        # the earliest position an unfetched record of an empty lane can sort at
        floor = max(lane.last_ts, lane.caught_up_at - self.margin_ms)
        return self._order(tp, floor, lane.next_offset)

    def waiting(self) -> int:
        """How many records are buffered."""
        return sum(len(lane.queue) for lane in self.lanes.values())

    def blockers(self) -> list[TP]:
        """Empty partitions whose unknown future holds back the oldest buffered record."""
        head = self._head()
        if head is None:
            return []
        _, order = head
        return [
            tp
            for tp, lane in self.lanes.items()
            if not lane.queue and not order < self._bound(tp, lane)
        ]

    def _head(self) -> tuple[TP, tuple[int, int, int, int]] | None:
        best: tuple[TP, tuple[int, int, int, int]] | None = None
        for tp, lane in self.lanes.items():
            if lane.queue:
                first = lane.queue[0]
                order = self._order(tp, first.timestamp, first.offset)
                if best is None or order < best[1]:
                    best = (tp, order)
        return best

    def pop_ready(self, limit: int) -> list[Pending]:
        """Remove and return, in merge order, up to ``limit`` records that are safe to forward."""
        heap: list[tuple[tuple[int, int, int, int], TP]] = []
        bound: tuple[int, int, int, int] | None = None
        for tp, lane in self.lanes.items():
            if lane.queue:
                first = lane.queue[0]
                heap.append((self._order(tp, first.timestamp, first.offset), tp))
            else:
                b = self._bound(tp, lane)
                bound = b if bound is None or b < bound else bound
        heapq.heapify(heap)
        out: list[Pending] = []
        while heap and len(out) < limit:
            order, tp = heap[0]
            if bound is not None and not order < bound:
                break
            heapq.heappop(heap)
            lane = self.lanes[tp]
            out.append(lane.queue.popleft())
            if lane.queue:
                nxt = lane.queue[0]
                heapq.heappush(heap, (self._order(tp, nxt.timestamp, nxt.offset), tp))
            else:
                b = self._bound(tp, lane)
                bound = b if bound is None or b < bound else bound
        return out


ShardOf = Callable[[Pending], str | None]


class Router:
    """Forward one entity's source and command topics into its resolve topic, in merge order.

    Runs in a thread of the worker that owns partition 0 of the entity's resolve topic, so one
    router per entity is active at a time.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        group: str,
        inputs: list[str],
        resolve_topic: str,
        *,
        margin_ms: int = 100,
        batch: int = 2000,
        shard_of: ShardOf | None = None,
        bundles: BundleCodec,
        bundle_inputs: int = MAX_INPUTS,
    ) -> None:
        self.kafka = kafka
        self.group = group
        self.inputs = inputs
        self.resolve_topic = resolve_topic
        self.margin_ms = margin_ms
        self.batch = batch
        self.shard_of = shard_of
        self.bundles = bundles
        self.bundle_inputs = bundle_inputs
        self.forwarded = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self._admin_failures = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start forwarding in a daemon thread."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run_safely, name=f"router-{self.resolve_topic}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current round (its records delivered and committed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run_safely(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # reported by the worker, which exits so a restart retries
            self.error = exc
            log.critical("router for %s stopped: %s", self.resolve_topic, exc)

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        """Forward until :meth:`stop` is called."""
        consumer = Consumer(
            consumer_config(
                self.kafka,
                self.group,
                **{"enable.auto.commit": False, "fetch.wait.max.ms": 50},
            )
        )
        admin = AdminClient(admin_config(self.kafka))
        producer = HubProducer(self.kafka, **{"linger.ms": 2})
        try:
            partitions = self._partitions(consumer)
            tps = [(topic, p) for topic in self.inputs for p in partitions[topic]]
            committed = consumer.committed([TopicPartition(t, p) for t, p in tps], timeout=30)
            start = []
            merge = OrderedMerge(tps, {t: i for i, t in enumerate(self.inputs)}, self.margin_ms)
            for tp in committed:
                offset = tp.offset if tp.offset >= 0 else 0
                start.append(TopicPartition(tp.topic, tp.partition, offset))
                merge.lanes[(tp.topic, tp.partition)].next_offset = offset
            consumer.assign(start)
            resolve_partitions = len(
                consumer.list_topics(self.resolve_topic, timeout=30)
                .topics[self.resolve_topic]
                .partitions
                or {0: None}
            )
            log.info("router %s: %d input partitions", self.resolve_topic, len(tps))
            while not self._stop.is_set():
                if self._admin_failures >= 3:  # renew an admin client stuck on old metadata
                    admin = AdminClient(admin_config(self.kafka))
                    self._admin_failures = 0
                self._round(consumer, admin, producer, merge, resolve_partitions)
        finally:
            producer.flush(30)
            consumer.close()

    def _partitions(self, consumer: Consumer) -> dict[str, list[int]]:
        meta = consumer.list_topics(timeout=30)
        found: dict[str, list[int]] = {}
        for topic in self.inputs:
            info = meta.topics.get(topic)
            if info is None or info.error is not None:
                raise KafkaException(f"topic {topic} is missing; run `mdhub topics ensure`")
            found[topic] = sorted(info.partitions)
        return found

    def _round(
        self,
        consumer: Consumer,
        admin: AdminClient,
        producer: HubProducer,
        merge: OrderedMerge,
        resolve_partitions: int,
    ) -> None:
        # consume() waits up to 50 ms for a whole batch on purpose: that window gathers inputs into
        # bundles. Taking only what had arrived (consume_ready) made bundles of a few inputs at a
        # steady rate, and the worker, which waits ~15 ms for Kafka per batch, fell behind at
        # 1,500 new keys/s (latency p50 7.4 s, against 1.6 s with the window).
        for msg in consumer.consume(self.batch, timeout=0.05):
            if msg.error() is not None:
                log.warning("router fetch error: %s", msg.error())
                continue
            _, ts = msg.timestamp()
            merge.add(
                Pending(
                    str(msg.topic()),
                    int(msg.partition() or 0),
                    int(msg.offset() or 0),
                    int(ts),
                    msg.key(),
                    msg.value(),
                )
            )
        if not merge.waiting():
            return
        blockers = merge.blockers()
        if blockers:
            self._check_caught_up(consumer, admin, merge, blockers)
        ready = merge.pop_ready(self.batch * 4)
        if not ready:
            return
        last: dict[TP, int] = {}
        shards: dict[int, list[Pending]] = {}
        for record in ready:
            shard = self.shard_of(record) if self.shard_of is not None else None
            shards.setdefault(shard_partition(shard, resolve_partitions), []).append(record)
            last[(record.topic, record.partition)] = record.offset
        for partition, records in shards.items():
            for run in runs(records, self.bundle_inputs):
                if len(run) == 1 and oversized(run[0]):
                    self._forward_single(producer, run[0], partition)
                    continue
                producer.produce(
                    self.resolve_topic,
                    None,
                    self.bundles.encode(run),
                    partition=partition,
                    headers=[(H_BUNDLE, str(len(run)).encode())],
                )
        producer.deliver_all(300.0)
        consumer.commit(
            offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()],
            asynchronous=False,
        )
        self.forwarded += len(ready)

    def _forward_single(self, producer: HubProducer, record: Pending, partition: int) -> None:
        """Forward an input too large for a bundle on its own, its coordinates in headers."""
        headers: list[tuple[str, str | bytes | None]] = [
            (H_TOPIC, record.topic.encode()),
            (H_PARTITION, str(record.partition).encode()),
            (H_OFFSET, str(record.offset).encode()),
            (H_TIMESTAMP, str(record.timestamp).encode()),
        ]
        if record.key is None:
            headers.append((H_KEY_NONE, b"1"))
        producer.produce(
            self.resolve_topic, record.key, record.value, partition=partition, headers=headers
        )

    def _check_caught_up(
        self, consumer: Consumer, admin: AdminClient, merge: OrderedMerge, tps: list[TP]
    ) -> None:
        asked_at = int(time.time() * 1000)
        ends: dict[TP, int] = {}
        failed: list[TP] = list(tps)
        try:
            request = {TopicPartition(t, p): OffsetSpec.latest() for t, p in tps}  # type: ignore[no-untyped-call]
            futures = admin.list_offsets(request, request_timeout=10)
            failed = []
            for asked, future in futures.items():
                try:
                    ends[(asked.topic, asked.partition)] = future.result().offset
                except KafkaException:
                    failed.append((asked.topic, asked.partition))
        except KafkaException as exc:
            log.warning("router: cannot list offsets: %s", exc)
        if failed:
            # e.g. FENCED_LEADER_EPOCH after a broker restart: the admin client's metadata is
            # stale; the consumer's own (uncached) query refreshes it
            self._admin_failures += 1
            for topic, partition in failed:
                try:
                    _, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=5, cached=False
                    )
                except KafkaException as exc:
                    log.warning("router: cannot query the end of %s[%d]: %s", topic, partition, exc)
                    continue
                ends[(topic, partition)] = high
        for lane, end in ends.items():
            if merge.lanes[lane].next_offset >= end:
                merge.caught_up(lane, asked_at)
