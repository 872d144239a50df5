"""Latency at a fixed rate: from publishing a change to its golden version being readable in Redis.

Redis pushes the moment of each write: keyspace notifications for hash commands (``Kh``) are
switched on for the run, and a subscriber thread stamps the first ``hset`` on each golden key. The
script that writes a view runs atomically, so when the notification is read the view is readable.
This costs Redis one small publish per view and the benchmark no polling at all.
"""

from __future__ import annotations

import csv
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from mdhub.kafka.config import consumer_config, producer_config
from mdhub.naming import Stage, redis_key, topic_name
from mdhub.settings import KafkaSettings, Settings

from dataset import ENTITY, Dataset
from environment import HubProcess
from topics import end_offsets

__all__ = ["LatencyResult", "percentile", "run_latency", "write_trace"]

_EVENTS = "notify-keyspace-events"


@dataclass(frozen=True, slots=True)
class LatencyResult:
    """Publish-to-Redis latencies of new keys at a fixed rate (milliseconds).

    ``worker_*`` split each latency at the golden record's Kafka timestamp (set when the worker
    produced it): publish -> golden produced by the worker (the router's hop to the resolve topic
    included), and golden produced -> readable in Redis (the worker's delivery wait, then the
    projector). Those use wall clocks at ms resolution.
    """

    target_rate: float
    sent: int
    seen: int
    send_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    worker_p50_ms: float
    worker_p95_ms: float
    projector_p50_ms: float
    projector_p95_ms: float

    @property
    def achieved_rate(self) -> float:
        """Records published per second, as paced."""
        return self.sent / self.send_s if self.send_s else 0.0


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


class _Watcher(threading.Thread):
    """Stamps the first write of each golden key of interest."""

    def __init__(self, client: redis.Redis, pattern: str, index: dict[bytes, int]) -> None:
        super().__init__(name="latency-watcher", daemon=True)
        self.pubsub = client.pubsub()  # type: ignore[no-untyped-call]
        self.pattern = pattern
        self.index = index
        self.seen: list[float | None] = [None] * len(index)
        self.seen_wall: list[float | None] = [None] * len(index)
        self.count = 0
        self.stop = threading.Event()

    def subscribe(self, timeout_s: float = 10) -> None:
        """Subscribe, and return once Redis confirmed it (so no early write is missed)."""
        self.pubsub.psubscribe(self.pattern)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = self.pubsub.get_message(timeout=0.5)
            if msg is not None and msg["type"] == "psubscribe":
                return
        raise RuntimeError("Redis did not confirm the keyspace subscription")

    def run(self) -> None:
        get, index, seen, seen_wall = self.pubsub.get_message, self.index, self.seen, self.seen_wall
        while not self.stop.is_set():
            msg = get(timeout=0.2)
            if msg is None or msg["type"] != "pmessage" or msg["data"] != b"hset":
                continue
            now, wall = time.perf_counter(), time.time()
            position = index.get(msg["channel"])
            if position is not None and seen[position] is None:
                seen[position], seen_wall[position] = now, wall
                self.count += 1

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        self.pubsub.close()


