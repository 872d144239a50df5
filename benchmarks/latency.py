"""Latency at a fixed rate: from publishing a change to its golden version being readable in Redis.

Redis pushes the moment of each write: keyspace notifications for hash commands (``Kh``) are
switched on for the run, and a subscriber thread stamps the first ``hset`` on each golden key. The
script that writes a view runs atomically, so when the notification is read the view is readable.
This costs Redis one small publish per view and the benchmark no polling at all.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from confluent_kafka import Producer

from mdhub.kafka.config import producer_config
from mdhub.naming import Stage, redis_key, topic_name
from mdhub.settings import Settings

from dataset import ENTITY, Dataset
from environment import HubProcess

__all__ = ["LatencyResult", "percentile", "run_latency"]

_EVENTS = "notify-keyspace-events"


@dataclass(frozen=True, slots=True)
class LatencyResult:
    """Publish-to-Redis latencies of new keys at a fixed rate (milliseconds)."""

    target_rate: float
    sent: int
    seen: int
    send_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

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
        self.pubsub = client.pubsub()
        self.pattern = pattern
        self.index = index
        self.seen: list[float | None] = [None] * len(index)
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
        get, index, seen = self.pubsub.get_message, self.index, self.seen
        while not self.stop.is_set():
            msg = get(timeout=0.2)
            if msg is None or msg["type"] != "pmessage" or msg["data"] != b"hset":
                continue
            now = time.perf_counter()
            position = index.get(msg["channel"])
            if position is not None and seen[position] is None:
                seen[position] = now
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
    drain_s: float = 60.0,
) -> LatencyResult:
    """Publish ``dataset`` (new keys only) at ``rate`` per second and time each one into Redis."""
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
        sent: list[float] = []
        started = time.perf_counter()
        for i, (key, value) in enumerate(dataset.messages):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent.append(time.perf_counter())
            producer.produce(source, value, key)
            producer.poll(0)
            if on_progress is not None and i % 250 == 0:
                on_progress("sent", i)
        send_s = time.perf_counter() - started
        producer.flush(60)
        deadline = time.monotonic() + drain_s
        while watcher.count < len(sent) and time.monotonic() < deadline:
            for proc in processes:
                proc.check_alive()
            if on_progress is not None:
                on_progress("seen", watcher.count)
            time.sleep(0.1)
        if on_progress is not None:
            on_progress("seen", watcher.count)
    finally:
        watcher.close()
        client.config_set(_EVENTS, before)
    latencies = sorted(
        (seen - at) * 1000 for seen, at in zip(watcher.seen, sent, strict=False) if seen is not None
    )
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
    )
