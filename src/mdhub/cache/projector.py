"""Project golden, changes and review topics into the Redis read views, and rebuild them from Kafka.

Golden records go through :meth:`GoldenCache.apply_golden` (a compare-and-set on version), change
events through :meth:`GoldenCache.apply_history` (a version is added once), potential matches and
their decisions through :meth:`GoldenCache.apply_reviews` (a decision is final), so re-delivered
or replayed messages change nothing and a flushed Redis is simply refilled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from mdhub.cache.history import HistoryEntry, history_entry
from mdhub.cache.views import GoldenCache, GoldenView
from mdhub.domain.model import EntityModel
from mdhub.domain.records import GoldenStatus
from mdhub.errors import DecodeError, RedisUnavailableError
from mdhub.kafka.config import consumer_config
from mdhub.kafka.reading import consume_ready, read_to_end, snapshot_ends
from mdhub.naming import Stage, group_name, topic_name
from mdhub.serde.catalog import AvroCodec, SchemaCatalog
from mdhub.serde.generate import fullname
from mdhub.serde.mapping import (
    change_event_from_avro,
    golden_from_avro,
    golden_to_json,
    potential_match_from_avro,
    potential_match_to_json,
)
from mdhub.settings import Settings

__all__ = [
    "REVIEW_SCHEMA",
    "Projector",
    "RebuildProgress",
    "history_entry_of",
    "rebuild_views",
    "review_doc_of",
    "view_of",
]

#: The Avro type of the review topic (one schema for every entity).
REVIEW_SCHEMA = "mdhub.common.PotentialMatch"

log = logging.getLogger("mdhub.projector")

BATCH = 500
MARKER_CHECK_S = 2.0


FETCH_BATCHING = {"fetch.min.bytes": 65_536, "fetch.wait.max.ms": 25}
"""The broker answers a fetch once it has 64 KiB or after 25 ms (so a golden version reaches Redis
at most that much later). Under load that is a few dozen fetches a second instead of one per
produced batch: the projector sent ~525 fetches/s at ~1,300 golden versions/s, 3.5 KB each,
which cost the broker more than the data."""


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


def history_entry_of(codec: AvroCodec, value: bytes) -> HistoryEntry:
    """Turn an encoded change event into the history entry to store."""
    return history_entry(change_event_from_avro(codec.decode(value)))


def review_doc_of(codec: AvroCodec, value: bytes, entity: str) -> dict[str, Any]:
    """Turn an encoded potential match (or its decision) into the review document to store."""
    return potential_match_to_json(entity, potential_match_from_avro(codec.decode(value)))


@dataclass(slots=True)
class _Batch:
    """Decoded messages of one poll, per entity."""

    views: dict[str, list[GoldenView]]
    history: dict[str, list[HistoryEntry]]
    reviews: dict[str, list[dict[str, Any]]]

    def apply(self, cache: GoldenCache) -> tuple[int, int, int]:
        """Write the batch; return (golden views applied, history entries added, reviews applied)."""
        golden = sum(cache.apply_golden(entity, views) for entity, views in self.views.items())
        history = sum(
            cache.apply_history(entity, entries) for entity, entries in self.history.items()
        )
        reviews = sum(cache.apply_reviews(entity, docs) for entity, docs in self.reviews.items())
        return golden, history, reviews


class _Decoder:
    def __init__(
        self, settings: Settings, entities: Sequence[EntityModel], catalog: SchemaCatalog
    ) -> None:
        ns = settings.namespace
        self.golden: dict[str, AvroCodec] = {
            topic_name(ns, e.name, Stage.GOLDEN): catalog.codec(fullname(e.name, "GoldenRecord"))
            for e in entities
        }
        self.changes: dict[str, AvroCodec] = {
            topic_name(ns, e.name, Stage.CHANGES): catalog.codec(fullname(e.name, "ChangeEvent"))
            for e in entities
        }
        review = catalog.codec(REVIEW_SCHEMA)
        self.review: dict[str, AvroCodec] = {
            topic_name(ns, e.name, Stage.REVIEW): review for e in entities
        }
        #: every topic the views are filled from -> its entity
        self.entity_of: dict[str, str] = {}
        for e in entities:
            for stage in (Stage.GOLDEN, Stage.CHANGES, Stage.REVIEW):
                self.entity_of[topic_name(ns, e.name, stage)] = e.name

    def group(self, messages: Sequence[KafkaMessage]) -> _Batch:
        batch = _Batch(defaultdict(list), defaultdict(list), defaultdict(list))
        for msg in messages:
            value = msg.value()
            if value is None:
                continue  # tombstone: the retired version before it already dropped the view
            topic = str(msg.topic())
            entity = self.entity_of[topic]
            try:
                if topic in self.golden:
                    batch.views[entity].append(view_of(self.golden[topic], value))
                elif topic in self.review:
                    batch.reviews[entity].append(review_doc_of(self.review[topic], value, entity))
                else:
                    batch.history[entity].append(history_entry_of(self.changes[topic], value))
            except (DecodeError, ValueError) as exc:
                log.error(
                    "skipping undecodable message %s[%d]@%d: %s",
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    exc,
                )
        return batch


class Projector:
    """Consume golden, changes and review topics in the ``<ns>-projector`` group; write the views.

    When an entity's views are gone from Redis (its fill marker is missing after a flush or an
    empty restart), each projector of the group reads its partitions of the entity's topics again
    from offset 0, and marks them in the fill marker: another projector, or a partition moving to
    another projector, resumes from the committed offsets only when its partition is marked.
    """

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

    def _unfilled(self, partitions: Sequence[TopicPartition]) -> dict[str, _Refill]:
        """Of ``partitions``, those not read from offset 0 since their entity's views were last
        lost, per entity with its current fill epoch (none while Redis is unreachable: a later
        check finds them)."""
        by_entity: dict[str, list[TopicPartition]] = defaultdict(list)
        for tp in partitions:
            entity = self.decoder.entity_of.get(tp.topic)
            if entity is not None:
                by_entity[entity].append(tp)
        unfilled: dict[str, _Refill] = {}
        try:
            for entity, tps in by_entity.items():
                epoch, done = self.cache.fill_state(entity)
                lost = [tp for tp in tps if _field(tp.topic, tp.partition) not in done]
                if lost:
                    unfilled[entity] = _Refill(epoch, lost)
        except RedisUnavailableError:
            return {}
        return unfilled

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        unfilled = self._unfilled(partitions)
        refill = {(tp.topic, tp.partition) for r in unfilled.values() for tp in r.partitions}
        for tp in partitions:
            if (tp.topic, tp.partition) in refill:
                tp.offset = OFFSET_BEGINNING
        consumer.assign(partitions)
        self._mark(consumer, unfilled)

    def _refill_if_lost(self, consumer: Consumer) -> None:
        assigned = consumer.assignment()
        if not assigned:
            # Not in the group yet: _on_assign checks the partitions when they come (marking
            # anything now would make the assignment resume from the committed offsets).
            return
        unfilled = self._unfilled(assigned)
        if not unfilled:
            return
        for refill in unfilled.values():
            for tp in refill.partitions:
                consumer.seek(TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING))
        log.warning(
            "read views of %s are gone; refilling them from offset 0 (%d partition(s) of this "
            "projector)",
            ", ".join(sorted(unfilled)),
            sum(len(r.partitions) for r in unfilled.values()),
        )
        self._mark(consumer, unfilled)

    def _mark(self, consumer: Consumer, unfilled: dict[str, _Refill]) -> None:
        """Move the group's offsets of partitions being refilled to their start, then mark them
        filled in their entity's fill epoch.

        The marks tell every projector of the group (and this one after a restart) that the
        partitions need no refill; committing the start first makes a projector that stops
        before it commits anything further hand them over at their start, not at the offsets
        the group had before the loss.
        """
        if not unfilled:
            return
        starts = [
            TopicPartition(tp.topic, tp.partition, 0)
            for refill in unfilled.values()
            for tp in refill.partitions
        ]
        try:
            consumer.store_offsets(offsets=starts)  # or the auto-commit would move them back
            consumer.commit(offsets=starts, asynchronous=False)
        except KafkaException as exc:
            log.warning(
                "could not commit the start of the partitions being refilled (%s); a later check "
                "marks them",
                exc,
            )
            return
        try:
            for entity, refill in unfilled.items():
                names = [_field(tp.topic, tp.partition) for tp in refill.partitions]
                self.cache.mark_partitions_filled(entity, refill.epoch, names)
        except RedisUnavailableError:
            pass  # unmarked: a later check reads them from offset 0 again, which changes nothing

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current batch."""
        self._stop.set()

    def run(self, on_batch: Callable[[int, int], None] | None = None) -> None:
        """Project until :meth:`stop`; a Redis outage pauses and retries the same batch."""
        consumer = Consumer(
            consumer_config(
                self.settings.kafka,
                group_name(self.settings.namespace, "projector"),
                **FETCH_BATCHING,
            )
        )
        consumer.subscribe(list(self.decoder.entity_of), on_assign=self._on_assign)
        backoff = 0.2
        next_check = time.monotonic() + MARKER_CHECK_S
        try:
            while not self._stop.is_set():
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + MARKER_CHECK_S
                    self._refill_if_lost(consumer)
                messages = [m for m in consume_ready(consumer, BATCH, 0.5) if m.error() is None]
                if not messages:
                    continue
                try:
                    golden, history, reviews = self.decoder.group(messages).apply(self.cache)
                except RedisUnavailableError as exc:
                    log.warning("Redis unavailable, retrying in %.1fs: %s", backoff, exc)
                    _rewind(consumer, messages)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.2
                _store(consumer, messages)
                applied = golden + history + reviews
                self.applied += applied
                self.consumed += len(messages)
                if on_batch is not None:
                    on_batch(len(messages), applied)
        finally:
            consumer.close()


