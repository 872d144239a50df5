"""Lag metrics and readiness without a broker: a scripted offset source behind the monitor,
``/metrics`` and ``/readyz`` through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mdhub.api import PROBLEM_JSON, create_app
from mdhub.errors import KafkaUnavailableError
from mdhub.ops.lag import GroupInfo, LagSnapshot, OffsetSample, PartitionKey
from mdhub.ops.monitor import LagMonitor
from mdhub.testing import InMemoryGoldenCache

GOLDEN = "mdhub.customer.golden.v1"
EXT = PartitionKey("ext-crm", GOLDEN, 0)
PROJ = PartitionKey("mdhub-projector", GOLDEN, 0)
PROJ1 = PartitionKey("mdhub-projector", GOLDEN, 1)


class ScriptedSource:
    """Hands out the given snapshots in turn (the last one forever); can play dead."""

    def __init__(self, *snapshots: LagSnapshot) -> None:
        self.snapshots = list(snapshots)
        self.reachable = True
        self.closed = False

    def sample(self) -> LagSnapshot:
        self.ping()
        return self.snapshots.pop(0) if len(self.snapshots) > 1 else self.snapshots[0]

    def ping(self, timeout_s: float | None = None) -> None:
        if not self.reachable:
            raise KafkaUnavailableError("Kafka at 127.0.0.1:1 is not reachable (simulated)")

    def close(self) -> None:
        self.closed = True


def snapshot(at: float, ext_committed: int, end: int) -> LagSnapshot:
    return LagSnapshot(
        at,
        {
            EXT: OffsetSample(
                at=at, log_end=end, committed=ext_committed, committed_timestamp=at - 30, owned=True
            ),
            PROJ: OffsetSample(at=at, log_end=end, committed=end, owned=True),
            PROJ1: OffsetSample(
                at=at, log_end=20, committed=15, committed_timestamp=at - 2.5, owned=True
            ),
        },
        {"ext-crm": GroupInfo("STABLE", 1), "mdhub-projector": GroupInfo("STABLE", 2)},
    )


def scrape(monitor: LagMonitor) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(monitor.registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labels(**kw: str) -> frozenset[tuple[str, str]]:
    return frozenset(kw.items())


@pytest.fixture
def source() -> ScriptedSource:
    # ext-crm: committed 100 -> 110 while the log grows 200 -> 300 in 10 s: WARN
    return ScriptedSource(snapshot(1000.0, 100, 200), snapshot(1010.0, 110, 300))


@pytest.fixture
def monitor(source: ScriptedSource) -> Iterator[LagMonitor]:
    m = LagMonitor(source, window_s=60, interval_s=0.05, projector_group="mdhub-projector")
    yield m
    m.stop()


def test_the_collector_reports_lag_status_rates_and_projection_lag(monitor: LagMonitor) -> None:
    assert scrape(monitor)[("mdhub_lag_sample_errors_total", labels())] == 0
    monitor.sample_once()
    monitor.sample_once()
    m = scrape(monitor)
    part = labels(group="ext-crm", topic=GOLDEN, partition="0")
    assert m[("mdhub_consumer_lag_messages", part)] == 190
    assert m[("mdhub_consumer_lag_seconds", part)] == 30
    assert m[("mdhub_consumer_committed_offset", part)] == 110
    assert m[("mdhub_consumer_consume_rate_messages_per_second", part)] == 1.0
    assert m[("mdhub_consumer_catch_up_seconds", part)] == math.inf
    assert m[("mdhub_consumer_partition_status_code", part | {("status", "WARN")})] == 1
    assert m[("mdhub_consumer_group_status_code", labels(group="ext-crm", status="WARN"))] == 1
    assert m[("mdhub_consumer_group_lag_messages", labels(group="ext-crm"))] == 190
    assert m[("mdhub_consumer_group_members", labels(group="mdhub-projector", state="STABLE"))] == 2
    topic0 = labels(topic=GOLDEN, partition="0")
    assert m[("mdhub_topic_log_end_offset", topic0)] == 300
    assert m[("mdhub_topic_produce_rate_messages_per_second", topic0)] == 10.0
    assert m[("mdhub_projection_lag_messages", labels(topic=GOLDEN))] == 5
    assert m[("mdhub_projection_lag_seconds", labels(topic=GOLDEN))] == 2.5
    assert m[("mdhub_lag_sample_success", labels())] == 1
    assert m[("mdhub_lag_last_sample_timestamp_seconds", labels())] == 1010.0


def test_labels_stay_bounded(monitor: LagMonitor) -> None:
    monitor.sample_once()
    names = {
        name
        for family in text_string_to_metric_families(generate_latest(monitor.registry).decode())
        for s in family.samples
        for name in s.labels
    }
    assert names <= {"group", "topic", "partition", "status", "state"}


def test_a_failed_poll_is_counted_and_turns_the_partitions_err(
    monitor: LagMonitor, source: ScriptedSource
) -> None:
    monitor.sample_once()
    source.reachable = False
    with pytest.raises(KafkaUnavailableError):
        monitor.sample_once()
    m = scrape(monitor)
    assert m[("mdhub_lag_sample_success", labels())] == 0
    assert m[("mdhub_lag_sample_errors_total", labels())] == 1
    part = labels(group="ext-crm", topic=GOLDEN, partition="0", status="ERR")
    assert m[("mdhub_consumer_partition_status_code", part)] == 5


def get(app: FastAPI, path: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    return asyncio.run(call())


def test_metrics_endpoint_starts_the_sampler_and_serves_the_text_format(
    monitor: LagMonitor,
) -> None:
    app = create_app(InMemoryGoldenCache(), ["customer"], ops=monitor)
    response = get(app, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert monitor.running
    assert 'mdhub_consumer_lag_messages{group="ext-crm"' in response.text
    assert "/metrics" in get(app, "/openapi.json").json()["paths"]


def test_without_a_monitor_there_is_no_metrics_endpoint_and_readyz_is_unchanged() -> None:
    app = create_app(InMemoryGoldenCache(), ["customer"])
    assert get(app, "/metrics").status_code == 404
    assert get(app, "/readyz").json() == {"status": "ready"}


def test_readyz_checks_redis_and_kafka(monitor: LagMonitor) -> None:
    response = get(create_app(InMemoryGoldenCache(), ["customer"], ops=monitor), "/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"redis": "ok", "kafka": "ok"}}


def _problem(response: httpx.Response) -> dict[str, object]:
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == "5"
    body: dict[str, object] = response.json()
    assert body["retryable"] is True
    return body


def test_readyz_names_kafka_when_it_is_down(monitor: LagMonitor, source: ScriptedSource) -> None:
    source.reachable = False
    body = _problem(get(create_app(InMemoryGoldenCache(), ["customer"], ops=monitor), "/readyz"))
    assert body["type"] == "urn:mdhub:problem:kafka-unavailable"
    assert body["title"] == "Kafka unavailable"
    assert body["down"] == ["kafka"]
    assert "127.0.0.1:1" in str(body["detail"])


def test_readyz_names_redis_when_it_is_down(monitor: LagMonitor) -> None:
    cache = InMemoryGoldenCache()
    cache.available = False
    body = _problem(get(create_app(cache, ["customer"], ops=monitor), "/readyz"))
    assert body["type"] == "urn:mdhub:problem:redis-unavailable"
    assert body["down"] == ["redis"]


def test_readyz_names_both_when_both_are_down(monitor: LagMonitor, source: ScriptedSource) -> None:
    cache = InMemoryGoldenCache()
    cache.available = False
    source.reachable = False
    body = _problem(get(create_app(cache, ["customer"], ops=monitor), "/readyz"))
    assert body["type"] == "urn:mdhub:problem:unavailable"
    assert body["title"] == "Redis and Kafka unavailable"
    assert body["down"] == ["redis", "kafka"]


def test_stop_releases_the_source(source: ScriptedSource) -> None:
    m = LagMonitor(source, window_s=60, interval_s=0.05)
    m.start()
    assert m.wait_for_sample(5)
    m.stop()
    assert not m.running
    assert source.closed
