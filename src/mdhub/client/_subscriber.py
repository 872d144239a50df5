"""The subscriber: an entity's golden, changes or rejected topic in a consumer group, typed."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, TypeVar, cast, overload

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from mdhub.client._records import Received, Rejection, Tombstone, decoder_for
from mdhub.client._setup import load_setup
from mdhub.domain.records import ChangeEvent, GoldenRecord
from mdhub.errors import ConfigError, DecodeError, KafkaUnavailableError
from mdhub.kafka.config import consumer_config
from mdhub.naming import Stage, group_name, topic_name
from mdhub.settings import Settings

__all__ = ["ConsumerPort", "Retry", "Subscriber"]

log = logging.getLogger("mdhub.client")

R = TypeVar("R")
TopicKind = Literal["golden", "changes", "rejected"]

_POLL_S = 0.5


class ConsumerPort(Protocol):
    """The part of confluent-kafka's ``Consumer`` a subscriber uses (tests pass a fake)."""

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...

    def subscribe(self, topics: list[str]) -> None: ...

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    def poll(self, timeout: float = -1) -> Message | None: ...

    def store_offsets(
        self, message: Message | None = None, offsets: list[TopicPartition] | None = None
    ) -> None: ...

    def seek(self, partition: TopicPartition) -> None: ...

    def commit(self, *, asynchronous: Literal[False]) -> list[TopicPartition]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Retry:
    """How often :meth:`Subscriber.run` calls a failing handler on the same record.

    The record is retried in place (nothing after it is handled meanwhile, its offset is not
    stored). Once ``attempts`` calls have failed, the subscriber seeks back to the record and
    :meth:`Subscriber.run` re-raises the handler's exception: the next ``run()`` (or the next
    member of the group, if this process stops) receives the record again.

    Attributes:
        attempts: calls per record, at least 1 (1: no retry).
        backoff_s: the wait before the first retry.
        multiplier: each further wait is this many times the previous one.
        max_backoff_s: the longest wait. Keep the sum of the waits well below the consumer's
            ``max.poll.interval.ms`` (5 minutes), or the group hands the partition to another member.
    """

    attempts: int = 3
    backoff_s: float = 0.5
    multiplier: float = 2.0
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("Retry.attempts must be at least 1")
        if self.backoff_s < 0 or self.max_backoff_s < 0 or self.multiplier < 1:
            raise ValueError("Retry waits must not be negative, nor the multiplier below 1")

    def delay(self, attempt: int) -> float:
        """The wait after failed call number ``attempt`` (1-based)."""
        return float(min(self.max_backoff_s, self.backoff_s * self.multiplier ** (attempt - 1)))