@dataclass(frozen=True, slots=True)
class _Refill:
    """Partitions of one entity to read from offset 0, and the fill epoch they are marked in."""

    epoch: str
    partitions: list[TopicPartition]


def _field(topic: str, partition: int) -> str:
    """A partition's field in the fill marker."""
    return f"{topic}:{partition}"


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
    """Progress of a rebuild: messages read of the total (golden, changes and review topics).

    Attributes:
        read: messages read so far.
        total: messages to read (from the low to the high watermark of every partition).
        applied: golden views written.
        history: history entries written.
        reviews: potential matches and decisions written to the review views.
    """

    read: int = 0
    total: int = 0
    applied: int = 0
    history: int = 0
    reviews: int = 0


def rebuild_views(
    settings: Settings,
    entities: Sequence[EntityModel],
    catalog: SchemaCatalog,
    cache: GoldenCache,
    on_progress: Callable[[RebuildProgress], None] | None = None,
    *,
    clear: bool = True,
) -> RebuildProgress:
    """Restore every view of ``entities`` from their golden, changes and review topics.

    Each partition is read from its start to the end it had when the rebuild began.

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
        if clear:
            # before the snapshot: what a running projector applied before the clear lies before
            # the ends read next, so the rebuild writes it again
            for entity in entities:
                cache.clear(entity.name)
        snapshot = snapshot_ends(consumer, decoder.entity_of, settings.kafka.request_timeout_s)
        progress.total = snapshot.total
        if on_progress is not None:
            on_progress(progress)

        def apply(messages: Sequence[KafkaMessage]) -> None:
            golden, history, reviews = decoder.group(messages).apply(cache)
            progress.applied += golden
            progress.history += history
            progress.reviews += reviews
            progress.read += len(messages)
            if on_progress is not None:
                on_progress(progress)

        read_to_end(consumer, snapshot, apply)
        # Marked once read: a running projector refills its partitions meanwhile (the views
        # converge either way), and a rebuild cut short leaves them to the next projector.
        for entity in entities:
            epoch, _ = cache.fill_state(entity.name)
            read = [_field(t, p) for t, p in snapshot.ends if decoder.entity_of[t] == entity.name]
            cache.mark_partitions_filled(entity.name, epoch, read)
        return progress
    finally:
        consumer.close()
