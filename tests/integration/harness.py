"""Run the hub's processes (worker, projector, API) for a test, the way a user starts them."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from mdhub.domain.records import CandidateChange, Op
from mdhub.errors import DecodeError
from mdhub.kafka.admin import ensure_topics
from mdhub.kafka.lag import group_lag
from mdhub.kafka.producer import HubProducer
from mdhub.kafka.reading import read_to_end, snapshot_ends
from mdhub.modelfile import load_model
from mdhub.naming import Stage, topic_name
from mdhub.serde.catalog import SchemaCatalog
from mdhub.serde.mapping import change_to_avro
from mdhub.settings import Settings
from mdhub.stream.bundle import InputCounter
from mdhub.stream.pipeline import EntityPipeline, Message
from mdhub.stream.replay import LocalResolveStage, router_order
from mdhub.topology import topic_specs

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Hub:
    """A namespace of its own on the session's servers, with its own hub processes."""

    def __init__(
        self,
        kafka_bootstrap: str,
        redis_url: str,
        workdir: Path,
        api_port: int,
        partitions: int = 2,
    ):
        self.namespace = "t" + uuid.uuid4().hex[:10]
        self.workdir = workdir
        self.api_port = api_port
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MDHUB_")},
            "MDHUB_NAMESPACE": self.namespace,
            "MDHUB_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
            "MDHUB_KAFKA__PARTITIONS": str(partitions),
            "MDHUB_REDIS__URL": redis_url,
            "MDHUB_WORKER__DATA_DIR": str(workdir / "worker"),
            "MDHUB_API__PORT": str(api_port),
            "MDHUB_MODEL": str(ROOT / "config" / "model.yaml"),
            "MDHUB_SCHEMAS_DIR": str(ROOT / "schemas"),
        }
        self.settings = Settings(
            namespace=self.namespace,
            model_file=ROOT / "config" / "model.yaml",
            schemas_dir=ROOT / "schemas",
            kafka={"bootstrap_servers": kafka_bootstrap, "partitions": partitions},
            redis={"url": redis_url},
        )
        self.model = load_model(self.settings.model_file)
        self.catalog = SchemaCatalog.load(self.settings.schemas_dir)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.producer = HubProducer(self.settings.kafka)

    # -- processes ---------------------------------------------------------------------------

    def ensure_topics(self) -> None:
        kafka = self.settings.kafka
        ensure_topics(
            kafka,
            topic_specs(self.model, self.namespace, kafka.partitions, kafka.replication_factor),
        )

    def start(self, *names: str, script: Path | None = None) -> None:
        """Start hub processes with ``python -m mdhub``, or with ``script`` in its place."""
        launcher = ["-m", "mdhub"] if script is None else [str(script)]
        commands = {
            "worker": ["worker", "--loglevel", "info"],
            "projector": ["project"],
            "api": ["api"],
        }
        for name in names:  # "projector-2": a second projector
            log = (self.workdir / f"{name}.log").open("ab")
            self.procs[name] = subprocess.Popen(
                [sys.executable, *launcher, *commands[name.partition("-")[0]]],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mdhub", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    # -- data --------------------------------------------------------------------------------

    def topic(self, entity: str, stage: Stage) -> str:
        return topic_name(self.namespace, entity, stage)

    def change(
        self,
        source_key: str,
        version: int,
        attributes: dict[str, Any] | None = None,
        *,
        source: str = "crm",
        entity: str = "customer",
        op: Op = Op.UPSERT,
        occurred_at: dt.datetime | None = None,
    ) -> CandidateChange:
        return CandidateChange(
            change_id=str(uuid.uuid4()),
            entity=entity,
            source=source,
            source_key=source_key,
            op=op,
            source_version=version,
            occurred_at=occurred_at
            or dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=version),
            attributes=attributes or {},
        )

    def encode(self, change: CandidateChange) -> bytes:
        codec = self.catalog.codec(f"mdhub.{change.entity}.CandidateChange")
        return codec.encode(change_to_avro(self.model.entity(change.entity), change))

    def publish(self, changes: Iterable[CandidateChange]) -> None:
        for change in changes:
            self.producer.produce(
                self.topic(change.entity, Stage.SOURCE),
                change.source_ref.encode(),
                self.encode(change),
            )
        self.producer.deliver_all(30)

    def publish_raw(self, entity: str, key: bytes | None, value: bytes | None) -> None:
        self.producer.produce(self.topic(entity, Stage.SOURCE), key, value)
        self.producer.deliver_all(30)

    def read_raw(self, entity: str, stage: Stage) -> list[Message]:
        """Every message of a topic from offset 0 to its current end, undecoded, with its broker
        timestamp (partition by partition, in offset order)."""
        return read_raw(self.settings.kafka.bootstrap_servers, self.topic(entity, stage))

    def read(
        self, entity: str, stage: Stage, codec_name: str | None = None
    ) -> list[tuple[str | None, Any]]:
        """Every message of a topic from offset 0 to its current end: ``(key, decoded value or None)``."""
        if codec_name is None:
            codec_name = {
                Stage.GOLDEN: f"mdhub.{entity}.GoldenRecord",
                Stage.CHANGES: f"mdhub.{entity}.ChangeEvent",
                Stage.REJECTED: "mdhub.common.RejectedRecord",
                Stage.SOURCE: f"mdhub.{entity}.CandidateChange",
                Stage.REVIEW: "mdhub.common.PotentialMatch",
                Stage.COMMANDS: "mdhub.common.StewardCommand",
            }[stage]
        codec = self.catalog.codec(codec_name)
        out: list[tuple[str | None, Any]] = []
        for msg in self.read_raw(entity, stage):
            key = msg.key.decode() if msg.key is not None else None
            try:
                decoded = codec.decode(msg.value) if msg.value is not None else None
            except DecodeError:
                decoded = msg.value  # e.g. garbage a test published on purpose: kept as bytes
            out.append((key, decoded))
        return out

    def oracle(self, entity: str = "customer") -> LocalResolveStage:
        """What the pure pipeline computes from the source and commands topics as they are now,
        fed in the router's order (broker time, then source before commands, partition, offset)."""
        pipeline = EntityPipeline(self.model.entity(entity), self.catalog, self.namespace)
        inputs = self.read_raw(entity, Stage.SOURCE) + self.read_raw(entity, Stage.COMMANDS)
        rank = {pipeline.source_topic: 0, pipeline.commands_topic: 1}
        stage = LocalResolveStage(pipeline)
        stage.feed_all(router_order(inputs, rank))
        return stage

    def processed(self, entity: str = "customer") -> bool:
        """Whether the router and the resolve stage have caught up with every input."""
        kafka = self.settings.kafka
        inputs = [self.topic(entity, Stage.SOURCE), self.topic(entity, Stage.COMMANDS)]
        routed = group_lag(kafka, f"{self.namespace}-router-{entity}", inputs)
        if any(lag != 0 for lag in routed.values()) or not routed:
            return False
        resolved = group_lag(kafka, f"{self.namespace}-worker", [self.topic(entity, Stage.RESOLVE)])
        return all(lag == 0 for lag in resolved.values())

    def api(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.api_port}{path}", timeout=10)

    def api_status(self, path: str) -> int | None:
        """The status code of a GET, or None while the API is not listening yet."""
        try:
            return self.api(path).status_code
        except httpx.TransportError:
            return None


