"""Prometheus metrics of consumer lag, built from the latest :class:`~mdhub.ops.lag.LagReport`.

The collector does no I/O when scraped: a sampler (:class:`mdhub.ops.monitor.LagMonitor`) keeps
the window between scrapes and the collector turns its latest report into gauges. Labels are
bounded by the cluster's layout (group, topic, partition, status), never by record ids.

====================================================  ==========================================
metric                                                labels
====================================================  ==========================================
``mdhub_consumer_lag_messages``                       group, topic, partition
``mdhub_consumer_lag_seconds`` (age of the oldest     group, topic, partition
unconsumed message; absent while unknown)
``mdhub_consumer_committed_offset``                   group, topic, partition
``mdhub_consumer_consume_rate_messages_per_second``   group, topic, partition
``mdhub_consumer_catch_up_seconds`` (+Inf: never)     group, topic, partition
``mdhub_consumer_partition_status_code``              group, topic, partition, status
``mdhub_consumer_group_status_code``                  group, status
``mdhub_consumer_group_lag_messages`` / ``_seconds``  group
``mdhub_consumer_group_members``                      group, state
``mdhub_topic_log_end_offset``                        topic, partition
``mdhub_topic_produce_rate_messages_per_second``      topic, partition
``mdhub_projection_lag_messages`` / ``_seconds``      topic (the ``<ns>-projector`` group)
``mdhub_lag_sample_success``, ``mdhub_lag_sample_duration_seconds``,
``mdhub_lag_last_sample_timestamp_seconds``, ``mdhub_lag_sample_errors_total``
====================================================  ==========================================

Status codes: 0 OK, 1 WARN, 2 REWIND, 3 STALL, 4 STOP, 5 ERR (the ``status`` label names it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mdhub.naming import metric_name
from mdhub.ops.lag import LagReport

__all__ = ["LagCollector", "SamplerHealth"]

_PARTITION = ["group", "topic", "partition"]


@dataclass(frozen=True, slots=True)
class SamplerHealth:
    """How the lag sampler is doing.

    Attributes:
        success: whether the latest poll read the cluster (None before the first one).
        duration_s: how long the latest poll took.
        last_at: when the latest successful poll finished (Unix time).
        errors_total: polls that failed since start.
    """

    success: bool | None = None
    duration_s: float | None = None
    last_at: float | None = None
    errors_total: int = 0


def _gauge(subsystem: str, name: str, unit: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(metric_name(subsystem, name, unit), doc, labels=labels)


class LagCollector(Collector):
    """Reports the latest lag evaluation when scraped.

    Args:
        read: returns the latest report (None before the first poll) and the sampler's health;
            it must not block on Kafka.
        projector_group: the consumer group that projects golden records to Redis; its lag is
            also reported as projection lag.
    """

    def __init__(
        self,
        read: Callable[[], tuple[LagReport | None, SamplerHealth]],
        projector_group: str | None = None,
    ) -> None:
        self._read = read
        self._projector = projector_group

    def describe(self) -> list[Metric]:
        # nothing to declare up front: registering must not trigger a scrape
        return []

    def collect(self) -> Iterator[Metric]:
        report, health = self._read()
        yield from self._health(health)
        if report is None:
            return
        lag = _gauge(
            "consumer", "lag", "messages", "Messages between the committed offset and the log end.",
            _PARTITION,
        )  # fmt: skip
        lag_s = _gauge(
            "consumer", "lag", "seconds",
            "Age of the oldest unconsumed message (0 without lag; absent while unknown).",
            _PARTITION,
        )  # fmt: skip
        committed = GaugeMetricFamily(
            metric_name("consumer", "committed", "offset"),
            "The group's committed offset.",
            labels=_PARTITION,
        )
        consume = _gauge(
            "consumer", "consume_rate", "messages_per_second",
            "Committed-offset progress over the evaluation window.", _PARTITION,
        )  # fmt: skip
        eta = _gauge(
            "consumer", "catch_up", "seconds",
            "Estimated time to catch up at the window's rates (+Inf: not gaining).", _PARTITION,
        )  # fmt: skip
        status = _gauge(
            "consumer", "partition_status", "code",
            "Burrow-style status: 0 OK, 1 WARN, 2 REWIND, 3 STALL, 4 STOP, 5 ERR.",
            [*_PARTITION, "status"],
        )  # fmt: skip
        group_status = _gauge(
            "consumer", "group_status", "code",
            "Worst partition status of the group (codes as the partition status).",
            ["group", "status"],
        )  # fmt: skip
        group_lag = _gauge(
            "consumer", "group_lag", "messages", "Total lag of the group.", ["group"]
        )
        group_lag_s = _gauge(
            "consumer", "group_lag", "seconds", "Largest known lag in seconds of the group.",
            ["group"],
        )  # fmt: skip
        members = GaugeMetricFamily(
            metric_name("consumer", "group", "members"),
            "Members of the group, with the coordinator's state.",
            labels=["group", "state"],
        )
        log_end = GaugeMetricFamily(
            metric_name("topic", "log_end", "offset"),
            "The partition's log-end offset.",
            labels=["topic", "partition"],
        )
        produce = _gauge(
            "topic", "produce_rate", "messages_per_second",
            "Log-end progress over the evaluation window.", ["topic", "partition"],
        )  # fmt: skip
        projection: dict[str, list[float]] = {}
        projection_s: dict[str, list[float]] = {}
        seen_partitions: set[tuple[str, str]] = set()
        for group in report.groups:
            for p in group.partitions:
                labels = [group.group, p.key.topic, str(p.key.partition)]
                status.add_metric([*labels, p.status.value], p.status.severity)
                if p.sample is None:
                    continue
                lag.add_metric(labels, p.sample.lag)
                if p.lag_seconds is not None:
                    lag_s.add_metric(labels, p.lag_seconds)
                if p.sample.committed is not None:
                    committed.add_metric(labels, p.sample.committed)
                if p.consume_rate is not None:
                    consume.add_metric(labels, p.consume_rate)
                if p.eta_seconds is not None:
                    eta.add_metric(labels, p.eta_seconds)
                part = (p.key.topic, str(p.key.partition))
                if part not in seen_partitions:
                    seen_partitions.add(part)
                    log_end.add_metric(list(part), p.sample.log_end)
                    if p.produce_rate is not None:
                        produce.add_metric(list(part), p.produce_rate)
                if group.group == self._projector:
                    projection.setdefault(p.key.topic, []).append(max(0, p.sample.lag))
                    if p.lag_seconds is not None:
                        projection_s.setdefault(p.key.topic, []).append(p.lag_seconds)
            group_status.add_metric([group.group, group.status.value], group.status.severity)
            group_lag.add_metric([group.group], group.lag)
            if group.lag_seconds is not None:
                group_lag_s.add_metric([group.group], group.lag_seconds)
            members.add_metric([group.group, group.info.state], group.info.members)
        yield from (lag, lag_s, committed, consume, eta, status, group_status, group_lag)
        yield from (group_lag_s, members, log_end, produce)
        yield from self._projection(projection, projection_s)

    def _projection(
        self, lag: dict[str, list[float]], lag_s: dict[str, list[float]]
    ) -> Iterator[Metric]:
        if self._projector is None:
            return
        messages = _gauge(
            "projection", "lag", "messages",
            f"Golden-topic messages not yet projected to Redis (group {self._projector}).",
            ["topic"],
        )  # fmt: skip
        seconds = _gauge(
            "projection", "lag", "seconds",
            "Age of the oldest golden-topic message not yet projected to Redis.", ["topic"],
        )  # fmt: skip
        for topic, values in sorted(lag.items()):
            messages.add_metric([topic], sum(values))
        for topic, values in sorted(lag_s.items()):
            seconds.add_metric([topic], max(values))
        yield messages
        yield seconds

    @staticmethod
    def _health(health: SamplerHealth) -> Iterator[Metric]:
        success = _gauge(
            "lag", "sample", "success", "1 when the latest offset poll read the cluster.", []
        )
        if health.success is not None:
            success.add_metric([], 1.0 if health.success else 0.0)
        yield success
        duration = _gauge("lag", "sample_duration", "seconds", "Duration of the latest poll.", [])
        if health.duration_s is not None:
            duration.add_metric([], health.duration_s)
        yield duration
        last = _gauge(
            "lag", "last_sample_timestamp", "seconds", "When the latest good poll finished.", []
        )
        if health.last_at is not None:
            last.add_metric([], health.last_at)
        yield last
        errors = CounterMetricFamily(
            metric_name("lag", "sample", "errors"), "Offset polls that failed.", labels=[]
        )
        errors.add_metric([], health.errors_total)
        yield errors
