"""An idempotent ``acks=all`` producer with delivery tracking."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from mdhub.errors import PublishError
from mdhub.kafka.config import producer_config
from mdhub.settings import KafkaSettings

__all__ = ["DeliveryReport", "HubProducer"]


@dataclass(slots=True)
class DeliveryReport:
    """Counts of delivered and failed messages, and the first errors seen."""

    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class HubProducer:
    """Wraps a confluent-kafka producer: produce without blocking, then wait for every delivery."""

    def __init__(self, kafka: KafkaSettings, **overrides: Any) -> None:
        self._kafka = kafka
        try:
            self._producer = Producer(producer_config(kafka, **overrides))
        except KafkaException as exc:
            raise PublishError(f"cannot create a Kafka producer: {exc}") from exc
        self._lock = threading.Lock()
        self.report = DeliveryReport()
        self._on_error: Callable[[str], None] | None = None

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        with self._lock:
            if err is None:
                self.report.delivered += 1
            else:
                self.report.failed += 1
                if len(self.report.errors) < 20:
                    self.report.errors.append(f"{msg.topic()}[{msg.partition()}]: {err.str()}")

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        on_delivered: Callable[[int, int], None] | None = None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        """Queue one message; waits (serving callbacks) while the local queue is full.

        Args:
            on_delivered: called with ``(partition, offset)`` once Kafka has the message.
        """
        callback = self._delivered
        if on_delivered is not None:

            def callback(err: KafkaError | None, msg: Message) -> None:
                self._delivered(err, msg)
                if err is None:
                    on_delivered(int(msg.partition() or 0), int(msg.offset() or 0))

        part = -1 if partition is None else partition  # -1: the partitioner chooses
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    partition=part,
                    on_delivery=callback,
                    headers=headers,
                )
                return
            except BufferError:
                self._producer.poll(0.05)
            except KafkaException as exc:
                raise PublishError(f"cannot queue a message for {topic}: {exc}") from exc

    def poll(self, timeout: float = 0) -> None:
        """Serve delivery callbacks."""
        self._producer.poll(timeout)

    def flush(self, timeout: float) -> int:
        """Wait until every queued message is delivered or failed; return how many are left."""
        return int(self._producer.flush(timeout))

    def deliver_all(self, timeout: float) -> DeliveryReport:
        """Flush, then raise :class:`PublishError` if anything is undelivered or failed.

        Returns:
            the cumulative delivery report.
        """
        left = self.flush(timeout)
        if left:
            raise PublishError(
                f"{left} message(s) not delivered within {timeout:.0f}s to {self._kafka.bootstrap_servers}"
            )
        with self._lock:
            if self.report.failed:
                raise PublishError(
                    f"{self.report.failed} message(s) failed: " + "; ".join(self.report.errors[:3])
                )
            return self.report
