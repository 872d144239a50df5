"""What the blocking and the asyncio publisher share: settings, checks, encoding and the producer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from mdhub.client._checks import VersionClock, build_change, check_change, encode_change
from mdhub.client._delivery import Delivery, DeliveryTracker, PublishStats
from mdhub.client._setup import load_setup
from mdhub.domain.records import CandidateChange, Op
from mdhub.errors import ConfigError, PublishError
from mdhub.kafka.config import producer_config
from mdhub.naming import Stage, topic_name
from mdhub.serde.generate import fullname
from mdhub.settings import Settings

__all__ = ["DeliveryCallback", "ProducerPort", "PublisherBase", "PublisherCore"]

DeliveryCallback = Callable[[KafkaError | None, Message], None]


class ProducerPort(Protocol):
    """The part of confluent-kafka's ``Producer`` a publisher uses (tests pass a fake)."""

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        on_delivery: DeliveryCallback | None = None,
    ) -> None: ...

    def poll(self, timeout: float = -1) -> int: ...

    def flush(self, timeout: float = -1) -> int: ...


class PublisherCore:
    """One entity type and source: builds, checks and encodes changes, and queues them."""

    def __init__(
        self,
        entity: str,
        source: str,
        *,
        settings: Settings | None,
        bootstrap_servers: str | None,
        namespace: str | None,
        config: Mapping[str, Any] | None,
        producer: ProducerPort | None,
    ) -> None:
        setup = load_setup(
            entity, settings, bootstrap_servers=bootstrap_servers, namespace=namespace
        )
        self.settings = setup.settings
        self.entity = setup.entity
        if source not in self.entity.sources:
            raise ConfigError(
                f"source {source!r} may not publish {self.entity.name}; the model allows: "
                + ", ".join(self.entity.sources)
            )
        self.source = source
        self.codec = setup.catalog.codec(fullname(self.entity.name, "CandidateChange"))
        self.topic = topic_name(self.settings.namespace, self.entity.name, Stage.SOURCE)
        self.tracker = DeliveryTracker()
        self.clock = VersionClock()
        if producer is None:
            try:
                # the hub's producer settings: idempotent, acks=all, murmur2 partitioning
                producer = Producer(producer_config(self.settings.kafka, **dict(config or {})))
            except KafkaException as exc:
                raise PublishError(f"cannot create a Kafka producer: {exc}") from exc
        self.producer: ProducerPort = producer

    def prepare(
        self,
        source_key: Any,
        attributes: Mapping[Any, Any] | None,
        *,
        op: Op | str,
        source_version: Any,
        occurred_at: Any,
        change_id: Any,
    ) -> tuple[CandidateChange, bytes]:
        """Build, check and encode a change from a producer's values.

        Raises:
            ValidationError: with every problem.
        """
        change = build_change(
            self.entity,
            self.source,
            self.clock,
            source_key=source_key,
            attributes=attributes,
            op=op,
            source_version=source_version,
            occurred_at=occurred_at,
            change_id=change_id,
        )
        return change, encode_change(self.entity, change, self.codec)

    def check_and_encode(self, change: CandidateChange, *, validate: bool) -> bytes:
        """Check a ready-made change (always its source; its rules when ``validate``) and encode it.

        Raises:
            ValidationError: with every problem.
            ConfigError: the change is for another source.
        """
        if change.source != self.source:
            raise ConfigError(
                f"this publisher publishes for source {self.source!r}, not {change.source!r}"
            )
        return check_change(self.entity, change, self.codec, rules=validate)

    def try_send(
        self, change: CandidateChange, value: bytes, resolve: Callable[[Delivery], None]
    ) -> None:
        """Queue one message; raises ``BufferError`` while the producer's queue is full.

        ``resolve`` receives the delivery result from whichever thread serves the callbacks.

        Raises:
            PublishError: the producer refused the message for another reason.
        """
        key = change.source_ref
        topic = self.topic
        tracker = self.tracker

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                delivery = Delivery(topic, key, change.change_id, msg.partition(), msg.offset())
            else:
                delivery = Delivery(topic, key, change.change_id, None, None, err.str())
            tracker.done(delivery)
            resolve(delivery)

        tracker.sent()
        try:
            self.producer.produce(topic, value, key.encode(), on_delivery=delivered)
        except BufferError:
            tracker.unsent()
            raise
        except KafkaException as exc:
            tracker.unsent()
            raise PublishError(f"cannot queue {key} for {topic}: {exc}") from exc


class PublisherBase:
    """The surface :class:`Publisher` and :class:`AsyncPublisher` share: their core and checks."""

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
        self._core = PublisherCore(
            entity,
            source,
            settings=settings,
            bootstrap_servers=bootstrap_servers,
            namespace=namespace,
            config=config,
            producer=producer,
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.entity} from {self.source} to {self.topic}>"

    @property
    def entity(self) -> str:
        """The entity type."""
        return self._core.entity.name

    @property
    def source(self) -> str:
        """The source system."""
        return self._core.source

    @property
    def topic(self) -> str:
        """The source topic messages go to."""
        return self._core.topic

    @property
    def stats(self) -> PublishStats:
        """Counts of published, delivered, failed and in-flight messages."""
        return self._core.tracker.stats()

    def build(
        self,
        source_key: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        op: Op | str = Op.UPSERT,
        source_version: int | None = None,
        occurred_at: dt.datetime | None = None,
        change_id: str | None = None,
    ) -> CandidateChange:
        """Check a record and return the candidate change ``publish`` would send.

        Nothing is sent. Arguments as for :meth:`Publisher.publish`.

        Raises:
            ValidationError: with every problem.
        """
        return self._prepare(source_key, attributes, op, source_version, occurred_at, change_id)[0]

    def _prepare(
        self,
        source_key: str,
        attributes: Mapping[str, Any] | None,
        op: Op | str,
        source_version: int | None,
        occurred_at: dt.datetime | None,
        change_id: str | None,
    ) -> tuple[CandidateChange, bytes]:
        return self._core.prepare(
            source_key,
            attributes,
            op=op,
            source_version=source_version,
            occurred_at=occurred_at,
            change_id=change_id,
        )
