"""The faust application of the stream worker: one agent per entity type.

Processing guarantee: at-least-once delivery made effectively-once by the state. For each batch
the agent (1) computes every output and state change with :class:`EntityPipeline`, (2) sends the
outputs (golden, changes, rejected) with an idempotent ``acks=all`` producer and waits until Kafka
has them, (3) sends the new state, including a per-partition :class:`Ledger` of outcomes, to the
state topic (the table's changelog) and waits again, and only then (4) writes it to the local
RocksDB store, after which faust may commit the source offsets. A crash before (3) completes
replays the batch against the old state: the pure merge computes the same outputs again, and the
re-sent messages are byte-identical to the first ones (same versions), which readers ignore. A
crash after (3) redelivers messages whose offsets the ledger already covers: they are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import TP, EventT, StreamT

from mdhub.domain.ledger import Ledger, ledger_key
from mdhub.domain.model import EntityModel, HubModel
from mdhub.errors import PublishError
from mdhub.kafka.producer import HubProducer
from mdhub.naming import Stage, group_name, topic_name
from mdhub.serde.catalog import SchemaCatalog
from mdhub.settings import Settings
from mdhub.stream.metrics import WorkerMetrics, serve_metrics
from mdhub.stream.pipeline import EntityPipeline, Message, Outcome

__all__ = ["create_app"]

log = logging.getLogger("mdhub.worker")

DELIVERY_TIMEOUT_S = 300.0
EXIT_OUTPUT_FAILED = 70


def _route_to(event: EventT[Any]) -> None:
    """Make ``event`` current for the table store, which routes by the event's partition.

    Only faust's context variable is set: the stream's own ``current_event`` attribute belongs to
    ``take_events``, which reads it to pair each buffered value with its event.
    """
    _current_event.set(weakref.ref(event))


def _message(event: EventT[Any]) -> Message:
    msg = event.message
    timestamp = int(msg.timestamp * 1000) if msg.timestamp else None
    return Message(msg.topic, msg.partition, msg.offset, timestamp, msg.key, msg.value)


class _EntityAgent:
    """Feeds one entity's source stream through its pipeline in batches."""

    def __init__(
        self,
        pipeline: EntityPipeline,
        table: Any,
        producer: HubProducer,
        settings: Settings,
        metrics: WorkerMetrics,
    ) -> None:
        self.pipeline = pipeline
        entity = pipeline.entity.name
        self.m_consumed = metrics.consumed.labels(entity)
        self.m_outcomes = {o.value: metrics.outcomes.labels(entity, o.value) for o in Outcome}
        self.m_rejected = metrics.rejected.labels
        self.m_replayed = metrics.replayed.labels(entity)
        self.m_batch = metrics.batch_seconds.labels(entity)
        self.m_e2e = metrics.end_to_end_seconds.labels(entity)
        self.m_outputs = metrics.outputs.labels
        self.stage_of = {
            pipeline.golden_topic: "golden",
            pipeline.changes_topic: "changes",
            pipeline.rejected_topic: "rejected",
        }
        self.table = table
        self.producer = producer
        self.batch_size = settings.worker.batch_size
        self.window = settings.worker.batch_window_s
        # the source and command agents share the state: one batch at a time
        self.lock = asyncio.Lock()

    async def run(self, stream: StreamT[Any]) -> AsyncIterator[None]:
        async for events in stream.take_events(  # type: ignore[attr-defined]
            self.batch_size, within=self.window
        ):
            async with self.lock:
                await self._batch(events)
            yield None

    async def run_commands(self, stream: StreamT[Any]) -> AsyncIterator[None]:
        """Steward commands: same state, same partitions (keyed by the record's creating source)."""
        async for events in stream.take_events(  # type: ignore[attr-defined]
            100, within=self.window
        ):
            async with self.lock:
                await self._batch(events, commands=True)
            yield None

    async def _batch(self, events: list[EventT[Any]], commands: bool = False) -> None:
        started = time.monotonic()
        overlay: dict[bytes, bytes | None] = {}
        pending: list[tuple[EventT[Any], bytes, bytes | None]] = []

        def load(key: bytes) -> bytes | None:
            if key in overlay:
                return overlay[key]
            value = self.table.get(key)
            return value if isinstance(value, bytes) else None

        ledgers: dict[int, tuple[EventT[Any], Ledger]] = {}
        for event in events:
            # Table reads and writes are routed by the current event's partition.
            _route_to(event)
            if commands:  # steward commands: no ledger, they are not source messages
                result = self.pipeline.process_command(_message(event), load)
            else:
                partition = event.message.partition
                if partition not in ledgers:
                    ledgers[partition] = (event, Ledger.from_bytes(load(ledger_key(partition))))
                if event.message.offset <= ledgers[partition][1].last_offset:
                    # Redelivered after a restart: its outcome is in the ledger, and the ledger is
                    # written only after the outputs were in Kafka. Processing it again against
                    # newer state could give it a second, different outcome (e.g. stale).
                    self.m_replayed.inc()
                    continue
                result = self.pipeline.process(_message(event), load)
                ledger = ledgers[partition][1].record(event.message.offset, result.outcome.value)
                ledgers[partition] = (event, ledger)
            self.m_outcomes[result.outcome.value].inc()
            for reason in result.reasons:
                self.m_rejected(self.pipeline.entity.name, reason.code).inc()
            for out in result.outputs:
                self.producer.produce(out.topic, out.key, out.value)
                self.m_outputs(self.pipeline.entity.name, self.stage_of[out.topic]).inc()
            if result.state_key is not None:
                overlay[result.state_key] = result.state_value
                pending.append((event, result.state_key, result.state_value))
            self.producer.poll(0)
        for partition, (event, ledger) in ledgers.items():
            pending.append((event, ledger_key(partition), ledger.to_bytes()))
        if not commands:
            self.m_consumed.inc(len(events))
        await self._deliver()
        now = time.time()
        for event in events:
            if event.message.timestamp:
                self.m_e2e.observe(max(0.0, now - event.message.timestamp))
        # The state goes to its changelog topic only once the outputs are in Kafka, and into the
        # local store only once its changelog records are: a crash in between replays the batch.
        changelog: dict[int, int] = {}

        def delivered(partition: int, offset: int) -> None:
            changelog[partition] = max(offset, changelog.get(partition, -1))

        for event, key, value in pending:
            self.producer.produce(
                self.pipeline.state_topic, key, value, event.message.partition, delivered
            )
        await self._deliver()
        store = self.table.data
        for event, key, value in pending:
            _route_to(event)
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value
        for partition, offset in changelog.items():
            store.set_persisted_offset(TP(self.pipeline.state_topic, partition), offset)
        self.m_outputs(self.pipeline.entity.name, "state").inc(len(pending))
        self.m_batch.observe(time.monotonic() - started)

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
        store="rocksdb://",
        datadir=str(settings.worker.data_dir),
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_allow_declare=True,
        broker_max_poll_records=settings.worker.max_poll_records,
        stream_buffer_maxsize=max(4 * settings.worker.batch_size, 4096),
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
        broker_commit_interval=1.0,
    )
    producer = HubProducer(kafka)
    metrics = WorkerMetrics.create()
    for entity in model.entities.values():
        _add_entity(app, settings, entity, catalog, producer, metrics)
    source_topics = {topic_name(settings.namespace, e, Stage.SOURCE) for e in model.entities}

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def _assigned(app: faust.App, assigned: set[TP], **kwargs: Any) -> None:
        metrics.assigned.set(sum(1 for tp in assigned if tp.topic in source_topics))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(app: faust.App, revoked: set[TP], **kwargs: Any) -> None:
        metrics.assigned.set(0)

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
) -> None:
    pipeline = EntityPipeline(
        entity, catalog, settings.namespace, max_payload_bytes=settings.worker.max_payload_bytes
    )
    partitions = settings.kafka.partitions
    source = app.topic(
        pipeline.source_topic,
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
    runner = _EntityAgent(pipeline, table, producer, settings, metrics)
    app.agent(source, name=f"mdhub.{entity.name}.merge", concurrency=1)(runner.run)
    commands = app.topic(
        pipeline.commands_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )
    app.agent(commands, name=f"mdhub.{entity.name}.steward", concurrency=1)(runner.run_commands)
