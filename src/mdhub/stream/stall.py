"""Liveness of the worker's stream: notice when the agent stops taking inputs that are waiting.

faust's consumer can stop fetching after a rebalance while the worker otherwise looks healthy
(faust-streaming issue #175, "Consumers slowly die over time"): the group keeps its partitions, no
error is logged, and the lag only grows. The worker cannot repair that from inside, but a restart
does (the inputs are replayed from the committed offsets, and the ledger skips what was done). So
the worker watches itself: when the resolve partitions it owns have inputs beyond the group's
committed offset, and no batch started for ``timeout`` seconds of successful checks, it exits
with :data:`mdhub.stream.exits.EXIT_STALLED` for its supervisor (a restart policy, systemd) to start it again.
Messages faust dropped from its queues also hold the committed offset back; the agent notices
those at its next batch (:mod:`mdhub.stream.continuity`), and this watch when no batch follows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from mdhub.kafka.config import consumer_config
from mdhub.kafka.offsets import read_committed
from mdhub.settings import KafkaSettings

__all__ = ["LagProbe", "StallWatch"]

log = logging.getLogger("mdhub.worker")


@dataclass(slots=True)
class StallWatch:
    """Decides, from periodic lag checks and batch starts, whether the stream has stalled.

    Attributes:
        timeout: seconds of waiting inputs without a new batch that count as a stall.
    """

    timeout: float
    since: float | None = None  # when waiting inputs were first seen with no batch after
    last_batch: float = 0.0

    def batch_started(self, now: float) -> None:
        """A batch of inputs reached the agent."""
        self.last_batch = now

    def check(self, lag: int | None, now: float) -> bool:
        """Record one check (``lag`` None: Kafka could not say); return True on a stall.

        A batch that started before the inputs were seen waiting and is still running (its outputs
        not delivered although Kafka answers) counts as stalled too.
        """
        if lag is None or lag <= 0:
            self.since = None  # nothing waiting, or no answer: start over
            return False
        if self.since is None or self.last_batch > self.since:
            self.since = now
            return False
        return now - self.since >= self.timeout


class LagProbe:
    """Asks Kafka how far the worker group's committed offsets are behind the resolve topics.

    It keeps a consumer of its own, closed when the worker stops, rather than going through
    :func:`mdhub.kafka.lag.group_lag` and the process's shared admin client: an admin client
    cannot be closed, and one destroyed at the worker's exit after its requests timed out (the
    broker away) crashed librdkafka (SIGSEGV in ``rdk:main``, the broker-restart crash test).
    """

    def __init__(self, kafka: KafkaSettings, group: str) -> None:
        self._config = consumer_config(kafka, group, **{"enable.auto.commit": False})
        self._consumer: Consumer | None = None
        self._lock = threading.Lock()  # the stall timer and the agent ask from their own threads

    def _client(self) -> Consumer:
        with self._lock:
            if self._consumer is None:
                self._consumer = Consumer(self._config)
            return self._consumer

    def _positions(
        self, partitions: Iterable[tuple[str, int]], timeout: float
    ) -> dict[tuple[str, int], tuple[int, int]]:
        """``(where the group resumes, log end)`` of each partition: the committed offset, or the
        partition's first offset when nothing is committed (the worker reads from the earliest).

        Raises:
            KafkaException: Kafka did not answer within ``timeout`` seconds.
        """
        consumer = self._client()
        found: dict[tuple[str, int], tuple[int, int]] = {}
        for (topic, partition), offset in read_committed(consumer, partitions, timeout).items():
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout, cached=False
            )
            found[(topic, partition)] = (offset if offset >= 0 else low, high)
        return found

    def lag(self, partitions: Iterable[tuple[str, int]], timeout: float = 5.0) -> int | None:
        """Inputs beyond the committed offsets of ``partitions``; None when Kafka does not answer."""
        wanted = list(partitions)
        if not wanted:
            return 0
        try:
            positions = self._positions(wanted, timeout)
        except KafkaException as exc:
            log.debug("stall check: Kafka did not answer (%s)", exc)
            return None
        return sum(max(0, high - start) for start, high in positions.values())

    def starts(self, topic: str, partitions: Iterable[int], timeout: float = 5.0) -> dict[int, int]:
        """Where the group resumes on ``partitions`` of ``topic`` (see :meth:`_positions`).

        Raises:
            KafkaException: Kafka did not answer within ``timeout`` seconds.
        """
        positions = self._positions([(topic, p) for p in partitions], timeout)
        return {partition: start for (_, partition), (start, _) in positions.items()}

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