def run_latency(
    settings: Settings,
    client: redis.Redis,
    dataset: Dataset,
    rate: float,
    processes: list[HubProcess],
    on_progress: Callable[[str, int], None] | None = None,
    *,
    settled: Callable[[], bool] = lambda: False,
    quiet_s: float = 5.0,
    drain_s: float = 120.0,
    trace: Path | None = None,
) -> LatencyResult:
    """Publish ``dataset`` (new keys only) at ``rate`` per second and time each one into Redis.

    With ``trace``, write each record's moments there as CSV (see :func:`write_trace`)."""
    db = int(client.connection_pool.connection_kwargs.get("db", 0))
    prefix = f"__keyspace@{db}__:"
    channel = prefix + redis_key(settings.namespace, ENTITY, "golden", "")
    index = {(channel + gid).encode(): i for i, gid in enumerate(dataset.golden_ids)}
    if len(index) != len(dataset.messages):
        raise ValueError("the latency dataset must hold one change per key (no updates)")
    before = str(client.config_get(_EVENTS).get(_EVENTS, ""))
    client.config_set(_EVENTS, "".join(sorted(set(before) | {"K", "h"})))
    watcher = _Watcher(client, channel + "*", index)
    try:
        watcher.subscribe()
        watcher.start()
        source = topic_name(settings.namespace, ENTITY, Stage.SOURCE)
        producer = Producer(producer_config(settings.kafka))
        golden = topic_name(settings.namespace, ENTITY, Stage.GOLDEN)
        golden_from = {p: high for p, (_, high) in end_offsets(settings.kafka, golden).items()}
        sent: list[float] = []
        sent_wall: list[float] = []
        started = time.perf_counter()
        for i, (key, value) in enumerate(dataset.messages):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent.append(time.perf_counter())
            sent_wall.append(time.time())
            producer.produce(source, value, key)
            producer.poll(0)
            if on_progress is not None and i % 250 == 0:
                on_progress("sent", i)
        send_s = time.perf_counter() - started
        if on_progress is not None:
            on_progress("sent", len(sent))
        producer.flush(60)
        # Wait for the stragglers; stop early once nothing arrives and the hub has committed
        # all its input (a record it dropped will never show).
        deadline = time.monotonic() + drain_s
        last, last_change = -1, time.monotonic()
        while watcher.count < len(sent) and time.monotonic() < deadline:
            for proc in processes:
                proc.check_alive()
            if watcher.count != last:
                last, last_change = watcher.count, time.monotonic()
            elif time.monotonic() - last_change > quiet_s and settled():
                break
            if on_progress is not None:
                on_progress("seen", watcher.count)
            time.sleep(0.2)
        if on_progress is not None:
            on_progress("seen", watcher.count)
    finally:
        watcher.close()
        client.config_set(_EVENTS, before)
    latencies = sorted(
        (seen - at) * 1000 for seen, at in zip(watcher.seen, sent, strict=False) if seen is not None
    )
    produced = _golden_times(
        settings.kafka,
        golden,
        golden_from,
        {gid.encode(): i for i, gid in enumerate(dataset.golden_ids)},
    )
    if trace is not None:
        write_trace(trace, sent_wall, produced, watcher.seen_wall)
    worker, projector = [], []
    for i, at in enumerate(sent_wall):
        made, seen_at = produced[i], watcher.seen_wall[i]
        if made is not None and seen_at is not None:
            worker.append((made - at) * 1000)
            projector.append((seen_at - made) * 1000)
    worker.sort()
    projector.sort()
    return LatencyResult(
        target_rate=rate,
        sent=len(sent),
        seen=len(latencies),
        send_s=send_s,
        p50_ms=percentile(latencies, 0.50),
        p95_ms=percentile(latencies, 0.95),
        p99_ms=percentile(latencies, 0.99),
        max_ms=latencies[-1] if latencies else math.nan,
        mean_ms=sum(latencies) / len(latencies) if latencies else math.nan,
        worker_p50_ms=percentile(worker, 0.50),
        worker_p95_ms=percentile(worker, 0.95),
        projector_p50_ms=percentile(projector, 0.50),
        projector_p95_ms=percentile(projector, 0.95),
    )


def write_trace(
    path: Path,
    published: list[float],
    produced: list[float | None],
    seen: list[float | None],
) -> None:
    """Write one CSV row per record of the latency phase, in publishing order: when it was
    published, when the worker produced its golden record (the record's Kafka timestamp) and when
    it was readable in Redis, in Unix seconds (empty when never). Latency over the phase's time
    shows what percentiles hide: a stall, a backlog that stays, a slow start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["index", "published_s", "golden_produced_s", "seen_in_redis_s"])
        for i, at in enumerate(published):
            made, shown = produced[i], seen[i]
            out.writerow(
                [
                    i,
                    f"{at:.4f}",
                    "" if made is None else f"{made:.3f}",
                    "" if shown is None else f"{shown:.4f}",
                ]
            )


def _golden_times(
    kafka: KafkaSettings, topic: str, start: dict[int, int], keys: dict[bytes, int]
) -> list[float | None]:
    """The Kafka timestamp (s) of the first golden record of each key, from ``start`` offsets."""
    times: list[float | None] = [None] * len(keys)
    ends = {p: high for p, (_, high) in end_offsets(kafka, topic).items()}
    left = {p for p in ends if ends[p] > start.get(p, 0)}
    consumer = Consumer(
        consumer_config(kafka, "mdhub-bench-probe", **{"enable.auto.commit": False})
    )
    try:
        consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in left])
        deadline = time.monotonic() + 60
        while left and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error() is not None:
                    continue
                position = keys.get(msg.key() or b"")
                if position is not None and times[position] is None:
                    times[position] = msg.timestamp()[1] / 1000
                partition, offset = msg.partition(), msg.offset()
                if partition is not None and offset is not None and offset + 1 >= ends[partition]:
                    left.discard(partition)
    finally:
        consumer.close()
    return times
