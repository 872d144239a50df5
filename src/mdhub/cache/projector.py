"""Project golden topics into the Redis read views, and rebuild the views from Kafka.

Both paths write through :meth:`GoldenCache.apply_golden`, a compare-and-set on version, so
re-delivered or replayed messages change nothing and a flushed Redis is simply refilled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from mdhub.cache.views import GoldenCache, GoldenView
from mdhub.domain.model import EntityModel
from mdhub.domain.records import GoldenStatus
from mdhub.errors import DecodeError, KafkaUnavailableError, RedisUnavailableError
from mdhub.kafka.config import consumer_config
from mdhub.naming import Stage, group_name, topic_name
from mdhub.serde.catalog import AvroCodec, SchemaCatalog
from mdhub.serde.generate import fullname
from mdhub.serde.mapping import golden_from_avro, golden_to_json
from mdhub.settings import Settings

__all__ = ["Projector", "RebuildProgress", "rebuild_views", "view_of"]

log = logging.getLogger("mdhub.projector")

BATCH = 500
MARKER_CHECK_S = 2.0


def view_of(codec: AvroCodec, value: bytes) -> GoldenView:
    """Turn an encoded golden record into the view to store (retired records drop their doc)."""
    golden = golden_from_avro(codec.decode(value))
    live = golden.status not in (GoldenStatus.RETIRED, GoldenStatus.ERASED)
    return GoldenView(
        golden_id=golden.golden_id,
        version=golden.version,
        doc=golden_to_json(golden) if live else None,
        xrefs=tuple((s.source, s.source_key) for s in golden.active_sources) if live else (),
    )


class _Decoder:
    def __init__(
        self, settings: Settings, entities: Sequence[EntityModel], catalog: SchemaCatalog
    ) -> None:
        self.by_topic: dict[str, tuple[str, AvroCodec]] = {
            topic_name(settings.namespace, e.name, Stage.GOLDEN): (
                e.name,
                catalog.codec(fullname(e.name, "GoldenRecord")),
            )
            for e in entities
        }

    def group(self, messages: Sequence[KafkaMessage]) -> dict[str, list[GoldenView]]:
        views: dict[str, list[GoldenView]] = defaultdict(list)
        for msg in messages:
            value = msg.value()
            if value is None:
                continue  # tombstone: the retired version before it already dropped the view
            entity, codec = self.by_topic[str(msg.topic())]
            try:
                views[entity].append(view_of(codec, value))
            except DecodeError as exc:
                log.error(
                    "skipping undecodable golden record %s[%d]@%d: %s",
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    exc,
                )
        return views


class Projector:
    """Consume golden topics in the ``<ns>-projector`` group and write the read views."""

    def __init__(
        self,
        settings: Settings,
        entities: Sequence[EntityModel],
        catalog: SchemaCatalog,
        cache: GoldenCache,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.decoder = _Decoder(settings, entities, catalog)
        self.applied = 0
        self.consumed = 0
        self._stop = threading.Event()

    def _lost(self) -> set[str]:
        """Topics whose entity's views are gone (Redis flushed or restarted empty)."""
        try:
            return {
                t
                for t, (entity, _) in self.decoder.by_topic.items()
                if not self.cache.filled(entity)
            }
        except RedisUnavailableError:
            return set()  # the next batch waits for Redis; the check runs again later

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        lost = self._lost()
        for tp in partitions:
            if tp.topic in lost:
                tp.offset = OFFSET_BEGINNING
        consumer.assign(partitions)
        self._mark(lost)

    def _refill_if_lost(self, consumer: Consumer) -> None:
        lost = self._lost()
        if not lost:
            return
        for tp in consumer.assignment():
            if tp.topic in lost:
                consumer.seek(TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING))
        log.warning(
            "read views of %s are gone; refilling them from offset 0", ", ".join(sorted(lost))
        )
        self._mark(lost)

    def _mark(self, topics: set[str]) -> None:
        for topic in topics:
            self.cache.mark_filled(self.decoder.by_topic[topic][0])

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current batch."""
        self._stop.set()

    def run(self, on_batch: Callable[[int, int], None] | None = None) -> None:
        """Project until :meth:`stop`; a Redis outage pauses and retries the same batch."""
        consumer = Consumer(
            consumer_config(self.settings.kafka, group_name(self.settings.namespace, "projector"))
        )
        consumer.subscribe(list(self.decoder.by_topic), on_assign=self._on_assign)
        backoff = 0.2
        next_check = time.monotonic() + MARKER_CHECK_S
        try:
            while not self._stop.is_set():
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + MARKER_CHECK_S
                    self._refill_if_lost(consumer)
                messages = [m for m in consumer.consume(BATCH, timeout=0.5) if m.error() is None]
                if not messages:
                    continue
                try:
                    applied = sum(
                        self.cache.apply_golden(entity, views)
                        for entity, views in self.decoder.group(messages).items()
                    )
                except RedisUnavailableError as exc:
                    log.warning("Redis unavailable, retrying in %.1fs: %s", backoff, exc)
                    _rewind(consumer, messages)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.2
                _store(consumer, messages)
                self.applied += applied
                self.consumed += len(messages)
                if on_batch is not None:
                    on_batch(len(messages), applied)
        finally:
            consumer.close()


def _coords(m: KafkaMessage) -> tuple[str, int]:
    return str(m.topic()), int(m.partition() or 0)


def _first_offsets(messages: Sequence[KafkaMessage]) -> list[TopicPartition]:
    first: dict[tuple[str, int], int] = {}
    for m in messages:
        first.setdefault(_coords(m), int(m.offset() or 0))
    return [TopicPartition(t, p, o) for (t, p), o in first.items()]


def _rewind(consumer: Consumer, messages: Sequence[KafkaMessage]) -> None:
    for tp in _first_offsets(messages):
        consumer.seek(tp)


def _store(consumer: Consumer, messages: Sequence[KafkaMessage]) -> None:
    last: dict[tuple[str, int], int] = {}
    for m in messages:
        last[_coords(m)] = int(m.offset() or 0)
    consumer.store_offsets(offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()])


@dataclass(slots=True)
class RebuildProgress:
    """Progress of a rebuild: messages read of the total, and views written."""

    read: int = 0
    total: int = 0
    applied: int = 0


def rebuild_views(
    settings: Settings,
    entities: Sequence[EntityModel],
    catalog: SchemaCatalog,
    cache: GoldenCache,
    on_progress: Callable[[RebuildProgress], None] | None = None,
    *,
    clear: bool = True,
) -> RebuildProgress:
    """Restore every view of ``entities`` from their golden topics (offset 0 to the current end).

    Raises:
        KafkaUnavailableError: Kafka cannot be reached.
        RedisUnavailableError: Redis cannot be reached.
    """
    decoder = _Decoder(settings, entities, catalog)
    conf = consumer_config(
        settings.kafka,
        group_name(settings.namespace, f"rebuild-{int(time.time() * 1000)}"),
        **{"enable.auto.commit": False},
    )
    consumer = Consumer(conf)
    progress = RebuildProgress()
    try:
        assignment: list[TopicPartition] = []
        ends: dict[tuple[str, int], int] = {}
        try:
            meta = consumer.list_topics(timeout=settings.kafka.request_timeout_s)
            for topic in decoder.by_topic:
                if topic not in meta.topics:
                    continue
                for partition in meta.topics[topic].partitions:
                    low, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=settings.kafka.request_timeout_s
                    )
                    if high > low:
                        ends[(topic, partition)] = high
                        progress.total += high - low
                        assignment.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
        except KafkaException as exc:
            raise KafkaUnavailableError(
                f"Kafka at {settings.kafka.bootstrap_servers} is not reachable: {exc}"
            ) from exc
        if clear:
            for entity in entities:
                cache.clear(entity.name)
        for entity in entities:
            cache.mark_filled(entity.name)
        if on_progress is not None:
            on_progress(progress)
        if not assignment:
            return progress
        consumer.assign(assignment)
        idle_deadline = time.monotonic() + 60
        while ends:
            messages = [m for m in consumer.consume(BATCH, timeout=0.5) if m.error() is None]
            if not messages:
                if time.monotonic() > idle_deadline:
                    raise KafkaUnavailableError("no progress reading golden topics for 60s")
                continue
            idle_deadline = time.monotonic() + 60
            for entity_name, views in decoder.group(messages).items():
                progress.applied += cache.apply_golden(entity_name, views)
            progress.read += len(messages)
            for m in messages:
                key = _coords(m)
                if key in ends and int(m.offset() or 0) + 1 >= ends[key]:
                    del ends[key]
            if on_progress is not None:
                on_progress(progress)
        return progress
    finally:
        consumer.close()
