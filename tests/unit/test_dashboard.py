"""The dashboard's overview JSON, page and samplers, through httpx's ASGI transport with fakes."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from mdhub.api import PROBLEM_JSON, create_app
from mdhub.api.dashboard import (
    DASHBOARD_STAGES,
    ClusterOffsets,
    DashboardSampler,
    LagHistory,
    ThroughputTracker,
    TopicOffsets,
    create_dashboard_router,
)
from mdhub.errors import KafkaUnavailableError
from mdhub.naming import Stage, topic_name
from mdhub.ops.lag import (
    GroupInfo,
    GroupLag,
    LagReport,
    LagSnapshot,
    OffsetSample,
    PartitionKey,
    Status,
)
from mdhub.ops.monitor import LagMonitor
from mdhub.testing import InMemoryGoldenCache

NS = "mdhub"
SOURCE = topic_name(NS, "customer", Stage.SOURCE)
GOLDEN = topic_name(NS, "customer", Stage.GOLDEN)
REJECTED = topic_name(NS, "customer", Stage.REJECTED)
REVIEW = topic_name(NS, "customer", Stage.REVIEW)
TOPICS = {"customer": {stage: topic_name(NS, "customer", stage) for stage in DASHBOARD_STAGES}}


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeTopicOffsets:
    """A cluster whose topics' offsets the test sets; ``down`` makes it unreachable."""

    def __init__(self) -> None:
        self.offsets: dict[str, TopicOffsets] = {}
        self.down = False

    def read(self, topics: Collection[str]) -> ClusterOffsets:
        if self.down:
            raise KafkaUnavailableError("Kafka at fake:9092: cannot read topic offsets (down)")
        return ClusterOffsets(1, {t: o for t, o in self.offsets.items() if t in topics})


