"""The faust application of the stream worker: one agent per entity type.

The agent reads the entity's resolve topic, where the router forwards the inputs in bundles of up
to 250 (:mod:`mdhub.stream.bundle`); a batch is the inputs of a few bundles.

Processing guarantee: at-least-once delivery made effectively-once by the state. For each batch
the agent (1) computes every output and state change with :class:`EntityPipeline`, (2) sends the
outputs (golden, changes, rejected) with an idempotent ``acks=all`` producer and waits until Kafka
has them, (3) sends the new state, including a per-partition :class:`Ledger` of outcomes, to the
state topic (the table's changelog) between a begin and a commit marker and waits again, and only
then (4) writes it to the local RocksDB store, after which faust may commit the source offsets. A
crash before (3) completes replays the batch against the old state (a restore leaves out a batch
without its commit: :mod:`mdhub.stream.statelog`): the pure merge computes the same outputs
again, and the re-sent messages are byte-identical to the first ones (same versions), which
readers ignore. A crash after (3) redelivers messages whose offsets the ledger already covers:
they are skipped.
The ledger's offsets are right only if the agent gets every resolve-topic message once and in
order; :mod:`mdhub.stream.continuity` checks each batch for that, and stops the worker before it
processes past a message faust dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import faust
from confluent_kafka import KafkaException
from faust.types import TP, EventT, StreamT
from rocksdict import WriteBatch

from mdhub.domain.ledger import Ledger, commands_ledger_key, ledger_key
from mdhub.domain.model import EntityModel, HubModel
from mdhub.domain.records import Reason
from mdhub.domain.standardize import PHONES
from mdhub.errors import DecodeError, PublishError
from mdhub.kafka.config import FLUSHED_LINGER_MS
from mdhub.kafka.producer import HubProducer
from mdhub.naming import Stage, group_name, topic_name
from mdhub.serde.catalog import SchemaCatalog
from mdhub.settings import Settings
from mdhub.stream.ahead import ParseAhead, ahead_entities
from mdhub.stream.bundle import H_BUNDLE, MAX_INPUTS, BundleCodec
from mdhub.stream.consumer import short_fetch_waits
from mdhub.stream.continuity import StreamContinuity, StreamGap
from mdhub.stream.exits import (
    EXIT_BATCH_FAILED,
    EXIT_OUTPUT_FAILED,
    EXIT_STALLED,
    EXIT_STREAM_GAP,
)
from mdhub.stream.flow import keep_queues_while_flowing
from mdhub.stream.identity import SUMMARY_PREFIX, IdentityIndex
from mdhub.stream.metrics import WorkerMetrics, serve_metrics
from mdhub.stream.pipeline import EntityPipeline, Message, Outcome, Output
from mdhub.stream.router import H_KEY_NONE, H_OFFSET, H_PARTITION, H_TIMESTAMP, H_TOPIC, Router
from mdhub.stream.stall import LagProbe, StallWatch
from mdhub.stream.statelog import BEGIN_KEY, COMMIT_KEY
from mdhub.stream.store import SCHEME as STORE_SCHEME

__all__ = ["create_app"]

log = logging.getLogger("mdhub.worker")

DELIVERY_TIMEOUT_S = 300.0


def _header_map(headers: Any) -> dict[str, bytes]:
    if not headers:
        return {}
    items = headers.items() if isinstance(headers, dict) else headers
    return {str(k): v for k, v in items}


def _bundle_inputs(batch_size: int) -> int:
    """Inputs per bundle: the router's maximum, or the batch size when that is smaller."""
    return max(1, min(MAX_INPUTS, batch_size))


