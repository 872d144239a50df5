"""mdhub.client.Subscriber with a fake consumer: typed records, commit only after success, redelivery."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    KafkaError,
    KafkaException,
    TopicPartition,
)

import mdhub.client._subscriber as subscriber_module
from mdhub.client import (
    ChangeEvent,
    GoldenRecord,
    GoldenStatus,
    Reason,
    Received,
    Rejection,
    Retry,
    Subscriber,
    Tombstone,
)
from mdhub.domain.records import Cause, CauseKind, Lineage, SourceRecord
from mdhub.errors import ConfigError, DecodeError
from mdhub.modelfile import load_model
from mdhub.serde.catalog import SchemaCatalog
from mdhub.serde.mapping import change_event_to_avro, golden_to_avro, rejected_to_avro
from mdhub.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SETTINGS = Settings(
    namespace="unit",
    model_file=REPO / "config" / "model.yaml",
    schemas_dir=REPO / "schemas",
    kafka={"bootstrap_servers": "127.0.0.1:1"},
)
CATALOG = SchemaCatalog.load(REPO / "schemas")
CUSTOMER = load_model(REPO / "config" / "model.yaml").entity("customer")
GOLDEN_TOPIC = "unit.customer.golden.v1"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def golden(gid: str, version: int = 1, **extra: Any) -> GoldenRecord:
    source = SourceRecord("crm", gid, version, T0, f"c-{gid}-{version}", {"first_name": "A"})
    fields: dict[str, Any] = {
        "golden_id": gid,
        "entity": "customer",
        "version": version,
        "status": GoldenStatus.ACTIVE,
        "attributes": {"first_name": "A", "last_name": gid},
        "lineage": {"first_name": Lineage("crm", gid, "source_priority", T0)},
        "sources": (source,),
        "created_at": T0,
        "updated_at": T0,
        "content_hash": "h" + str(version),
    }
    fields.update(extra)
    return GoldenRecord(**fields)


def golden_bytes(record: GoldenRecord) -> bytes:
    return CATALOG.codec("mdhub.customer.GoldenRecord").encode(golden_to_avro(CUSTOMER, record))


class FakeMessage:
    def __init__(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key, self._value = key, value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_767_225_600_000 + self._offset)


class FakeConsumer:
    """A consumer group of one over in-memory partitions, with stored and committed offsets."""

    def __init__(
        self,
        topic: str,
        partitions: dict[int, list[tuple[bytes | None, bytes | None]]],
        committed: dict[int, int] | None = None,
        *,
        exists: bool = True,
    ) -> None:
        self.topic = topic
        self.log = partitions
        self.exists = exists
        self.committed: dict[int, int] = dict(committed or {})
        self.stored: dict[int, int] = {}
        self.position: dict[int, int] = {}
        self.seeks: list[tuple[int, int]] = []
        self.store_calls = 0
        self.subscribed: list[str] | None = None
        self.assigned: list[TopicPartition] | None = None
        self.closed = False

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        info = SimpleNamespace(error=None, partitions={p: None for p in self.log})
        return SimpleNamespace(topics={self.topic: info} if self.exists else {})

    def subscribe(self, topics: list[str]) -> None:
        self.subscribed = topics
        self.position = {p: self.committed.get(p, 0) for p in self.log}

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = partitions
        for tp in partitions:
            start = {OFFSET_BEGINNING: 0, OFFSET_END: len(self.log[tp.partition])}
            self.position[tp.partition] = start.get(tp.offset, tp.offset)

    def poll(self, timeout: float = -1) -> FakeMessage | None:
        assert not self.closed
        for partition in sorted(self.log):
            offset = self.position[partition]
            if offset < len(self.log[partition]):
                self.position[partition] = offset + 1
                key, value = self.log[partition][offset]
                return FakeMessage(self.topic, partition, offset, key, value)
        time.sleep(min(timeout, 0.005))
        return None

    def store_offsets(
        self, message: Any = None, offsets: list[TopicPartition] | None = None
    ) -> None:
        self.store_calls += 1
        for tp in offsets or []:
            self.stored[tp.partition] = tp.offset

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append((partition.partition, partition.offset))
        self.position[partition.partition] = partition.offset

    def commit(self, *, asynchronous: bool = True) -> list[TopicPartition]:
        fresh = {p: o for p, o in self.stored.items() if self.committed.get(p) != o}
        if not fresh:
            raise KafkaException(KafkaError(KafkaError._NO_OFFSET))
        self.committed.update(fresh)
        return [TopicPartition(self.topic, p, o) for p, o in fresh.items()]

    def close(self) -> None:
        self.closed = True
        self.committed.update(self.stored)  # librdkafka commits the stored offsets on close


def goldens(*ids: str) -> list[tuple[bytes | None, bytes | None]]:
    return [(gid.encode(), golden_bytes(golden(gid))) for gid in ids]


def subscribe(consumer: FakeConsumer, group: str | None = "g", **kwargs: Any) -> Subscriber[Any]:
    return Subscriber("customer", group, settings=SETTINGS, consumer=consumer, **kwargs)


def ids(records: list[Any]) -> list[str]:
    return [r.golden_id for r in records]


# -- what comes out ------------------------------------------------------------------------------


def test_golden_records_tombstones_and_merged_redirects_come_out_typed() -> None:
    merged = golden("G-2", 3, status=GoldenStatus.MERGED, merged_into="G-1")
    consumer = FakeConsumer(
        GOLDEN_TOPIC,
        {0: [*goldens("G-1"), (b"G-2", golden_bytes(merged)), (b"G-3", None)]},
    )
    with subscribe(consumer) as subscriber:
        assert consumer.subscribed == [GOLDEN_TOPIC]
        assert subscriber.topic == GOLDEN_TOPIC
        got = list(subscriber.records(idle_timeout=0.05))
    assert got[0] == golden("G-1")
    assert isinstance(got[1], GoldenRecord)
    assert (got[1].status, got[1].merged_into, got[1].version) == (GoldenStatus.MERGED, "G-1", 3)
    assert got[2] == Tombstone("G-3")
    assert consumer.committed == {0: 3} and consumer.closed


def test_messages_carry_coordinates_and_the_raw_value() -> None:
    consumer = FakeConsumer(GOLDEN_TOPIC, {0: goldens("G-1"), 1: goldens("G-2")})
    with subscribe(consumer) as subscriber:
        got = list(subscriber.messages(idle_timeout=0.05))
    assert [(m.partition, m.offset, m.key) for m in got] == [(0, 0, "G-1"), (1, 0, "G-2")]
    first = got[0]
    assert isinstance(first, Received) and first.error is None
    assert first.value == golden_bytes(golden("G-1"))
    assert first.timestamp == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_change_events_and_rejections_come_out_typed() -> None:
    event = ChangeEvent(
        "G-1",
        "customer",
        2,
        GoldenStatus.ACTIVE,
        ("last_name",),
        {"last_name": "A"},
        {"last_name": "B"},
        Cause(CauseKind.SOURCE_CHANGE, "c-1", "crm", "K-1"),
        T0,
    )
    event_bytes = CATALOG.codec("mdhub.customer.ChangeEvent").encode(
        change_event_to_avro(CUSTOMER, event)
    )
    changes = FakeConsumer("unit.customer.changes.v1", {0: [(b"G-1", event_bytes)]})
    with Subscriber(
        "customer", "g", topic="changes", settings=SETTINGS, consumer=changes
    ) as subscriber:
        assert list(subscriber.records(idle_timeout=0.05)) == [event]

    envelope = rejected_to_avro(
        entity="customer",
        stage="validate",
        topic="unit.customer.source.v1",
        partition=1,
        offset=7,
        timestamp=T0,
        key=b"crm:K-9",
        value=b"\x00original",
        reasons=[Reason("REQUIRED", "last_name is required", "last_name")],
    )
    rejected_bytes = CATALOG.codec("mdhub.common.RejectedRecord").encode(envelope)
    rejected = FakeConsumer("unit.customer.rejected.v1", {0: [(b"crm:K-9", rejected_bytes)]})
    with Subscriber(
        "customer", "g", topic="rejected", settings=SETTINGS, consumer=rejected
    ) as subscriber:
        (rejection,) = list(subscriber.records(idle_timeout=0.05))
    assert isinstance(rejection, Rejection)
    assert rejection.codes == ("REQUIRED",)
    assert rejection.reasons[0].attribute == "last_name"
    assert (rejection.topic, rejection.partition, rejection.offset) == (
        "unit.customer.source.v1",
        1,
        7,
    )
    assert (rejection.key, rejection.value) == (b"crm:K-9", b"\x00original")


# -- commit only after success -------------------------------------------------------------------


def test_a_failing_handler_leaves_the_record_uncommitted_and_gets_it_again() -> None:
    consumer = FakeConsumer(GOLDEN_TOPIC, {0: goldens("G-1", "G-2", "G-3")})
    subscriber = subscribe(consumer)
    seen: list[str] = []
    failures = {"G-2": 1}

    def handler(record: GoldenRecord) -> None:
        seen.append(record.golden_id)
        if failures.get(record.golden_id, 0) > 0:
            failures[record.golden_id] -= 1
            raise RuntimeError("downstream is down")

    with pytest.raises(RuntimeError, match="downstream is down"):
        subscriber.run(handler, retry=Retry(attempts=1), idle_timeout=0.05)
    assert consumer.stored == {0: 1}  # G-1 done; G-2 not
    assert consumer.seeks == [(0, 1)]  # back to G-2
    subscriber.commit()
    assert consumer.committed == {0: 1}

    assert subscriber.run(handler, idle_timeout=0.05) == 2
    assert seen == ["G-1", "G-2", "G-2", "G-3"]
    subscriber.close()
    assert consumer.committed == {0: 3}


def test_retries_call_the_handler_again_in_place() -> None:
    consumer = FakeConsumer(GOLDEN_TOPIC, {0: goldens("G-1", "G-2")})
    calls: list[str] = []

    def flaky(record: GoldenRecord) -> None:
        calls.append(record.golden_id)
        if record.golden_id == "G-1" and calls.count("G-1") < 3:
            raise TimeoutError("try again")

    with subscribe(consumer) as subscriber:
        handled = subscriber.run(flaky, retry=Retry(attempts=3, backoff_s=0), idle_timeout=0.05)
    assert handled == 2
    assert calls == ["G-1", "G-1", "G-1", "G-2"]
    assert consumer.seeks == [] and consumer.committed == {0: 2}


def test_stop_from_the_handler_ends_run_after_that_record() -> None:
    consumer = FakeConsumer(GOLDEN_TOPIC, {0: goldens("G-1", "G-2", "G-3")})
    with subscribe(consumer) as subscriber:

        def handler(record: GoldenRecord) -> None:
            if record.golden_id == "G-2":
                subscriber.stop()

        assert subscriber.run(handler) == 2
        assert consumer.stored == {0: 2}
        assert [r.golden_id for r in subscriber.records(idle_timeout=0.05)] == ["G-3"]


def test_leaving_a_loop_early_leaves_the_last_record_for_next_time() -> None:
    consumer = FakeConsumer(GOLDEN_TOPIC, {0: goldens("G-1", "G-2", "G-3")})
    subscriber = subscribe(consumer)
    for record in subscriber:
        if record.golden_id == "G-2":
            break
    assert consumer.stored == {0: 1}
    with pytest.raises(ValueError):
        for record in subscriber:
            raise ValueError(record.golden_id)
    assert consumer.stored == {0: 1}
    again = []
    for record in subscriber.records(idle_timeout=0.05):
        again.append(record.golden_id)
        if record.golden_id == "G-2":
            subscriber.commit()  # counts G-2 as processed before leaving
            break
    assert again == ["G-2"] and consumer.committed == {0: 2}
    assert ids(list(subscriber.records(idle_timeout=0.05))) == ["G-3"]
    subscriber.close()
    assert consumer.committed == {0: 3}


def test_an_undecodable_message_stops_records_at_it_but_not_messages() -> None:
    consumer = FakeConsumer(GOLDEN_TOPIC, {0: [*goldens("G-1"), (b"G-X", b"garbage")]})
    subscriber = subscribe(consumer)
    with pytest.raises(DecodeError, match=r"unit.customer.golden.v1\[0\]@1: not Avro") as exc:
        list(subscriber.records(idle_timeout=0.05))
    assert exc.value.code == "UNDECODABLE"
    assert consumer.stored == {0: 1} and consumer.seeks[-1] == (0, 1)
    with pytest.raises(DecodeError):
        subscriber.run(lambda record: None, idle_timeout=0.05)
    bad = list(subscriber.messages(idle_timeout=0.05))
    assert [(m.key, m.record, m.error is not None) for m in bad] == [("G-X", None, True)]
    assert consumer.stored == {0: 2}  # a message loop decides for itself


# -- without a group -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("from_beginning", "offset"), [(True, OFFSET_BEGINNING), (False, OFFSET_END)]
)
def test_without_a_group_every_partition_is_read_and_nothing_committed(
    from_beginning: bool, offset: int
) -> None:
    consumer = FakeConsumer(GOLDEN_TOPIC, {0: goldens("G-1"), 1: goldens("G-2")})
    with subscribe(consumer, None, from_beginning=from_beginning) as subscriber:
        assert consumer.assigned is not None and consumer.subscribed is None
        assert [(tp.partition, tp.offset) for tp in consumer.assigned] == [(0, offset), (1, offset)]
        got = ids(list(subscriber.records(idle_timeout=0.05)))
        subscriber.commit()
    assert got == (["G-1", "G-2"] if from_beginning else [])
    assert consumer.store_calls == 0 and consumer.committed == {}


# -- set-up --------------------------------------------------------------------------------------


def test_consumer_config_stores_offsets_only_after_processing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[dict[str, Any]] = []

    def fake_consumer(conf: dict[str, Any]) -> FakeConsumer:
        made.append(conf)
        return FakeConsumer(GOLDEN_TOPIC, {0: []})

    monkeypatch.setattr(subscriber_module, "Consumer", fake_consumer)
    Subscriber("customer", "billing", settings=SETTINGS).close()
    Subscriber("customer", "billing", from_beginning=True, settings=SETTINGS).close()
    Subscriber("customer", None, settings=SETTINGS, config={"fetch.min.bytes": 10}).close()
    group, earliest, viewer = made
    assert group["group.id"] == "billing"
    assert group["enable.auto.offset.store"] is False
    assert group["enable.auto.commit"] is True
    assert group["auto.offset.reset"] == "latest"
    assert earliest["auto.offset.reset"] == "earliest"
    assert viewer["enable.auto.commit"] is False and viewer["group.id"] == "unit-viewer"
    assert viewer["fetch.min.bytes"] == 10
    assert group["bootstrap.servers"] == "127.0.0.1:1"


def test_a_missing_topic_or_kind_is_a_config_error() -> None:
    consumer = FakeConsumer(GOLDEN_TOPIC, {0: []}, exists=False)
    with pytest.raises(ConfigError, match=r"topic unit\.customer\.golden\.v1 does not exist"):
        subscribe(consumer)
    assert consumer.closed
    with pytest.raises(ConfigError, match="topic must be golden, changes or rejected"):
        Subscriber("customer", "g", topic="review", settings=SETTINGS, consumer=consumer)  # type: ignore[call-overload]
    with pytest.raises(ConfigError, match="group must be"):
        subscribe(FakeConsumer(GOLDEN_TOPIC, {0: []}), "")


def test_retry_policy_backs_off_exponentially_up_to_a_limit() -> None:
    policy = Retry(attempts=5, backoff_s=0.5, multiplier=2, max_backoff_s=3)
    assert [policy.delay(n) for n in range(1, 5)] == [0.5, 1.0, 2.0, 3.0]
    with pytest.raises(ValueError):
        Retry(attempts=0)


def test_a_closed_subscriber_refuses_to_iterate() -> None:
    subscriber = subscribe(FakeConsumer(GOLDEN_TOPIC, {0: []}))
    subscriber.close()
    subscriber.close()  # twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        list(subscriber)