class Subscriber(Generic[R]):
    """Read an entity's golden records (or change events, or rejections) as typed values.

    In a consumer group (``group="billing"``) the members share the topic's partitions, and an
    offset is stored for commit only after the record was processed (at-least-once): by
    :meth:`run` once the handler returned, and when iterating once the loop body finished and the
    next record is asked for. A record whose processing failed is delivered again. Without a group
    (``group=None``) the subscriber reads every partition and commits nothing, like
    ``mdhub tail``.

    What it yields, by ``topic``:

    - ``"golden"`` (default): :class:`~mdhub.domain.records.GoldenRecord` for each accepted
      version, and :class:`Tombstone` when a record is gone. A record with
      ``status == GoldenStatus.MERGED`` was merged into another: ``record.merged_into`` names the
      surviving golden id, and the id stays as a redirect.
    - ``"changes"``: :class:`~mdhub.domain.records.ChangeEvent` for every accepted version.
    - ``"rejected"``: :class:`Rejection`, the inputs the hub refused with their reasons.

    Example::

        with Subscriber("customer", "billing-sync", from_beginning=True) as subscriber:
            subscriber.run(handle)  # handle(record) for every record, until stop()

    Args:
        entity: the entity type, e.g. ``customer``.
        group: the consumer group; ``None`` for none (read all partitions, commit nothing).
        topic: ``"golden"``, ``"changes"`` or ``"rejected"``.
        from_beginning: where to start when the group has no committed offset yet (and, without
            a group, every time): at the beginning of the topic, or (default) at its end, i.e.
            with what is published from now on. A group that has committed offsets continues
            from them.
        settings: the hub's settings; by default read from the ``MDHUB_*`` environment.
        bootstrap_servers: Kafka's address, instead of the settings'.
        namespace: the hub's namespace, instead of the settings'.
        config: extra librdkafka consumer options (they win over the defaults).
        consumer: a confluent-kafka-compatible consumer to use instead (tests pass a fake).

    Raises:
        ConfigError: bad settings, an unknown entity type or topic kind, or the topic does not
            exist (run ``mdhub topics ensure``).
        SchemaError: the schema directory is missing or broken.
        KafkaUnavailableError: Kafka does not answer.
    """

    @overload
    def __init__(
        self: Subscriber[GoldenRecord | Tombstone],
        entity: str,
        group: str | None,
        *,
        topic: Literal["golden"] = "golden",
        from_beginning: bool = False,
        settings: Settings | None = None,
        bootstrap_servers: str | None = None,
        namespace: str | None = None,
        config: Mapping[str, Any] | None = None,
        consumer: ConsumerPort | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: Subscriber[ChangeEvent],
        entity: str,
        group: str | None,
        *,
        topic: Literal["changes"],
        from_beginning: bool = False,
        settings: Settings | None = None,
        bootstrap_servers: str | None = None,
        namespace: str | None = None,
        config: Mapping[str, Any] | None = None,
        consumer: ConsumerPort | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: Subscriber[Rejection],
        entity: str,
        group: str | None,
        *,
        topic: Literal["rejected"],
        from_beginning: bool = False,
        settings: Settings | None = None,
        bootstrap_servers: str | None = None,
        namespace: str | None = None,
        config: Mapping[str, Any] | None = None,
        consumer: ConsumerPort | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: Subscriber[Any],
        entity: str,
        group: str | None,
        *,
        topic: TopicKind,
        from_beginning: bool = False,
        settings: Settings | None = None,
        bootstrap_servers: str | None = None,
        namespace: str | None = None,
        config: Mapping[str, Any] | None = None,
        consumer: ConsumerPort | None = None,
    ) -> None: ...

    def __init__(
        self,
        entity: str,
        group: str | None,
        *,
        topic: TopicKind = "golden",
        from_beginning: bool = False,
        settings: Settings | None = None,
        bootstrap_servers: str | None = None,
        namespace: str | None = None,
        config: Mapping[str, Any] | None = None,
        consumer: ConsumerPort | None = None,
    ) -> None:
        if group is not None and not (isinstance(group, str) and group.strip()):
            raise ConfigError("group must be a non-empty consumer group id, or None for none")
        setup = load_setup(
            entity, settings, bootstrap_servers=bootstrap_servers, namespace=namespace
        )
        try:
            self._decode = decoder_for(topic, setup.entity, setup.catalog)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self._settings = setup.settings
        self.entity = setup.entity.name
        self.group = group
        self.kind: TopicKind = topic
        self.topic = topic_name(setup.settings.namespace, setup.entity.name, Stage(topic))
        self._stop = threading.Event()
        self._closed = False
        self._pending: Received[R] | None = None
        if consumer is None:
            overrides: dict[str, Any] = {
                "auto.offset.reset": "earliest" if from_beginning else "latest"
            }
            if group is None:
                overrides["enable.auto.commit"] = False
            overrides.update(config or {})
            group_id = group or group_name(setup.settings.namespace, "viewer")
            try:
                consumer = Consumer(consumer_config(setup.settings.kafka, group_id, **overrides))
            except KafkaException as exc:
                raise ConfigError(f"cannot create a Kafka consumer: {exc}") from exc
        self._consumer: ConsumerPort = consumer
        try:
            partitions = self._partitions()
            if group is None:
                start = OFFSET_BEGINNING if from_beginning else OFFSET_END
                self._consumer.assign([TopicPartition(self.topic, p, start) for p in partitions])
            else:
                self._consumer.subscribe([self.topic])
        except BaseException:
            self._consumer.close()
            raise

    def __repr__(self) -> str:
        group = f"group {self.group}" if self.group else "no group"
        return f"<Subscriber {self.topic} ({group})>"

    # -- consuming ---------------------------------------------------------------------------

    def _partitions(self) -> list[int]:
        kafka = self._settings.kafka
        try:
            meta = self._consumer.list_topics(self.topic, timeout=kafka.request_timeout_s)
        except KafkaException as exc:
            raise KafkaUnavailableError(
                f"Kafka at {kafka.bootstrap_servers} does not answer: {exc}"
            ) from exc
        info = meta.topics.get(self.topic)
        if info is None or info.error is not None or not info.partitions:
            raise ConfigError(
                f"topic {self.topic} does not exist; run `mdhub topics ensure` (or check "
                "MDHUB_NAMESPACE and the entity type)"
            )
        return sorted(info.partitions)

    def _poll(self, timeout: float) -> Received[R] | None:
        try:
            msg = self._consumer.poll(timeout)
        except KafkaException as exc:
            raise KafkaUnavailableError(f"{self.topic}: {exc}") from exc
        if msg is None:
            return None
        err = msg.error()
        if err is not None:
            if err.fatal():
                raise KafkaUnavailableError(f"{self.topic}: {err.str()}")
            if err.code() != KafkaError._PARTITION_EOF:
                # transient (the client retries by itself): broker down, leader moving...
                log.warning("%s: %s", self.topic, err.str())
            return None
        raw_key = msg.key()
        key = raw_key.decode("utf-8", "replace") if raw_key is not None else None
        ts_type, ts_ms = msg.timestamp()
        timestamp = (
            dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC)
            if ts_type != TIMESTAMP_NOT_AVAILABLE and ts_ms >= 0
            else None
        )
        value = msg.value()
        record: R | None = None
        error: DecodeError | None = None
        try:
            record = self._decode(key, value)
        except DecodeError as exc:
            error = exc
        return Received(
            self.topic,
            int(msg.partition() or 0),
            int(msg.offset() or 0),
            key,
            timestamp,
            record,
            value,
            error,
        )

    def _ack(self, received: Received[R]) -> None:
        """The record is processed: store its offset for the next commit."""
        if self._pending is not received:
            return
        self._pending = None
        if self.group is None or self._closed:
            return
        try:
            self._consumer.store_offsets(
                offsets=[TopicPartition(received.topic, received.partition, received.offset + 1)]
            )
        except KafkaException as exc:
            # the partition went to another member meanwhile: it will deliver the record again
            log.info("%s[%d]: offset not stored: %s", self.topic, received.partition, exc)

    def _nack(self, received: Received[R]) -> None:
        """The record was not processed: go back to it, so it is delivered again."""
        if self._pending is not received:
            return
        self._pending = None
        if self._closed:
            return
        try:
            self._consumer.seek(TopicPartition(received.topic, received.partition, received.offset))
        except KafkaException as exc:
            # no longer assigned here: the new owner starts from the committed offset
            log.info("%s[%d]: no seek back: %s", self.topic, received.partition, exc)

    def _located(self, received: Received[R]) -> DecodeError:
        error = received.error
        assert error is not None
        return DecodeError(
            error.code, f"{received.topic}[{received.partition}]@{received.offset}: {error}"
        )

    def messages(self, *, idle_timeout: float | None = None) -> Generator[Received[R], None, None]:
        """Yield every message with its coordinates, decoded (or with its decoding error).

        A message's offset is stored once the loop asks for the next one; leaving the loop early
        (``break``, an exception) leaves the last one unprocessed, to be delivered again (call
        :meth:`commit` before ``break`` to count it as processed).

        Args:
            idle_timeout: stop after this many seconds without a message; ``None`` runs until
                :meth:`stop`.
        """
        self._ensure_open()
        self._stop.clear()
        if self._pending is not None:
            # handed out by an earlier loop that was left before it finished
            self._nack(self._pending)
        last = time.monotonic()
        while not self._stop.is_set():
            wait = _POLL_S
            if idle_timeout is not None:
                wait = max(0.0, min(wait, idle_timeout - (time.monotonic() - last)))
            received = self._poll(wait)
            if received is None:
                if idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                    return
                continue
            last = time.monotonic()
            self._pending = received
            try:
                yield received
            except BaseException:  # the loop was left (GeneratorExit) or raised into us
                self._nack(received)
                raise
            self._ack(received)

    def records(self, *, idle_timeout: float | None = None) -> Generator[R, None, None]:
        """Yield the decoded records (what iterating the subscriber does).

        Raises:
            DecodeError: a message cannot be decoded (e.g. its writer schema is missing from
                ``schemas/``; update them). The subscriber stays at that message.
        """
        with closing(self.messages(idle_timeout=idle_timeout)) as stream:
            for received in stream:
                if received.error is not None:
                    self._nack(received)
                    raise self._located(received)
                yield cast(R, received.record)

    def __iter__(self) -> Iterator[R]:
        return self.records()

    def run(
        self,
        handler: Callable[[R], object],
        *,
        retry: Retry | None = None,
        idle_timeout: float | None = None,
    ) -> int:
        """Call ``handler(record)`` for every record; store its offset only once it returned.

        Runs until :meth:`stop` (e.g. from the handler or a signal handler), or ``idle_timeout``
        seconds without a record. A handler that raises is called again per ``retry``
        (default: 3 attempts, 0.5 s then 1 s apart); when the attempts are used up, the
        subscriber seeks back to the record and re-raises the handler's exception unchanged. The
        record's offset is not stored, so the next ``run()`` (or, once this consumer is closed,
        another member of the group) receives it again.

        Returns:
            how many records the handler processed.

        Raises:
            DecodeError: a message cannot be decoded (the subscriber stays at it).
            Exception: whatever the handler raised on its last attempt.
        """
        policy = retry or Retry()
        handled = 0
        with closing(self.messages(idle_timeout=idle_timeout)) as stream:
            for received in stream:
                if received.error is not None:
                    self._nack(received)
                    raise self._located(received)
                if not self._handle(handler, received, policy):
                    self._nack(received)  # stopped while waiting to retry: not processed
                    return handled
                handled += 1
        return handled

    def _handle(self, handler: Callable[[R], object], received: Received[R], policy: Retry) -> bool:
        attempt = 1
        while True:
            try:
                handler(cast(R, received.record))
                return True
            except Exception:
                if attempt >= policy.attempts:
                    self._nack(received)
                    raise
                delay = policy.delay(attempt)
                log.warning(
                    "%s[%d]@%d: handler failed (attempt %d of %d); retrying in %.1fs",
                    received.topic,
                    received.partition,
                    received.offset,
                    attempt,
                    policy.attempts,
                    delay,
                    exc_info=True,
                )
            if self._stop.wait(delay):
                return False
            attempt += 1

    # -- control -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Make the running :meth:`run` or loop return soon (safe from any thread or handler)."""
        self._stop.set()

    def commit(self) -> None:
        """Count the record handed out last as processed and commit the stored offsets now.

        Offsets are also committed every few seconds (``auto.commit.interval.ms``) and on
        :meth:`close`; call this before leaving a loop early, or to be sure before going on.

        Raises:
            KafkaUnavailableError: the commit failed.
        """
        self._ensure_open()
        if self._pending is not None:
            self._ack(self._pending)
        if self.group is None:
            return
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args and getattr(exc.args[0], "code", lambda: None)() == KafkaError._NO_OFFSET:
                return  # nothing new to commit
            raise KafkaUnavailableError(f"{self.topic}: commit failed: {exc}") from exc

    def close(self) -> None:
        """Commit the stored offsets, leave the group and release the consumer.

        A record handed out but not finished is not committed. Call it from the thread that
        consumes; use :meth:`stop` from others.
        """
        if self._closed:
            return
        self._stop.set()
        self._pending = None
        self._closed = True
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("%s: closing the consumer: %s", self.topic, exc)

    def _ensure_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")

    def __enter__(self) -> Subscriber[R]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
