"""The worker's Prometheus metrics, served on its own port (``MDHUB_WORKER__METRICS_PORT``).

Labels are bounded: entity type, outcome and reason code, never a record id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from mdhub.naming import metric_name

__all__ = ["WorkerMetrics", "serve_metrics"]

log = logging.getLogger("mdhub.worker")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class WorkerMetrics:
    """The worker's instruments, in a registry of their own."""

    registry: CollectorRegistry
    consumed: Counter
    outcomes: Counter
    rejected: Counter
    replayed: Counter
    batch_seconds: Histogram
    end_to_end_seconds: Histogram
    outputs: Counter
    assigned: Gauge
    comparisons: Counter
    capped_blocks: Counter
    identity_records: Gauge
    largest_block: Gauge
    forwarded: Gauge
    phone_numbers: Counter
    match_keys: Counter

    @classmethod
    def create(cls) -> WorkerMetrics:
        """Build the instruments."""
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            consumed=Counter(
                metric_name("worker", "consumed", "messages_total"),
                "Source messages consumed by the worker.",
                ["entity"],
                registry=registry,
            ),
            outcomes=Counter(
                metric_name("worker", "outcome", "messages_total"),
                "Source messages by outcome (accepted, unchanged, rejected).",
                ["entity", "outcome"],
                registry=registry,
            ),
            rejected=Counter(
                metric_name("worker", "rejected", "reasons_total"),
                "Reasons of rejected messages, by reason code (a message may have several).",
                ["entity", "reason"],
                registry=registry,
            ),
            replayed=Counter(
                metric_name("worker", "replayed", "messages_total"),
                "Redelivered messages skipped because their outcome was already recorded.",
                ["entity"],
                registry=registry,
            ),
            batch_seconds=Histogram(
                metric_name("worker", "batch", "seconds"),
                "Time to process a batch, including waiting for Kafka to acknowledge its outputs.",
                ["entity"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            end_to_end_seconds=Histogram(
                metric_name("worker", "publish_to_output", "seconds"),
                "From a source message's Kafka timestamp to its outputs being acknowledged.",
                ["entity"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            outputs=Counter(
                metric_name("worker", "produced", "messages_total"),
                "Messages produced, by stage (golden, changes, rejected, state).",
                ["entity", "stage"],
                registry=registry,
            ),
            assigned=Gauge(
                metric_name("worker", "assigned", "partitions"),
                "Resolve-topic (shard) partitions assigned to this worker.",
                registry=registry,
            ),
            comparisons=Counter(
                metric_name("resolve", "comparisons", "pairs_total"),
                "Candidate pairs scored by the resolve stage.",
                ["entity"],
                registry=registry,
            ),
            capped_blocks=Counter(
                metric_name("resolve", "capped_blocks", "total"),
                "Blocks larger than max_block_size met by the resolve stage (only the newest "
                "max_block_size records of such a block are compared).",
                ["entity"],
                registry=registry,
            ),
            identity_records=Gauge(
                metric_name("resolve", "indexed", "records"),
                "Source records in the identity index of this worker.",
                ["entity"],
                registry=registry,
            ),
            largest_block=Gauge(
                metric_name("resolve", "largest_block", "records"),
                "Records in the largest block of the identity index.",
                ["entity"],
                registry=registry,
            ),
            forwarded=Gauge(
                metric_name("router", "forwarded", "messages"),
                "Inputs the router of this worker forwarded to the resolve topic since it started.",
                ["entity"],
                registry=registry,
            ),
            phone_numbers=Counter(
                metric_name("worker", "phone_numbers", "total"),
                "Phone numbers parsed (those not found in the worker's cache), by where: main "
                "(the worker's main thread) or ahead (its helper process, MDHUB_WORKER__PARSE_AHEAD).",
                ["where"],
                registry=registry,
            ),
            match_keys=Counter(
                metric_name("worker", "match_keys", "total"),
                "Changes whose match features and blocking keys were computed, by where: main "
                "(the worker's main thread) or ahead (its helper process).",
                ["where"],
                registry=registry,
            ),
        )


def serve_metrics(metrics: WorkerMetrics, port: int, tries: int = 10) -> int | None:
    """Serve ``/metrics`` on ``port`` (or the next free one, for several workers on one host).

    Returns:
        the port in use, or None when metrics are disabled (port 0) or no port was free.
    """
    if port == 0:
        return None
    for candidate in range(port, port + tries):
        try:
            start_http_server(candidate, addr="0.0.0.0", registry=metrics.registry)
        except OSError:
            continue
        return candidate
    log.warning("no free port in %d..%d: worker metrics are not served", port, port + tries - 1)
    return None