class FakeLagSource:
    """Hands the lag monitor recorded snapshots, one per poll."""

    def __init__(self, snapshots: list[LagSnapshot]) -> None:
        self.snapshots = snapshots

    def sample(self) -> LagSnapshot:
        return self.snapshots.pop(0)

    def ping(self, timeout_s: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def snapshot(at: float, offsets: Mapping[PartitionKey, OffsetSample]) -> LagSnapshot:
    groups = {key.group for key in offsets}
    return LagSnapshot(at, offsets, {g: GroupInfo("STABLE", 1) for g in groups})


WORKER = PartitionKey("mdhub-worker", SOURCE, 0)
SLOW = PartitionKey("crm-export", GOLDEN, 1)


def lagging_monitor() -> LagMonitor:
    """A monitor that has polled twice: the worker caught up, ``crm-export`` falling behind."""
    first = snapshot(
        1_000.0,
        {
            WORKER: OffsetSample(1_000.0, log_end=100, committed=100),
            SLOW: OffsetSample(1_000.0, log_end=50, committed=10, committed_timestamp=990.0),
        },
    )
    second = snapshot(
        1_005.0,
        {
            WORKER: OffsetSample(1_005.0, log_end=130, committed=130),
            SLOW: OffsetSample(1_005.0, log_end=80, committed=12, committed_timestamp=991.5),
        },
    )
    monitor = LagMonitor(FakeLagSource([first, second]), window_s=30, clock=Clock(1_005.0))
    monitor.sample_once()
    monitor.sample_once()
    return monitor


def sampler_with(
    reader: FakeTopicOffsets,
    clock: Clock,
    cache: InMemoryGoldenCache | None = None,
    monitor: LagMonitor | None = None,
) -> DashboardSampler:
    redis = cache or InMemoryGoldenCache()
    return DashboardSampler(
        reader,
        redis.ping,
        TOPICS,
        read_lag=monitor.report if monitor is not None else None,
        clock=clock,
    )


def dashboard_app(sampler: DashboardSampler, monitor: LagMonitor | None) -> FastAPI:
    app = create_app(InMemoryGoldenCache(), ["customer"])
    app.include_router(create_dashboard_router(sampler, monitor, clock=Clock(1_006.0)))
    return app


def get(app: FastAPI, path: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    return asyncio.run(call())


@pytest.fixture
def live() -> Iterator[tuple[FastAPI, DashboardSampler]]:
    """An app whose samplers each made two passes 5 s apart."""
    reader, clock = FakeTopicOffsets(), Clock(1_000.0)
    monitor = lagging_monitor()
    sampler = sampler_with(reader, clock, monitor=monitor)
    reader.offsets = {
        SOURCE: TopicOffsets(0, 1_000),
        GOLDEN: TopicOffsets(0, 400),
        REJECTED: TopicOffsets(0, 100),
        REVIEW: TopicOffsets(0, 0),
    }
    sampler.sample_once()
    clock.now = 1_005.0
    reader.offsets = {
        SOURCE: TopicOffsets(0, 1_500),  # 100 msg/s
        GOLDEN: TopicOffsets(0, 800),
        REJECTED: TopicOffsets(0, 150),  # 10 msg/s
        REVIEW: TopicOffsets(2, 5),
    }
    sampler.sample_once()
    yield dashboard_app(sampler, monitor), sampler


# -- the overview JSON ----------------------------------------------------------------------------


def test_overview_shape(live: tuple[FastAPI, DashboardSampler]) -> None:
    response = get(live[0], "/v1/ops/overview")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {
        "at", "sampled_at", "refresh_s", "health", "lag", "entities", "totals", "history",
    }  # fmt: skip
    assert body["at"] == 1_006.0
    assert body["sampled_at"] == 1_005.0
    assert body["history"] is None  # only on request
    assert {name: probe["ok"] for name, probe in body["health"].items()} == {
        "kafka": True,
        "redis": True,
        "lag_sampler": True,
    }
    assert body["health"]["kafka"]["detail"] == "1 broker(s) answered"


def test_overview_groups_and_partitions_carry_their_status(
    live: tuple[FastAPI, DashboardSampler],
) -> None:
    lag = get(live[0], "/v1/ops/overview").json()["lag"]
    assert lag["at"] == 1_005.0
    assert lag["window_s"] == 30
    groups = {g["group"]: g for g in lag["groups"]}
    assert list(groups) == ["crm-export", "mdhub-worker"]

    slow = groups["crm-export"]
    assert slow["status"] == "WARN"
    assert "grew from 40 to 68" in slow["reason"]
    assert (slow["state"], slow["members"], slow["lag"]) == ("STABLE", 1, 68)
    assert slow["lag_seconds"] == pytest.approx(13.5)
    [partition] = slow["partitions"]
    assert partition == {
        "topic": GOLDEN,
        "partition": 1,
        "status": "WARN",
        "reason": partition["reason"],
        "lag": 68,
        "lag_seconds": pytest.approx(13.5),
        "committed": 12,
        "log_end": 80,
        "consume_rate": pytest.approx(0.4),
        "produce_rate": pytest.approx(6.0),
        # it gains nothing on the producers: an infinite ETA, which JSON cannot carry
        "eta_seconds": None,
        "eta_never": True,
    }
    worker = groups["mdhub-worker"]
    assert (worker["status"], worker["lag"], worker["lag_seconds"]) == ("OK", 0, 0.0)
    assert worker["partitions"][0]["eta_seconds"] == 0.0
    assert worker["partitions"][0]["eta_never"] is False


def test_overview_stage_throughput_reject_ratio_and_review_queue(
    live: tuple[FastAPI, DashboardSampler],
) -> None:
    body = get(live[0], "/v1/ops/overview").json()
    [customer] = body["entities"]
    assert customer["entity"] == "customer"
    stages = {s["stage"]: s for s in customer["stages"]}
    assert list(stages) == ["source", "golden", "changes", "rejected", "review"]
    assert stages["source"] == {
        "stage": "source",
        "topic": SOURCE,
        "rate": 100.0,
        "messages": 1_500,
        "depth": 1_500,
    }
    assert stages["golden"]["rate"] == 80.0
    assert stages["rejected"]["rate"] == 10.0
    # the changes topic was never read (it does not exist on the fake cluster)
    assert stages["changes"] == {
        "stage": "changes",
        "topic": topic_name(NS, "customer", Stage.CHANGES),
        "rate": None,
        "messages": None,
        "depth": None,
    }
    assert customer["reject_ratio"] == pytest.approx(0.1)
    assert customer["review_queue"] == 3
    totals = body["totals"]
    assert totals["rates"] == {
        "source": 100.0,
        "golden": 80.0,
        "changes": None,
        "rejected": 10.0,
        "review": 1.0,  # log end 0 -> 5 in 5 s (depth 3: two aged out)
    }
    assert totals["messages"]["source"] == 1_500
    assert totals["reject_ratio"] == pytest.approx(0.1)
    assert totals["review_queue"] == 3


def test_overview_with_history_gives_each_groups_lag_over_time(
    live: tuple[FastAPI, DashboardSampler],
) -> None:
    _, sampler = live
    body = get(live[0], "/v1/ops/overview?history=true").json()
    # the sampler saw the monitor's second report at both of its passes: one point per report
    assert body["history"] == {
        "crm-export": [[1_005.0, 68, pytest.approx(13.5)]],
        "mdhub-worker": [[1_005.0, 0, 0.0]],
    }
    assert sampler.state().history["crm-export"][0].lag == 68


def test_overview_before_any_sample() -> None:
    reader = FakeTopicOffsets()
    sampler = sampler_with(reader, Clock())
    monitor = LagMonitor(FakeLagSource([]))
    body = get(dashboard_app(sampler, monitor), "/v1/ops/overview?history=true").json()
    assert body["sampled_at"] is None
    assert body["lag"] == {"at": None, "window_s": None, "groups": []}
    assert body["entities"] == []
    assert body["totals"]["rates"] == dict.fromkeys(s.value for s in DASHBOARD_STAGES)
    assert body["totals"]["reject_ratio"] is None
    assert body["history"] == {}
    assert body["health"]["kafka"] == {"ok": None, "detail": "not checked yet", "checked_at": None}
    assert body["health"]["lag_sampler"]["ok"] is None
    assert "first offset poll" in body["health"]["lag_sampler"]["detail"]


def test_overview_without_a_lag_monitor() -> None:
    sampler = sampler_with(FakeTopicOffsets(), Clock())
    sampler.sample_once()
    body = get(dashboard_app(sampler, None), "/v1/ops/overview").json()
    assert body["lag"]["groups"] == []
    assert body["health"]["lag_sampler"] == {
        "ok": None,
        "detail": "no lag monitor in this process",
        "checked_at": None,
    }


def test_overview_reports_kafka_and_redis_down() -> None:
    reader, clock, cache = FakeTopicOffsets(), Clock(), InMemoryGoldenCache(where="redis://x:1")
    reader.offsets = {SOURCE: TopicOffsets(0, 10)}
    sampler = sampler_with(reader, clock, cache)
    sampler.sample_once()
    reader.down, cache.available = True, False
    clock.now += 1
    sampler.sample_once()
    body = get(dashboard_app(sampler, None), "/v1/ops/overview").json()
    kafka, redis = body["health"]["kafka"], body["health"]["redis"]
    assert (kafka["ok"], redis["ok"]) == (False, False)
    assert "fake:9092" in kafka["detail"]
    assert "redis://x:1" in redis["detail"]
    assert kafka["checked_at"] == clock.now
    # nothing could be read: no figures rather than stale ones
    assert body["totals"]["rates"]["source"] is None
    assert body["totals"]["messages"]["source"] is None


def test_overview_when_the_lag_poll_failed() -> None:
    class Down(FakeLagSource):
        def sample(self) -> LagSnapshot:
            raise KafkaUnavailableError("Kafka at fake:9092: down")

    monitor = LagMonitor(Down([]))
    with pytest.raises(KafkaUnavailableError):
        monitor.sample_once()
    body = get(
        dashboard_app(sampler_with(FakeTopicOffsets(), Clock()), monitor), "/v1/ops/overview"
    )
    probe = body.json()["health"]["lag_sampler"]
    assert probe["ok"] is False
    assert "1 failure(s)" in probe["detail"]


def test_overview_is_in_the_openapi_document(live: tuple[FastAPI, DashboardSampler]) -> None:
    paths = get(live[0], "/openapi.json").json()["paths"]
    assert "/v1/ops/overview" in paths
    assert "/dashboard" not in paths


def test_overview_rejects_a_bad_query_as_a_problem(live: tuple[FastAPI, DashboardSampler]) -> None:
    response = get(live[0], "/v1/ops/overview?history=maybe")
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON


# -- the page and its assets ------------------------------------------------------------------------


def test_dashboard_page_is_served_with_its_local_assets(
    live: tuple[FastAPI, DashboardSampler],
) -> None:
    page = get(live[0], "/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert 'src="/dashboard/dashboard.js"' in html
    assert 'href="/dashboard/dashboard.css"' in html
    assert 'data-refresh-ms="1500"' in html
    assert "http://" not in html and "https://" not in html  # nothing from the internet

    script = get(live[0], "/dashboard/dashboard.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "/v1/ops/overview" in script.text
    assert "https://" not in script.text
    style = get(live[0], "/dashboard/dashboard.css")
    assert style.headers["content-type"].startswith("text/css")
    for status in Status:
        assert f'[data-status="{status.value}"]' in style.text


def test_the_refresh_interval_is_configurable() -> None:
    app = create_app(InMemoryGoldenCache(), ["customer"])
    sampler = sampler_with(FakeTopicOffsets(), Clock())
    app.include_router(create_dashboard_router(sampler, None, refresh_s=2.0))
    assert 'data-refresh-ms="2000"' in get(app, "/dashboard").text


def test_unknown_dashboard_asset_is_a_404_problem(live: tuple[FastAPI, DashboardSampler]) -> None:
    response = get(live[0], "/dashboard/../app.py")
    assert response.status_code == 404
    response = get(live[0], "/dashboard/secrets.txt")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "secrets.txt" in response.json()["detail"]


# -- the pure parts: rates and lag history ----------------------------------------------------------


def test_throughput_is_log_end_progress_over_the_window() -> None:
    tracker = ThroughputTracker(window_s=5)
    assert tracker.rate("t") is None
    for second in range(11):
        tracker.observe(100.0 + second, {"t": TopicOffsets(0, second * second)})
    # the window spans the last 5 s: from 25 (t=105) to 100 (t=110)
    assert tracker.rate("t") == pytest.approx(15.0)
    assert tracker.latest()["t"].end == 100
    assert tracker.rate("unknown") is None


def test_throughput_of_a_recreated_topic_is_unknown() -> None:
    tracker = ThroughputTracker(window_s=5)
    tracker.observe(1.0, {"t": TopicOffsets(0, 500)})
    tracker.observe(2.0, {"t": TopicOffsets(0, 3)})
    assert tracker.rate("t") is None


def test_throughput_skips_reads_that_missed_the_topic() -> None:
    tracker = ThroughputTracker(window_s=10)
    tracker.observe(1.0, {"t": TopicOffsets(0, 0)})
    tracker.observe(2.0, {})
    tracker.observe(3.0, {"t": TopicOffsets(0, 20)})
    assert tracker.rate("t") == 10.0


def report(at: float, **lags: int) -> LagReport:
    return LagReport(
        at,
        60.0,
        tuple(GroupLag(g, GroupInfo(), Status.OK, "", ()) for g in lags),
    )


def test_lag_history_keeps_one_point_per_report_and_forgets_old_groups() -> None:
    history = LagHistory(keep_s=100)
    history.observe(None)
    history.observe(report(10.0, a=0, b=0))
    history.observe(report(10.0, a=0, b=0))  # the same report again
    history.observe(report(60.0, a=0))
    assert [p.at for p in history.series()["a"]] == [10.0, 60.0]
    history.observe(report(150.0, a=0))
    assert [p.at for p in history.series()["a"]] == [60.0, 150.0]
    assert "b" not in history.series()  # not seen for longer than keep_s


def test_sampler_thread_starts_and_stops() -> None:
    reader = FakeTopicOffsets()
    reader.offsets = {SOURCE: TopicOffsets(0, 5)}
    sampler = DashboardSampler(reader, lambda: None, TOPICS, interval_s=0.05)
    sampler.start()
    sampler.start()  # idempotent
    try:
        assert sampler.running
        deadline = asyncio.run(_wait(lambda: sampler.state().at is not None))
        assert deadline, "the sampler made no pass"
    finally:
        sampler.stop()
    assert not sampler.running
    assert sampler.state().stages["customer"][Stage.SOURCE].messages == 5


async def _wait(check: Any, timeout: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if check():
            return True
        await asyncio.sleep(0.01)
    return False


def test_sampler_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        DashboardSampler(FakeTopicOffsets(), lambda: None, TOPICS, interval_s=0)


def test_review_queue_counts_open_pairs_from_the_views_when_it_can() -> None:
    """The review topic also holds decisions; the queue size is the open pairs of the views."""
    reader, clock = FakeTopicOffsets(), Clock(1_000.0)
    reader.offsets = {SOURCE: TopicOffsets(0, 10), REVIEW: TopicOffsets(0, 9)}
    cache = InMemoryGoldenCache()
    sampler = DashboardSampler(
        reader,
        cache.ping,
        TOPICS,
        count_reviews=lambda entity: {"customer": 2}[entity],
        clock=clock,
    )
    sampler.sample_once()
    body = get(dashboard_app(sampler, None), "/v1/ops/overview").json()
    assert body["entities"][0]["review_queue"] == 2  # not the topic's 9 messages
    assert body["totals"]["review_queue"] == 2
