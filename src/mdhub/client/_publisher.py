"""The blocking publisher of candidate changes."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from mdhub.client._core import PublisherBase
from mdhub.client._delivery import PendingDelivery, PublishStats
from mdhub.domain.records import CandidateChange, Op
from mdhub.errors import PublishError

__all__ = ["Publisher"]

log = logging.getLogger("mdhub.client")


class Publisher(PublisherBase):
    """Publish one source system's records of one entity type as candidate changes.

    Every record is checked against the entity model before it is sent (types, required
    attributes, lengths, patterns, allowed values, ranges and standardizers, exactly as the hub's
    worker checks them) and against the Avro contract; a bad record raises
    :class:`~mdhub.errors.ValidationError` listing every problem, and nothing is sent. Good ones go
    to ``<namespace>.<entity>.source.v1`` with the key ``<source>:<source_key>`` through an
    idempotent, ``acks=all`` producer, so all changes of one source record stay in order on one
    partition and a retry never duplicates a message.

    Example::

        with Publisher("customer", "crm") as publisher:
            publisher.publish("C-1001", {"first_name": "Grace", "last_name": "Hopper"})
            publisher.delete("C-0999")
        # leaving the block waited for every delivery and raised PublishError if one failed

    Args:
        entity: the entity type, e.g. ``customer``.
        source: the source system, one the entity model allows (e.g. ``crm``).
        settings: the hub's settings; by default read from the ``MDHUB_*`` environment (the model
            file, the schema directory, Kafka's address, the namespace).
        bootstrap_servers: Kafka's address, instead of the settings'.
        namespace: the hub's namespace (first segment of the topic names), instead of the
            settings'.
        config: extra librdkafka producer options (they win over the hub's defaults).
        producer: a confluent-kafka-compatible producer to use instead (tests pass a fake).

    Raises:
        ConfigError: bad settings, an unknown entity type or a source the model does not allow.
        SchemaError: the schema directory is missing or broken.
        PublishError: the Kafka producer cannot be created.
    """

    def publish(
        self,
        source_key: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        op: Op | str = Op.UPSERT,
        source_version: int | None = None,
        occurred_at: dt.datetime | None = None,
        change_id: str | None = None,
    ) -> PendingDelivery:
        """Check a record and queue it for Kafka; returns at once.

        Args:
            source_key: the record's key in the source system.
            attributes: the record's attribute values by name, typed as the model says: ``str``,
                ``int``, ``float`` (or ``int``), ``bool``, ``datetime.date``,
                ``datetime.datetime`` with a time zone, a list of ``str``; ``None`` means absent.
                Send the whole record, not only what changed: the hub keeps each source record's
                latest attributes and merges them.
            op: ``"upsert"`` (default) or ``"delete"`` (the source no longer has the record).
            source_version: the record's version in the source; it must grow with every change
                of the record (the hub rejects an older one as ``STALE_SOURCE_VERSION``). Default:
                microseconds since the epoch, increasing with every call.
            occurred_at: when the change happened in the source (time-zone aware); default now.
            change_id: a unique id of this change; default a new UUID.

        Returns:
            the pending delivery: :meth:`PendingDelivery.result` waits for Kafka's answer.

        Raises:
            ValidationError: the record breaks the model or the schema (every problem listed);
                nothing was sent.
            PublishError: the producer refused the message.
            RuntimeError: the publisher is closed.
        """
        change, value = self._prepare(
            source_key, attributes, op, source_version, occurred_at, change_id
        )
        return self._send(change, value)

    def delete(
        self,
        source_key: str,
        *,
        source_version: int | None = None,
        occurred_at: dt.datetime | None = None,
        change_id: str | None = None,
    ) -> PendingDelivery:
        """Publish that the source deleted a record: its contribution leaves the golden record.

        A golden record left without any source is retired: a final version with status
        ``retired``, then a tombstone on the golden topic. Arguments as for :meth:`publish`.
        """
        return self.publish(
            source_key,
            None,
            op=Op.DELETE,
            source_version=source_version,
            occurred_at=occurred_at,
            change_id=change_id,
        )

    def publish_change(self, change: CandidateChange, *, validate: bool = True) -> PendingDelivery:
        """Queue a ready-made candidate change (e.g. one parsed from a file).

        Args:
            change: a change of this publisher's entity type and source.
            validate: check the model's rules too (default); with ``False`` only what the Avro
                schema needs, and rule violations come back on the rejected topic instead (what
                ``mdhub publish`` does).

        Raises:
            ValidationError: the change breaks the schema (or the rules); nothing was sent.
            ConfigError: the change is for another source.
            PublishError: the producer refused the message.
            RuntimeError: the publisher is closed.
        """
        return self._send(change, self._core.check_and_encode(change, validate=validate))

    def _send(self, change: CandidateChange, value: bytes) -> PendingDelivery:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        pending = PendingDelivery(change, self.poll)
        while True:
            try:
                self._core.try_send(change, value, pending._resolve)
                break
            except BufferError:
                # the local queue is full: serve delivery reports until there is room
                self._core.producer.poll(0.05)
        self._core.producer.poll(0)
        return pending

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery reports (resolving pending deliveries) for up to ``timeout`` seconds."""
        self._core.producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> PublishStats:
        """Wait until Kafka has answered for every message published so far.

        Returns:
            the counts; ``failed`` messages are lost unless published again (doing so is safe).

        Raises:
            PublishError: messages are still in flight after ``timeout`` seconds.
        """
        left = self._core.producer.flush(timeout)
        stats = self.stats
        self._core.tracker.reported_failed = stats.failed
        if left:
            raise PublishError(
                f"{left} message(s) to {self.topic} not delivered within {timeout:g}s; is Kafka at "
                f"{self._core.settings.kafka.bootstrap_servers} up?"
            )
        return stats

    def close(self, timeout: float = 30.0) -> None:
        """Wait up to ``timeout`` seconds for in-flight messages, then release the producer.

        Messages still undelivered then are dropped (and logged); use :meth:`flush` or the
        context manager to be told with an exception.
        """
        if self._closed:
            return
        self._closed = True
        left = self._core.producer.flush(timeout)
        if left:
            log.warning("%s closed with %d undelivered message(s)", self.topic, left)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Flush; raise :class:`~mdhub.errors.PublishError` if a message failed or is undelivered.

        Failures that an earlier :meth:`flush` already reported do not raise again. When the block
        raised, its exception is not masked.
        """
        try:
            if exc_type is not None:
                self.close()
                return
            reported = self._core.tracker.reported_failed
            stats = self.flush()
            if stats.failed > reported:
                raise PublishError(
                    f"{stats.failed - reported} message(s) could not be delivered to {self.topic}: "
                    + "; ".join(stats.errors[:3])
                )
        finally:
            self.close(0)