def _bundles_per_batch(batch_size: int) -> int:
    """Resolve-topic messages a batch takes: at most ``batch_size`` inputs in full bundles."""
    return max(1, batch_size // _bundle_inputs(batch_size))


def _inputs(event: EventT[Any], bundles: BundleCodec) -> list[Message]:
    """The inputs a resolve-topic event carries: a bundle's, or the one of a single message."""
    msg = event.message
    headers = _header_map(msg.headers)
    if H_BUNDLE in headers:
        return bundles.decode(msg.value)
    return [_message(msg, headers)]


def _message(msg: Any, headers: dict[str, bytes]) -> Message:
    """The input of a resolve-topic message in single form, with its source coordinates (router
    headers; a message without them is taken as it is)."""
    topic = headers.get(H_TOPIC)
    if topic is None:  # not forwarded by the router: take the event as it is
        timestamp = int(msg.timestamp * 1000) if msg.timestamp else None
        return Message(msg.topic, msg.partition, msg.offset, timestamp, msg.key, msg.value)
    key = None if H_KEY_NONE in headers else msg.key
    return Message(
        topic.decode(),
        int(headers[H_PARTITION]),
        int(headers[H_OFFSET]),
        int(headers[H_TIMESTAMP]),
        key,
        msg.value,
    )


def _ledger_key(pipeline: EntityPipeline, message: Message) -> bytes:
    if message.topic == pipeline.commands_topic:
        return commands_ledger_key(message.partition)
    return ledger_key(message.partition)


class _EntityAgent:
    """Feeds one entity's resolve stream (inputs in the router's order) through its pipeline."""

    def __init__(
        self,
        pipeline: EntityPipeline,
        table: Any,
        producer: HubProducer,
        settings: Settings,
        metrics: WorkerMetrics,
        bundles: BundleCodec,
        probe: LagProbe,
        ahead: ParseAhead | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.ahead = ahead  # prepares the batch's inputs in a helper process (mdhub.stream.ahead)
        self.bundles = bundles
        entity = pipeline.entity.name
        self.m_consumed = metrics.consumed.labels(entity)
        self.m_outcomes = {o.value: metrics.outcomes.labels(entity, o.value) for o in Outcome}
        self.m_rejected = metrics.rejected.labels
        self.m_replayed = metrics.replayed.labels(entity)
        self.m_batch = metrics.batch_seconds.labels(entity)
        self.m_e2e = metrics.end_to_end_seconds.labels(entity)
        self.m_outputs = metrics.outputs.labels
        self.m_comparisons = metrics.comparisons.labels(entity)
        self.m_capped = metrics.capped_blocks.labels(entity)
        self.m_indexed = metrics.identity_records.labels(entity)
        self.m_largest = metrics.largest_block.labels(entity)
        self.stage_of = {
            pipeline.golden_topic: "golden",
            pipeline.changes_topic: "changes",
            pipeline.rejected_topic: "rejected",
            pipeline.review_topic: "review",
        }
        self.table = table
        self.producer = producer
        self.batch_size = _bundles_per_batch(settings.worker.batch_size)
        self.window = settings.worker.batch_window_s
        self.indexes: dict[int, IdentityIndex] = {}
        self.capped_logged: set[str] = set()
        self.stall = StallWatch(settings.worker.stall_timeout_s)
        self.probe = probe
        self.resolve_topic = topic_name(settings.namespace, pipeline.entity.name, Stage.RESOLVE)
        self.continuity = StreamContinuity()

    async def run(self, stream: StreamT[Any]) -> AsyncIterator[None]:
        async for events in stream.take_events(  # type: ignore[attr-defined]
            self.batch_size, within=self.window
        ):
            self.stall.batch_started(time.monotonic())
            # faust acknowledges a batch's inputs however its processing ends (take_events acks
            # them in a ``finally``) and then commits their offsets: a batch must not end half
            # done. A worker told to stop lets the batch finish; a batch that fails stops it hard.
            batch = asyncio.ensure_future(self._batch(events))
            stopping = False
            while not batch.done():
                try:
                    await asyncio.shield(batch)
                except asyncio.CancelledError:
                    stopping = True
                except Exception:  # the batch failed: reported below, from the task
                    break
            if batch.cancelled() or batch.exception() is not None:
                log.critical(
                    "%s: a batch failed; exiting before faust acknowledges its inputs (a restart "
                    "replays it)",
                    self.pipeline.entity.name,
                    exc_info=None if batch.cancelled() else batch.exception(),
                )
                logging.shutdown()
                os._exit(EXIT_BATCH_FAILED)
            if stopping:
                raise asyncio.CancelledError
            yield None

    def index_for(self, partition: int) -> IdentityIndex:
        """The identity index of a shard partition, built from the store on first use."""
        index = self.indexes.get(partition)
        if index is None:
            started = time.monotonic()
            store = self.table.data
            db = store._db_for_partition(partition)  # the partition's RocksDB (rocksdict)
            index = IdentityIndex.load(
                (k, v)
                for k, v in db.items(from_key=SUMMARY_PREFIX)
                if isinstance(k, bytes) and k.startswith(SUMMARY_PREFIX)
            )
            self.indexes[partition] = index
            log.warning(
                "%s: identity index of partition %d: %d source records in %.1f s",
                self.pipeline.entity.name,
                partition,
                len(index),
                time.monotonic() - started,
            )
        return index

    def forget(self, partitions: set[int]) -> None:
        """Drop the indexes (and decoded states) of partitions this worker no longer owns."""
        for partition in partitions:
            self.indexes.pop(partition, None)
        self.continuity.forget(partitions)
        if partitions:
            self.pipeline.decoded.clear()

    async def _continuous(self, events: list[EventT[Any]]) -> list[EventT[Any]]:
        """The batch without re-delivered messages; exits when messages went missing (see
        :mod:`mdhub.stream.continuity`), before anything of the batch is processed or acked."""
        fresh = self.continuity.unknown(e.message.partition for e in events)
        if fresh:
            try:
                starts = await asyncio.to_thread(self.probe.starts, self.resolve_topic, fresh)
            except KafkaException as exc:
                # the stream just delivered from this Kafka: take its first message as the start
                log.warning(
                    "%s: could not read the committed offsets of partitions %s (%s); the first "
                    "message delivered is taken as the start",
                    self.pipeline.entity.name,
                    sorted(fresh),
                    exc,
                )
            else:
                self.continuity.start(starts)
        try:
            admitted = self.continuity.admit(
                [(e.message.partition, e.message.offset) for e in events]
            )
        except StreamGap as gap:
            log.critical(
                "%s: the stream skipped messages of %s: %s. Exiting before processing any of this "
                "batch, so that a restart resumes from the committed offset, before the missing "
                "messages",
                self.pipeline.entity.name,
                self.resolve_topic,
                gap,
            )
            logging.shutdown()
            os._exit(EXIT_STREAM_GAP)
        if len(admitted) < len(events):
            log.info(
                "%s: %d message(s) delivered again were left out",
                self.pipeline.entity.name,
                len(events) - len(admitted),
            )
            return [events[i] for i in admitted]
        return events

    async def _batch(self, events: list[EventT[Any]]) -> None:
        started = time.monotonic()
        events = await self._continuous(events)
        if not events:
            return
        overlay: dict[bytes, bytes | None] = {}
        pending: list[tuple[EventT[Any], bytes, bytes | None]] = []

        # The store is read and written directly in the shard partition's RocksDB (keys and values
        # are raw bytes): faust's table wrapper routes every access through the current event,
        # key and value serializers and a membership test, which costs more than the read itself.
        store = self.table.data
        db: Any = None

        def load(key: bytes) -> bytes | None:
            if key in overlay:
                return overlay[key]
            value = db.get(key)
            return value if isinstance(value, bytes) else None

        for partition in {e.message.partition for e in events} - self.indexes.keys():
            await self._settle(partition)  # first batch of the partition since its assignment
        ledgers: dict[bytes, tuple[EventT[Any], Ledger]] = {}
        pipeline = self.pipeline
        consumed = 0
        comparisons = 0
        outputs = dict.fromkeys(self.stage_of, 0)  # counted per batch, not per message
        published: list[int] = []  # the inputs' timestamps on their own topics (ms)
        unbundled: list[tuple[EventT[Any], list[Message] | DecodeError]] = []
        for event in events:
            try:
                unbundled.append((event, _inputs(event, self.bundles)))
            except DecodeError as exc:
                unbundled.append((event, exc))
        ahead = self.ahead
        if ahead is not None:
            source_topic = pipeline.source_topic
            ahead.submit(
                pipeline.entity.name,
                [
                    m.value
                    for _, inputs in unbundled
                    if not isinstance(inputs, DecodeError)
                    for m in inputs
                    if m.topic == source_topic and m.value is not None
                ],
            )
        taken = 0
        for event, inputs in unbundled:
            partition = event.message.partition  # the shard: its RocksDB and identity index
            db = store._db_for_partition(partition)
            index = self.index_for(partition)
            if isinstance(inputs, DecodeError):
                for out in self._bad_bundle(event, inputs):
                    self.producer.produce(out.topic, out.key, out.value)
                    outputs[out.topic] += 1
                continue
            for message in inputs:
                taken += 1
                if ahead is not None and not taken & 3:
                    ahead.collect()  # the helper's answers so far (phone numbers, match keys)
                if message.timestamp_ms:
                    published.append(message.timestamp_ms)
                lkey = _ledger_key(pipeline, message)
                if lkey not in ledgers:
                    ledgers[lkey] = (event, Ledger.from_bytes(load(lkey)))
                if message.offset <= ledgers[lkey][1].last_offset:
                    # Redelivered (a restarted router or worker): its outcome is in the ledger,
                    # and the ledger is written only after the outputs were in Kafka. Processing
                    # it again against newer state could give it a second, different outcome.
                    self.m_replayed.inc()
                    continue
                if message.topic == pipeline.commands_topic:
                    result = pipeline.process_command(message, load, index)
                else:
                    keys = ahead.keys_for(message.value) if ahead is not None else None
                    result = pipeline.process(message, load, index, keys)
                    consumed += 1
                ledger = ledgers[lkey][1].record(message.offset, result.outcome.value)
                ledgers[lkey] = (event, ledger)
                self.m_outcomes[result.outcome.value].inc()
                comparisons += result.comparisons
                for block in result.capped:
                    self.m_capped.inc()
                    if block not in self.capped_logged and len(self.capped_logged) < 1000:
                        self.capped_logged.add(block)
                        log.warning(
                            "%s: block %r is larger than max_block_size; only its newest records "
                            "are compared (reported once per block)",
                            pipeline.entity.name,
                            block,
                        )
                for reason in result.reasons:
                    self.m_rejected(pipeline.entity.name, reason.code).inc()
                for out in result.outputs:
                    self.producer.produce(out.topic, out.key, out.value)
                    outputs[out.topic] += 1
                for key, value in result.writes:
                    overlay[key] = value
                    pending.append((event, key, value))
                if not consumed & 63:
                    self.producer.poll(0)
        if ahead is not None:
            ahead.end_batch()
        for lkey, (event, ledger) in ledgers.items():
            pending.append((event, lkey, ledger.to_bytes()))
        self.m_consumed.inc(consumed)
        self.m_comparisons.inc(comparisons)
        for topic, count in outputs.items():
            if count:
                self.m_outputs(pipeline.entity.name, self.stage_of[topic]).inc(count)
        await self._deliver()
        now_ms = time.time() * 1000
        for ms in published:
            self.m_e2e.observe(max(0.0, now_ms - ms) / 1000)
        # The state goes to its changelog topic only once the outputs are in Kafka, and into the
        # local store only once its changelog records are: a crash in between replays the batch.
        records: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for event, key, value in pending:
            records.setdefault(event.message.partition, []).append((key, value))
        await self._write_state(records)
        self.m_outputs(pipeline.entity.name, "state").inc(len(pending))
        self.m_batch.observe(time.monotonic() - started)
        self.m_indexed.set(sum(len(index) for index in self.indexes.values()))
        self.m_largest.set(max((i.largest_block for i in self.indexes.values()), default=0))

    async def _write_state(self, records: dict[int, list[tuple[bytes, bytes | None]]]) -> None:
        """Send ``records`` (per shard partition, in order) to the state topic, one batch per
        partition between a BEGIN and a COMMIT marker (:mod:`mdhub.stream.statelog`); wait until
        Kafka has them, then write them to the local store and note the topic's offset there."""
        store = self.table.data
        topic = self.pipeline.state_topic
        changelog: dict[int, int] = {}

        def delivered(partition: int, offset: int) -> None:
            changelog[partition] = max(offset, changelog.get(partition, -1))

        for partition, items in records.items():
            count = str(len(items)).encode()
            self.producer.produce(topic, BEGIN_KEY, count, partition, delivered)
            for key, value in items:
                self.producer.produce(topic, key, value, partition, delivered)
            self.producer.produce(topic, COMMIT_KEY, count, partition, delivered)
        await self._deliver()
        for partition, items in records.items():
            batch = WriteBatch(raw_mode=True)
            for key, value in items:
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            store._db_for_partition(partition).write(batch)
        for partition, offset in changelog.items():
            store.set_persisted_offset(TP(topic, partition), offset)

    async def _settle(self, partition: int) -> None:
        """Undo in the state topic a batch that a stopped worker did not finish writing there.

        The store's restore held its records back (no COMMIT), so the store has the state from
        before that batch, and the ledgers say its inputs are still to do. Their keys' values in
        the store are written to the topic again, as a committed batch, before the batch is
        replayed: the topic then says what the store holds, for any later restore.
        """
        store = self.table.data
        keys = store.batches.uncommitted(partition)
        if keys:
            db = store._db_for_partition(partition)
            values = [(k, v if isinstance(v := db.get(k), bytes) else None) for k in keys]
            await self._write_state({partition: values})
            log.warning(
                "%s: partition %d: %d state record(s) of a batch that was not finished (the "
                "worker stopped while writing it) are undone in %s; its inputs are processed again",
                self.pipeline.entity.name,
                partition,
                len(keys),
                self.pipeline.state_topic,
            )
        store.batches.discard(partition)  # written again, committed: nothing is held any more

    def _bad_bundle(self, event: EventT[Any], exc: DecodeError) -> list[Output]:
        """A resolve-topic message marked as a bundle that does not decode (a bug, or a foreign
        producer on the internal topic): its bytes go to the rejected topic (stage ``route``,
        coordinates on the resolve topic) instead of stopping the worker on it for good. Its
        inputs are then missing from their partitions' ledgers, which ``mdhub reconcile`` shows."""
        msg = event.message
        coords = _message(msg, {})  # no router headers: its own coordinates on the resolve topic
        reason = Reason(exc.code, f"a bundle of inputs that does not decode: {exc}")
        log.error(
            "%s: rejecting %s[%d]@%d, a bundle that does not decode: %s",
            self.pipeline.entity.name,
            msg.topic,
            msg.partition,
            msg.offset,
            exc,
        )
        self.m_rejected(self.pipeline.entity.name, exc.code).inc()
        return self.pipeline.reject(coords, (reason,), "route").outputs

    async def _deliver(self) -> None:
        try:
            await asyncio.to_thread(self.producer.deliver_all, DELIVERY_TIMEOUT_S)
        except PublishError as exc:
            # The batch's offsets must not be committed: stop hard, a restart replays the batch.
            log.critical("outputs of a batch could not be delivered, exiting: %s", exc)
            logging.shutdown()
            os._exit(EXIT_OUTPUT_FAILED)


def create_app(settings: Settings, model: HubModel, catalog: SchemaCatalog) -> faust.App:
    """Build the worker's faust app: an agent and a RocksDB state table per entity type."""
    kafka = settings.kafka
    settings.worker.data_dir.mkdir(parents=True, exist_ok=True)  # faust creates one level only
    app = faust.App(
        group_name(settings.namespace, "worker"),
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
        store=f"{STORE_SCHEME}://",  # faust's RocksDB store, restoring batch by batch
        datadir=str(settings.worker.data_dir),
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_allow_declare=True,
        broker_max_poll_records=settings.worker.max_poll_records,
        # resolve-topic messages (bundles of up to 250 inputs) waiting for the agent: four batches
        stream_buffer_maxsize=max(4 * _bundles_per_batch(settings.worker.batch_size), 16),
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        table_standby_replicas=0,
        producer_acks=-1,
        web_enabled=False,
        autodiscover=False,
        broker_commit_every=10_000,
        # a worker killed with -9 never leaves the group: its partitions wait this long
        broker_session_timeout=15.0,
        broker_heartbeat_interval=3.0,
        broker_commit_interval=settings.worker.commit_interval_s,
    )
    short_fetch_waits(app)  # a partition paused under buffer pressure resumes within 0.1 s
    keep_queues_while_flowing(app)  # no messages lost when table recovery completes
    producer = HubProducer(kafka, **{"linger.ms": FLUSHED_LINGER_MS})  # flushed every batch
    ahead = (
        ParseAhead(model, catalog, settings.schemas_dir)
        if settings.worker.parse_ahead and ahead_entities(model.entities.values())
        else None
    )
    if ahead is not None:
        ahead.start()  # ready before the first batch: it boots while faust starts
    metrics = WorkerMetrics.create()
    bundles = BundleCodec(catalog)
    probe = LagProbe(kafka, group_name(settings.namespace, "worker"))
    runners: dict[str, _EntityAgent] = {}
    routers: dict[str, Router] = {}
    for entity in model.entities.values():
        runners[entity.name] = _add_entity(
            app, settings, entity, catalog, producer, metrics, bundles, probe, ahead
        )
        routers[entity.name] = Router(
            kafka,
            group_name(settings.namespace, f"router-{entity.name}"),
            [
                topic_name(settings.namespace, entity.name, Stage.SOURCE),
                topic_name(settings.namespace, entity.name, Stage.COMMANDS),
            ],
            topic_name(settings.namespace, entity.name, Stage.RESOLVE),
            margin_ms=settings.worker.router_margin_ms,
            bundles=bundles,
            bundle_inputs=_bundle_inputs(settings.worker.batch_size),
        )
    resolve_topics = {topic_name(settings.namespace, e, Stage.RESOLVE): e for e in model.entities}
    owned: set[TP] = set()  # this worker's resolve partitions

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def _assigned(app: faust.App, assigned: set[TP], **kwargs: Any) -> None:
        mine = {tp for tp in assigned if tp.topic in resolve_topics}
        metrics.assigned.set(len(mine))
        owned.clear()
        owned.update(mine)
        for tp in mine:
            router = routers[resolve_topics[tp.topic]]
            # the worker that owns a resolve topic's partition 0 runs that entity's router
            if tp.partition == 0 and not router.running:
                router.start()
                log.warning("router for %s started", tp.topic)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(app: faust.App, revoked: set[TP], **kwargs: Any) -> None:
        metrics.assigned.set(0)
        owned.difference_update(revoked)
        for tp in revoked:
            if tp.topic not in resolve_topics:
                continue
            entity = resolve_topics[tp.topic]
            runners[entity].forget({tp.partition})
            router = routers[entity]
            if tp.partition == 0 and router.running:
                await asyncio.to_thread(router.stop)
                log.warning("router for %s stopped (partition moved)", tp.topic)

    counted: dict[tuple[str, str], int] = {}  # the totals below, as last counted

    @app.timer(1.0)  # type: ignore[untyped-decorator]
    async def _count_work() -> None:
        for what, counter, where, total in (
            ("phones", metrics.phone_numbers, "main", PHONES.parsed),
            ("phones", metrics.phone_numbers, "ahead", ahead.answers if ahead else 0),
            (
                "keys",
                metrics.match_keys,
                "main",
                sum(r.pipeline.resolver.computed for r in runners.values()),
            ),
            ("keys", metrics.match_keys, "ahead", ahead.keys_used if ahead else 0),
        ):
            counter.labels(where).inc(total - counted.get((what, where), 0))
            counted[what, where] = total

    @app.timer(1.0)  # type: ignore[untyped-decorator]
    async def _watch_routers() -> None:
        for entity, router in routers.items():
            metrics.forwarded.labels(entity).set(router.forwarded)
            if router.error is not None:
                # offsets of what it did not forward are not committed: a restart resumes there
                log.critical("the %s router failed (%s); exiting", entity, router.error)
                logging.shutdown()
                os._exit(EXIT_OUTPUT_FAILED)

    if settings.worker.stall_timeout_s > 0:

        @app.timer(min(10.0, settings.worker.stall_timeout_s / 3))  # type: ignore[untyped-decorator]
        async def _watch_stall() -> None:
            busy = bool(app.rebalancing or getattr(app, "in_recovery", False))
            for entity, runner in runners.items():
                topic = topic_name(settings.namespace, entity, Stage.RESOLVE)
                mine = [(tp.topic, tp.partition) for tp in owned if tp.topic == topic]
                lag = None if busy else await asyncio.to_thread(probe.lag, mine)
                if runner.stall.check(lag, time.monotonic()):
                    log.critical(
                        "%s: %d message(s) (bundles of inputs) wait on %s and the stream took "
                        "none for %.0f s (a stalled consumer); exiting so that a restart resumes "
                        "from the committed offsets",
                        entity,
                        lag or 0,
                        topic,
                        settings.worker.stall_timeout_s,
                    )
                    logging.shutdown()
                    os._exit(EXIT_STALLED)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def _stop_routers(app: faust.App, **kwargs: Any) -> None:
        for router in routers.values():
            await asyncio.to_thread(router.stop)
        await asyncio.to_thread(probe.close)
        if ahead is not None:
            await asyncio.to_thread(ahead.close)

    port = serve_metrics(metrics, settings.worker.metrics_port)
    if port is not None:
        log.warning("worker metrics on http://0.0.0.0:%d/metrics", port)
    return app


def _add_entity(
    app: faust.App,
    settings: Settings,
    entity: EntityModel,
    catalog: SchemaCatalog,
    producer: HubProducer,
    metrics: WorkerMetrics,
    bundles: BundleCodec,
    probe: LagProbe,
    ahead: ParseAhead | None,
) -> _EntityAgent:
    pipeline = EntityPipeline(
        entity, catalog, settings.namespace, max_payload_bytes=settings.worker.max_payload_bytes
    )
    partitions = settings.kafka.partitions
    resolve = app.topic(
        topic_name(settings.namespace, entity.name, Stage.RESOLVE),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )
    changelog = app.topic(
        pipeline.state_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        compacting=True,
    )
    table = app.Table(
        f"{entity.name}-state",
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        changelog_topic=changelog,
    )
    runner = _EntityAgent(pipeline, table, producer, settings, metrics, bundles, probe, ahead)
    app.agent(resolve, name=f"mdhub.{entity.name}.resolve", concurrency=1)(runner.run)
    return runner
