"""The operations dashboard: a live web page of consumer lag, stage throughput and health.

``GET /dashboard`` serves a self-contained page (HTML, JavaScript and CSS shipped in the package,
nothing from the internet). Every second or two it polls ``GET /v1/ops/overview`` and draws, with
inline SVG, the lag of every consumer group over time, a status badge per group and partition,
messages per second into each stage's topic, the reject rate, the review-queue size and whether
the broker and Redis answer. The page keeps a rolling history; its first poll asks for the
server's (``?history=true``), so a freshly opened page already shows a trend.

Two background threads feed the overview, so that a request only reads memory and never waits on
Kafka or Redis:

- the consumer-lag monitor (:class:`mdhub.ops.monitor.LagMonitor`, the one ``/metrics`` uses);
- a :class:`DashboardSampler`: every ``interval_s`` it reads the log-start and log-end offsets of
  the hub's source, golden, changes, rejected and review topics (rates from their log-end
  progress), pings Redis, and records each group's lag from the monitor's latest report.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Final, Protocol

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from mdhub.errors import KafkaUnavailableError, MdhubError
from mdhub.kafka.config import admin_config
from mdhub.kafka.lag import log_offsets
from mdhub.naming import Stage, topic_name
from mdhub.ops.lag import GroupLag, LagReport, PartitionLag
from mdhub.ops.metrics import SamplerHealth
from mdhub.ops.monitor import LagMonitor
from mdhub.settings import KafkaSettings

__all__ = [
    "DASHBOARD_STAGES",
    "ClusterOffsets",
    "DashboardSampler",
    "DashboardState",
    "KafkaTopicOffsetReader",
    "LagHistory",
    "LagPoint",
    "OverviewOut",
    "Probe",
    "ThroughputTracker",
    "TopicOffsetReader",
    "TopicOffsets",
    "build_overview",
    "create_dashboard_router",
]

_log = logging.getLogger(__name__)

#: The stages whose topics the dashboard samples, in pipeline order.
DASHBOARD_STAGES: Final = (Stage.SOURCE, Stage.GOLDEN, Stage.CHANGES, Stage.REJECTED, Stage.REVIEW)
#: Seconds between two samples of the topics and of Redis.
DEFAULT_INTERVAL_S: Final = 1.0
#: Rates are log-end progress over about this many seconds.
DEFAULT_RATE_WINDOW_S: Final = 5.0
#: How much lag history the server keeps for a page that opens.
DEFAULT_HISTORY_S: Final = 900.0
#: How often the page polls the overview.
DEFAULT_REFRESH_S: Final = 1.5

_TAG_OPS: Final = "operations"
_ASSETS: Final = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}


# -- reading the topics' offsets -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopicOffsets:
    """A topic's log start and log end, each summed over its partitions."""

    start: int
    end: int

    @property
    def depth(self) -> int:
        """Messages the topic holds now (log end minus log start)."""
        return max(0, self.end - self.start)


@dataclass(frozen=True, slots=True)
class ClusterOffsets:
    """One read of the cluster: how many brokers answered, and the offsets of the topics."""

    brokers: int
    topics: Mapping[str, TopicOffsets]


class TopicOffsetReader(Protocol):
    """Reads topics' offsets (:class:`KafkaTopicOffsetReader`, or a fake in tests)."""

    def read(self, topics: Collection[str]) -> ClusterOffsets:
        """The offsets of those of ``topics`` that exist and could be read in full.

        Raises:
            KafkaUnavailableError: the cluster did not answer.
        """
        ...