# -- helpers for the crash-safety tests (raw topic reads, committed offsets, tracked publishing) --


def read_raw(bootstrap: str, topic: str) -> list[Message]:
    """Every message of ``topic`` up to the end it has now, undecoded, with its broker timestamp,
    in partition and offset order (``value`` None: a tombstone)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "raw-reader-" + uuid.uuid4().hex,
            "enable.auto.commit": False,
            "broker.address.family": "v4",
        }
    )
    out: list[Message] = []
    try:
        snapshot = snapshot_ends(consumer, [topic], timeout=10)

        def keep(batch: Sequence[KafkaMessage]) -> None:
            for msg in batch:
                partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
                if offset < snapshot.ends.get((topic, partition), -1):
                    _, ts = msg.timestamp()
                    out.append(Message(topic, partition, offset, ts, msg.key(), msg.value()))

        read_to_end(consumer, snapshot, keep)
    finally:
        consumer.close()
    out.sort(key=lambda m: (m.partition, m.offset))
    return out


class CommittedOffsets:
    """Reads a consumer group's committed offsets on one topic without joining the group."""

    def __init__(self, bootstrap: str, group: str, topic: str):
        self.topic = topic
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "broker.address.family": "v4",
            }
        )
        meta = self._consumer.list_topics(topic, timeout=10)
        self.partitions = sorted(meta.topics[topic].partitions)

    def offsets(self, timeout: float = 5) -> dict[int, int]:
        """``{partition: committed offset}``; a partition never committed counts as 0.

        Retries while the group coordinator is moving or loading (e.g. after a broker restart).
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = self._consumer.committed(
                    [TopicPartition(self.topic, p) for p in self.partitions],
                    timeout=max(0.5, deadline - time.monotonic()),
                )
                return {tp.partition: max(tp.offset, 0) for tp in found}
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def total(self, timeout: float = 5) -> int:
        """How many messages the group has committed past, over all partitions."""
        return sum(self.offsets(timeout).values())

    def close(self) -> None:
        self._consumer.close()


class ResolvedInputs:
    """How many inputs a worker group has committed past on a resolve topic, where the router
    forwards them in bundles (each counts its inputs)."""

    def __init__(self, bootstrap: str, group: str, topic: str):
        self._offsets = CommittedOffsets(bootstrap, group, topic)
        self._reader = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{group}-progress-reader",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "broker.address.family": "v4",
            }
        )
        self._counter = InputCounter(self._reader, topic)

    def total(self, timeout: float = 5) -> int:
        """Inputs below the group's committed offsets."""
        return self._counter.inputs(self._offsets.offsets(timeout), timeout=max(timeout, 10))

    def close(self) -> None:
        self._offsets.close()
        self._reader.close()


def publish_tracked(
    hub: Hub, topic: str, messages: Iterable[tuple[bytes, bytes]], timeout: float = 60
) -> list[tuple[int, int]]:
    """Publish ``(key, value)`` pairs in order; return each one's ``(partition, offset)``."""
    items = list(messages)
    coords: list[tuple[int, int] | None] = [None] * len(items)

    def remember(index: int) -> Callable[[int, int], None]:
        def delivered(partition: int, offset: int) -> None:
            coords[index] = (partition, offset)

        return delivered

    for index, (key, value) in enumerate(items):
        hub.producer.produce(topic, key, value, on_delivered=remember(index))
    hub.producer.deliver_all(timeout)
    missing = [i for i, c in enumerate(coords) if c is None]
    assert not missing, f"{len(missing)} published message(s) have no delivery report"
    return [c for c in coords if c is not None]
