"""The asyncio publisher: the same checks and producer, with awaitable delivery results."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from mdhub.client._core import ProducerPort, PublisherBase
from mdhub.client._delivery import Delivery, PublishStats
from mdhub.domain.records import CandidateChange, Op
from mdhub.errors import PublishError
from mdhub.settings import Settings

__all__ = ["AsyncPublisher"]

log = logging.getLogger("mdhub.client")

_POLL_S = 0.1
_FULL_QUEUE_WAIT_S = 0.01


def _settle(future: asyncio.Future[Delivery], delivery: Delivery) -> None:
    if not future.done():  # the awaiting task may have been cancelled
        future.set_result(delivery)


class AsyncPublisher(PublisherBase):
    """:class:`Publisher` for asyncio: ``await publisher.publish(...)`` returns the delivery.

    The producer's delivery reports are served by a background thread, which hands each result to
    the event loop (``call_soon_threadsafe``); nothing here blocks the loop. Checks, keys, ordering
    and the idempotent ``acks=all`` producer are those of :class:`Publisher`.

    Example::

        async with AsyncPublisher("customer", "crm") as publisher:
            delivery = await publisher.publish("C-1001", {"first_name": "Grace", "last_name": "Hopper"})
            print(delivery.partition, delivery.offset)

    To publish many records concurrently, gather the coroutines: ``await asyncio.gather(*(
    publisher.publish(key, values) for key, values in records))``; each one is queued at once.

    Arguments are those of :class:`Publisher`.
    """

    def __init__(
        self,
        entity: str,
        source: str,
        *,
        settings: Settings | None = None,
        bootstrap_servers: str | None = None,
        namespace: str | None = None,
        config: Mapping[str, Any] | None = None,
        producer: ProducerPort | None = None,
    ) -> None:
        super().__init__(
            entity,
            source,
            settings=settings,
            bootstrap_servers=bootstrap_servers,
            namespace=namespace,
            config=config,
            producer=producer,
        )
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    async def publish(
        self,
        source_key: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        op: Op | str = Op.UPSERT,
        source_version: int | None = None,
        occurred_at: dt.datetime | None = None,
        change_id: str | None = None,
    ) -> Delivery:
        """Check a record, send it, and wait for Kafka's answer.

        Arguments as for :meth:`Publisher.publish`.

        Returns:
            the delivery (check :attr:`Delivery.ok` or call :meth:`Delivery.raise_for_error`).

        Raises:
            ValidationError: the record breaks the model or the schema; nothing was sent.
            PublishError: the producer refused the message.
            RuntimeError: the publisher is closed.
        """
        change, value = self._prepare(
            source_key, attributes, op, source_version, occurred_at, change_id
        )
        return await self._send(change, value)

    async def delete(
        self,
        source_key: str,
        *,
        source_version: int | None = None,
        occurred_at: dt.datetime | None = None,
        change_id: str | None = None,
    ) -> Delivery:
        """Publish that the source deleted a record (see :meth:`Publisher.delete`)."""
        return await self.publish(
            source_key,
            None,
            op=Op.DELETE,
            source_version=source_version,
            occurred_at=occurred_at,
            change_id=change_id,
        )

    async def publish_change(self, change: CandidateChange, *, validate: bool = True) -> Delivery:
        """Send a ready-made candidate change (see :meth:`Publisher.publish_change`)."""
        return await self._send(change, self._core.check_and_encode(change, validate=validate))

    def _ensure_poller(self) -> None:
        if self._poller is None:
            self._poller = threading.Thread(
                target=self._serve, name=f"mdhub-publisher-{self.topic}", daemon=True
            )
            self._poller.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._core.producer.poll(_POLL_S)

    async def _send(self, change: CandidateChange, value: bytes) -> Delivery:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        self._ensure_poller()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivery] = loop.create_future()

        def resolve(delivery: Delivery) -> None:
            # a closed loop raises RuntimeError: nobody waits for this result any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, delivery)

        while True:
            try:
                self._core.try_send(change, value, resolve)
                break
            except BufferError:
                # the local queue is full; the poller thread makes room
                await asyncio.sleep(_FULL_QUEUE_WAIT_S)
        return await future

    async def flush(self, timeout: float = 30.0) -> PublishStats:
        """Wait (in a worker thread) until Kafka has answered for every message published so far.

        Raises:
            PublishError: messages are still in flight after ``timeout`` seconds.
        """
        left = await asyncio.to_thread(self._core.producer.flush, timeout)
        stats = self.stats
        self._core.tracker.reported_failed = stats.failed
        if left:
            raise PublishError(
                f"{left} message(s) to {self.topic} not delivered within {timeout:g}s; is Kafka at "
                f"{self._core.settings.kafka.bootstrap_servers} up?"
            )
        return stats

    async def close(self, timeout: float = 30.0) -> None:
        """Wait up to ``timeout`` seconds for in-flight messages, then stop the poller thread."""
        if self._closed:
            return
        self._closed = True
        left = await asyncio.to_thread(self._core.producer.flush, timeout)
        if left:
            log.warning("%s closed with %d undelivered message(s)", self.topic, left)
        self._stop.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)

    async def __aenter__(self) -> AsyncPublisher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Flush; raise :class:`~mdhub.errors.PublishError` if a message failed or is undelivered.

        Failures that an earlier :meth:`flush` already reported do not raise again.
        """
        try:
            if exc_type is not None:
                await self.close()
                return
            reported = self._core.tracker.reported_failed
            stats = await self.flush()
            if stats.failed > reported:
                raise PublishError(
                    f"{stats.failed - reported} message(s) could not be delivered to {self.topic}: "
                    + "; ".join(stats.errors[:3])
                )
        finally:
            await self.close(0)