class KafkaTopicOffsetReader:
    """Reads log-start and log-end offsets with confluent-kafka's admin client.

    One read is a metadata request (which also tells whether a broker answers) and two batched
    offset requests. A topic is left out when any of its partitions could not be read: a partial
    sum would look like offsets going back.
    """

    def __init__(self, kafka: KafkaSettings, timeout_s: float = 3.0) -> None:
        self._where = kafka.bootstrap_servers
        self._timeout = min(timeout_s, kafka.request_timeout_s)
        self._admin = AdminClient(admin_config(kafka))

    def read(self, topics: Collection[str]) -> ClusterOffsets:
        """See :meth:`TopicOffsetReader.read`."""
        try:
            meta = self._admin.list_topics(timeout=self._timeout)
            if not meta.brokers:
                raise KafkaUnavailableError(f"Kafka at {self._where}: the metadata names no broker")
            parts = [
                TopicPartition(name, partition)
                for name in sorted(topics)
                if name in meta.topics and meta.topics[name].error is None
                for partition in meta.topics[name].partitions
            ]
            ends = self._offsets(parts, latest=True)
            starts = self._offsets(parts, latest=False)
        except KafkaException as exc:
            raise KafkaUnavailableError(
                f"Kafka at {self._where}: cannot read topic offsets ({exc.args[0]})"
            ) from exc
        sums: dict[str, list[int]] = {}
        broken: set[str] = set()
        for tp in parts:
            key = (tp.topic, tp.partition)
            if key not in ends or key not in starts:
                broken.add(tp.topic)
                continue
            total = sums.setdefault(tp.topic, [0, 0])
            total[0] += starts[key]
            total[1] += ends[key]
        return ClusterOffsets(
            brokers=len(meta.brokers),
            topics={t: TopicOffsets(s, e) for t, (s, e) in sums.items() if t not in broken},
        )

    def _offsets(self, parts: list[TopicPartition], *, latest: bool) -> dict[tuple[str, int], int]:
        result = log_offsets(
            self._admin,
            [(tp.topic, tp.partition) for tp in parts],
            latest=latest,
            timeout=self._timeout,
        )
        for failure in result.failures:
            _log.debug("offsets of %s", failure)
        return result.found


# -- pure bookkeeping: rates and lag history -----------------------------------------------------


class ThroughputTracker:
    """Messages per second into each topic, from its log-end offset over a short window.

    Not thread-safe: fed by one thread (the sampler holds a lock around it).
    """

    def __init__(self, window_s: float = DEFAULT_RATE_WINDOW_S) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.window_s = window_s
        self._samples: deque[tuple[float, Mapping[str, TopicOffsets]]] = deque()

    def observe(self, at: float, topics: Mapping[str, TopicOffsets]) -> None:
        """Add one read taken at ``at`` (Unix seconds)."""
        self._samples.append((at, dict(topics)))
        # keep one sample at or before the window's start, so a rate spans the whole window
        while len(self._samples) > 2 and self._samples[1][0] <= at - self.window_s:
            self._samples.popleft()

    def latest(self) -> Mapping[str, TopicOffsets]:
        """The offsets of the latest read (empty before the first)."""
        return self._samples[-1][1] if self._samples else {}

    def rate(self, topic: str) -> float | None:
        """Messages per second over the window; None without two reads or when the log went back."""
        points = [(at, topics[topic].end) for at, topics in self._samples if topic in topics]
        if len(points) < 2:
            return None
        (first_at, first_end), (last_at, last_end) = points[0], points[-1]
        if last_at <= first_at or last_end < first_end:
            return None  # no time passed, or the topic was recreated
        return (last_end - first_end) / (last_at - first_at)


@dataclass(frozen=True, slots=True)
class LagPoint:
    """A group's total lag at one evaluation of the lag monitor."""

    at: float
    lag: int
    lag_seconds: float | None


class LagHistory:
    """Each group's lag over the last ``keep_s`` seconds, one point per lag report.

    Not thread-safe: fed by one thread (the sampler holds a lock around it).
    """

    def __init__(self, keep_s: float = DEFAULT_HISTORY_S, max_points: int = 900) -> None:
        self.keep_s = keep_s
        self._max = max_points
        self._series: dict[str, deque[LagPoint]] = {}
        self._last_at: float | None = None

    def observe(self, report: LagReport | None) -> None:
        """Record ``report``'s groups, unless that report was seen already."""
        if report is None or (self._last_at is not None and report.at <= self._last_at):
            return
        self._last_at = report.at
        for group in report.groups:
            series = self._series.setdefault(group.group, deque(maxlen=self._max))
            series.append(LagPoint(report.at, group.lag, group.lag_seconds))
        oldest = report.at - self.keep_s
        for name in list(self._series):
            series = self._series[name]
            while series and series[0].at < oldest:
                series.popleft()
            if not series:
                del self._series[name]

    def series(self) -> dict[str, tuple[LagPoint, ...]]:
        """Every group's points, oldest first."""
        return {name: tuple(points) for name, points in sorted(self._series.items())}


# -- the sampler ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    """Whether a dependency answered at the latest check.

    Attributes:
        ok: True when it answered, False when not, None before the first check.
        detail: what was seen, in words.
        checked_at: when it was checked (Unix seconds).
    """

    ok: bool | None = None
    detail: str = "not checked yet"
    checked_at: float | None = None


@dataclass(frozen=True, slots=True)
class StageFigures:
    """One stage topic's figures at the latest read."""

    topic: str
    rate: float | None
    messages: int | None
    depth: int | None


@dataclass(frozen=True, slots=True)
class DashboardState:
    """What the sampler saw at its latest pass (immutable; safe to hand to any thread)."""

    at: float | None = None
    kafka: Probe = Probe()
    redis: Probe = Probe()
    stages: Mapping[str, Mapping[Stage, StageFigures]] = field(default_factory=dict)
    history: Mapping[str, tuple[LagPoint, ...]] = field(default_factory=dict)
    open_reviews: Mapping[str, int] = field(default_factory=dict)  # per entity, from the views


class DashboardSampler:
    """Samples the stage topics, Redis and the lag history in a background thread.

    Args:
        reader: reads the topics' offsets.
        ping_redis: returns when Redis answers; raises an :class:`~mdhub.errors.MdhubError`
            (``RedisUnavailableError``) when it does not.
        topics: each entity's topic per stage (see :data:`DASHBOARD_STAGES`).
        read_lag: the lag monitor's latest report (None before its first poll), for the history.
        count_reviews: the number of open potential matches of an entity (the review-queue
            view); without it the queue size is the review topic's message count.
        interval_s: seconds between two passes.
        rate_window_s: rates are taken over about this many seconds.
        history_s: how much lag history is kept.
        clock: the wall clock (Unix seconds).
    """

    def __init__(
        self,
        reader: TopicOffsetReader,
        ping_redis: Callable[[], None],
        topics: Mapping[str, Mapping[Stage, str]],
        *,
        read_lag: Callable[[], LagReport | None] | None = None,
        count_reviews: Callable[[str], int] | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        rate_window_s: float = DEFAULT_RATE_WINDOW_S,
        history_s: float = DEFAULT_HISTORY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.interval_s = interval_s
        self._reader = reader
        self._ping_redis = ping_redis
        self._topics = {entity: dict(stages) for entity, stages in topics.items()}
        self._read_lag = read_lag
        self._count_reviews = count_reviews
        self._clock = clock
        self._throughput = ThroughputTracker(rate_window_s)
        self._history = LagHistory(history_s)
        self._lock = threading.Lock()
        self._state = DashboardState()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_hub(
        cls,
        kafka: KafkaSettings,
        namespace: str,
        entities: Collection[str],
        ping_redis: Callable[[], None],
        *,
        read_lag: Callable[[], LagReport | None] | None = None,
        count_reviews: Callable[[str], int] | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> DashboardSampler:
        """A sampler of the stage topics of ``entities`` in ``namespace`` on the Kafka cluster."""
        topics = {
            entity: {stage: topic_name(namespace, entity, stage) for stage in DASHBOARD_STAGES}
            for entity in entities
        }
        return cls(
            KafkaTopicOffsetReader(kafka),
            ping_redis,
            topics,
            read_lag=read_lag,
            count_reviews=count_reviews,
            interval_s=interval_s,
        )

    def state(self) -> DashboardState:
        """The latest pass's figures (empty before the first pass)."""
        with self._lock:
            return self._state

    def sample_once(self) -> DashboardState:
        """Sample now, in the calling thread, and return the new state."""
        wanted = [t for stages in self._topics.values() for t in stages.values()]
        at = self._clock()
        try:
            read = self._reader.read(wanted)
            kafka = Probe(True, f"{read.brokers} broker(s) answered", at)
        except KafkaUnavailableError as exc:
            read = None
            kafka = Probe(False, str(exc), at)
        open_reviews: dict[str, int] = {}
        try:
            self._ping_redis()
            redis = Probe(True, "answered a ping", self._clock())
            if self._count_reviews is not None:
                open_reviews = {e: self._count_reviews(e) for e in self._topics}
        except MdhubError as exc:
            redis = Probe(False, str(exc), self._clock())
        report = self._read_lag() if self._read_lag is not None else None
        with self._lock:
            if read is not None:
                self._throughput.observe(at, read.topics)
            self._history.observe(report)
            latest = self._throughput.latest() if read is not None else {}
            stages = {
                entity: {
                    stage: StageFigures(
                        topic=topic,
                        rate=self._throughput.rate(topic) if read is not None else None,
                        messages=latest[topic].end if topic in latest else None,
                        depth=latest[topic].depth if topic in latest else None,
                    )
                    for stage, topic in by_stage.items()
                }
                for entity, by_stage in self._topics.items()
            }
            self._state = DashboardState(
                at, kafka, redis, stages, self._history.series(), open_reviews
            )
            return self._state

    @property
    def running(self) -> bool:
        """Whether the sampling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the sampling thread (idempotent)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="mdhub-dashboard-sampler", daemon=True
            )
            self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the sampling thread (a pass in progress finishes on its own; it is a daemon)."""
        self._stop.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.sample_once()
            except Exception:  # the thread's edge: log, keep sampling
                _log.exception("dashboard sampling failed")
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))


# -- the overview: the JSON the page polls --------------------------------------------------------


class ProbeOut(BaseModel):
    """Whether a dependency answers."""

    ok: bool | None = Field(description="true: reachable; false: not; null: not checked yet")
    detail: str
    checked_at: float | None = Field(description="when it was checked (Unix seconds)")


class HealthOut(BaseModel):
    """The broker, Redis and the lag sampler."""

    kafka: ProbeOut
    redis: ProbeOut
    lag_sampler: ProbeOut


class PartitionOut(BaseModel):
    """A group's position on one partition, evaluated over the window."""

    topic: str
    partition: int
    status: str = Field(description="OK, WARN, REWIND, STALL, STOP or ERR")
    reason: str
    lag: int | None = Field(description="messages between the committed offset and the log end")
    lag_seconds: float | None = Field(description="age of the oldest unconsumed message")
    committed: int | None
    log_end: int | None
    consume_rate: float | None = Field(description="committed-offset progress, messages/s")
    produce_rate: float | None = Field(description="log-end progress, messages/s")
    eta_seconds: float | None = Field(description="time to catch up; null when unknown or never")
    eta_never: bool = Field(description="true when the consumer does not gain on the producers")


class GroupOut(BaseModel):
    """A consumer group that reads hub topics."""

    group: str
    status: str = Field(description="the worst partition's status")
    reason: str
    state: str = Field(description="the group coordinator's state, e.g. STABLE or EMPTY")
    members: int
    lag: int = Field(description="total lag in messages")
    lag_seconds: float | None = Field(description="the largest known lag in seconds")
    partitions: list[PartitionOut]


class LagOut(BaseModel):
    """The lag monitor's latest evaluation."""

    at: float | None = Field(description="when the offsets were read (Unix seconds)")
    window_s: float | None = Field(description="the evaluation window")
    groups: list[GroupOut]


class StageOut(BaseModel):
    """One stage's topic of an entity."""

    stage: str = Field(description="source, golden, changes, rejected or review")
    topic: str
    rate: float | None = Field(description="messages/s into the topic (log-end progress)")
    messages: int | None = Field(description="messages ever written (sum of the log ends)")
    depth: int | None = Field(description="messages the topic holds now")


class EntityOut(BaseModel):
    """The pipeline figures of one entity type."""

    entity: str
    stages: list[StageOut]
    reject_ratio: float | None = Field(
        description="rejected messages/s over source messages/s (null while nothing comes in)"
    )
    review_queue: int | None = Field(
        description="open potential matches (the review-queue view; the review topic's message "
        "count when the views are not available)"
    )


class TotalsOut(BaseModel):
    """The figures of every entity added up."""

    rates: dict[str, float | None] = Field(description="messages/s per stage")
    messages: dict[str, int | None] = Field(description="messages ever written per stage")
    reject_ratio: float | None
    review_queue: int | None


class OverviewOut(BaseModel):
    """Everything the dashboard shows, as of ``at``."""

    at: float = Field(description="when this overview was built (Unix seconds)")
    sampled_at: float | None = Field(description="when the topics and Redis were last sampled")
    refresh_s: float = Field(description="how often the page polls")
    health: HealthOut
    lag: LagOut
    entities: list[EntityOut]
    totals: TotalsOut
    history: dict[str, list[tuple[float, int, float | None]]] | None = Field(
        default=None,
        description="with ?history=true: each group's (time, lag, lag seconds), oldest first",
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _partition_out(p: PartitionLag) -> PartitionOut:
    return PartitionOut(
        topic=p.key.topic,
        partition=p.key.partition,
        status=p.status.value,
        reason=p.reason,
        lag=p.lag,
        lag_seconds=_finite(p.lag_seconds),
        committed=p.sample.committed if p.sample is not None else None,
        log_end=p.sample.log_end if p.sample is not None else None,
        consume_rate=_finite(p.consume_rate),
        produce_rate=_finite(p.produce_rate),
        eta_seconds=_finite(p.eta_seconds),
        eta_never=p.eta_seconds is not None and math.isinf(p.eta_seconds),
    )


def _group_out(g: GroupLag) -> GroupOut:
    return GroupOut(
        group=g.group,
        status=g.status.value,
        reason=g.reason,
        state=g.info.state,
        members=g.info.members,
        lag=g.lag,
        lag_seconds=_finite(g.lag_seconds),
        partitions=[_partition_out(p) for p in g.partitions],
    )


def _lag_probe(monitored: bool, health: SamplerHealth | None) -> ProbeOut:
    if not monitored:
        return ProbeOut(ok=None, detail="no lag monitor in this process", checked_at=None)
    if health is None or health.success is None:
        return ProbeOut(ok=None, detail="waiting for the first offset poll", checked_at=None)
    if health.success:
        took = f" in {health.duration_s:.2f} s" if health.duration_s is not None else ""
        return ProbeOut(ok=True, detail=f"offsets read{took}", checked_at=health.last_at)
    return ProbeOut(
        ok=False,
        detail=f"the latest offset poll failed ({health.errors_total} failure(s) since start)",
        checked_at=health.last_at,
    )


def _ratio(part: float | None, whole: float | None) -> float | None:
    if part is None or whole is None or whole <= 0:
        return None
    return part / whole


def _add(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _add_int(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def build_overview(
    state: DashboardState,
    lag: LagReport | None,
    lag_health: SamplerHealth | None,
    *,
    monitored: bool,
    now: float,
    refresh_s: float = DEFAULT_REFRESH_S,
    with_history: bool = False,
) -> OverviewOut:
    """Turn the samplers' latest figures into the overview the page shows.

    Args:
        state: the dashboard sampler's latest pass.
        lag: the lag monitor's latest report (None before its first poll, or without monitor).
        lag_health: the lag sampler's health.
        monitored: whether a lag monitor runs at all.
        now: the time of the overview (Unix seconds).
        refresh_s: how often the page should poll.
        with_history: include each group's lag history.
    """
    entities = []
    for entity, stages in sorted(state.stages.items()):
        source, rejected = stages.get(Stage.SOURCE), stages.get(Stage.REJECTED)
        review = stages.get(Stage.REVIEW)
        entities.append(
            EntityOut(
                entity=entity,
                stages=[
                    StageOut(
                        stage=stage.value,
                        topic=stages[stage].topic,
                        rate=_finite(stages[stage].rate),
                        messages=stages[stage].messages,
                        depth=stages[stage].depth,
                    )
                    for stage in DASHBOARD_STAGES
                    if stage in stages
                ],
                reject_ratio=_ratio(
                    rejected.rate if rejected else None, source.rate if source else None
                ),
                review_queue=state.open_reviews.get(entity, review.depth if review else None),
            )
        )
    rates = {
        stage.value: _add([_finite(s[stage].rate) for s in state.stages.values() if stage in s])
        for stage in DASHBOARD_STAGES
    }
    messages = {
        stage.value: _add_int([s[stage].messages for s in state.stages.values() if stage in s])
        for stage in DASHBOARD_STAGES
    }
    totals = TotalsOut(
        rates=rates,
        messages=messages,
        reject_ratio=_ratio(rates[Stage.REJECTED.value], rates[Stage.SOURCE.value]),
        review_queue=_add_int([e.review_queue for e in entities]),
    )

    def probe(p: Probe) -> ProbeOut:
        return ProbeOut(ok=p.ok, detail=p.detail, checked_at=p.checked_at)

    history = None
    if with_history:
        history = {
            group: [(pt.at, pt.lag, _finite(pt.lag_seconds)) for pt in points]
            for group, points in state.history.items()
        }
    return OverviewOut(
        at=now,
        sampled_at=state.at,
        refresh_s=refresh_s,
        health=HealthOut(
            kafka=probe(state.kafka),
            redis=probe(state.redis),
            lag_sampler=_lag_probe(monitored, lag_health),
        ),
        lag=LagOut(
            at=lag.at if lag is not None else None,
            window_s=lag.window_s if lag is not None else None,
            groups=[_group_out(g) for g in lag.groups] if lag is not None else [],
        ),
        entities=entities,
        totals=totals,
        history=history,
    )


# -- the router -------------------------------------------------------------------------------------


def _read_asset(name: str) -> str:
    return (resources.files("mdhub.api") / "static" / name).read_text(encoding="utf-8")


def create_dashboard_router(
    sampler: DashboardSampler,
    monitor: LagMonitor | None = None,
    *,
    refresh_s: float = DEFAULT_REFRESH_S,
    clock: Callable[[], float] = time.time,
) -> APIRouter:
    """Serve the dashboard page (``/dashboard``), its assets and ``GET /v1/ops/overview``.

    The handlers only read the samplers' latest figures; the composition root starts (and stops)
    ``sampler`` and ``monitor``. Include the router in an app made by
    :func:`mdhub.api.app.create_app` so that errors answer as problems.

    Args:
        sampler: the stage-topic and health sampler.
        monitor: the consumer-lag monitor (None: the page shows no groups).
        refresh_s: how often the page polls the overview.
        clock: the wall clock (Unix seconds).
    """
    page = _read_asset("dashboard.html").replace("__REFRESH_MS__", str(round(refresh_s * 1000)))
    assets = {name: (_read_asset(name), media) for name, media in _ASSETS.items()}
    no_cache = {"Cache-Control": "no-cache"}
    router = APIRouter()

    @router.get("/dashboard", include_in_schema=False, response_class=HTMLResponse)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(page, headers=no_cache)

    @router.get("/dashboard/{asset}", include_in_schema=False)
    async def dashboard_asset(asset: str) -> Response:
        if asset not in assets:
            raise StarletteHTTPException(404, f"no dashboard asset {asset!r}")
        text, media_type = assets[asset]
        return Response(text, media_type=media_type, headers=no_cache)

    @router.get(
        "/v1/ops/overview",
        tags=[_TAG_OPS],
        summary="What the dashboard shows: lag per group, stage throughput, health",
        description=(
            "Consumer lag and status per group and partition (from the lag monitor's latest "
            "evaluation), messages/s into each stage's topic, the reject ratio, the review-queue "
            "size and whether Kafka and Redis answer. Read from memory: the figures are sampled "
            "in the background, so this never waits on Kafka or Redis."
        ),
        response_model=OverviewOut,
    )
    async def overview(
        history: Annotated[
            bool, Query(description="include each group's lag history (for a page that opens)")
        ] = False,
    ) -> Response:
        lag, health = monitor.snapshot() if monitor is not None else (None, None)
        body = build_overview(
            sampler.state(),
            lag,
            health,
            monitored=monitor is not None,
            now=clock(),
            refresh_s=refresh_s,
            with_history=history,
        )
        return Response(
            body.model_dump_json(),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    return router
