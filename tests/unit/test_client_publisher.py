"""mdhub.client publishers with no broker: checks before sending, keys, delivery results, flushing."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

import mdhub.client
from mdhub.client import AsyncPublisher, Delivery, Publisher
from mdhub.domain.records import CandidateChange, Op
from mdhub.errors import ConfigError, MdhubError, PublishError, ValidationError
from mdhub.serde.catalog import SchemaCatalog
from mdhub.serde.mapping import change_from_avro
from mdhub.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SETTINGS = Settings(
    namespace="unit",
    model_file=REPO / "config" / "model.yaml",
    schemas_dir=REPO / "schemas",
    kafka={"bootstrap_servers": "127.0.0.1:1"},
)
CODEC = SchemaCatalog.load(REPO / "schemas").codec("mdhub.customer.CandidateChange")
GRACE = {"first_name": "Grace", "last_name": "Hopper"}


class FakeMessage:
    def __init__(self, topic: str, partition: int | None, offset: int | None) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int | None:
        return self._partition

    def offset(self) -> int | None:
        return self._offset


class FakeProducer:
    """A producer that answers on poll/flush: keys in ``fail`` fail, everything else is stored."""

    def __init__(self, *, fail: frozenset[str] = frozenset(), capacity: int = 10_000) -> None:
        self.fail = fail
        self.capacity = capacity
        self.hold = False  # keep messages in flight (a broker that does not answer)
        self.queued: list[tuple[str, bytes, bytes, Callable[..., None]]] = []
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.offsets: dict[int, int] = {}
        self.lock = threading.Lock()

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        on_delivery: Callable[..., None] | None = None,
    ) -> None:
        assert value is not None and key is not None and on_delivery is not None
        with self.lock:
            if len(self.queued) >= self.capacity:
                raise BufferError("queue full")
            self.queued.append((topic, key, value, on_delivery))

    def poll(self, timeout: float = -1) -> int:
        if self.hold:
            return 0
        with self.lock:
            batch, self.queued = self.queued, []
        for topic, key, value, callback in batch:
            if key.decode() in self.fail:
                callback(KafkaError(KafkaError._MSG_TIMED_OUT), FakeMessage(topic, None, None))
                continue
            partition = len(key) % 2
            offset = self.offsets.get(partition, 0)
            self.offsets[partition] = offset + 1
            self.sent.append((topic, key, value))
            callback(None, FakeMessage(topic, partition, offset))
        return len(batch)

    def flush(self, timeout: float = -1) -> int:
        self.poll(0)
        return len(self.queued)


def publisher(producer: FakeProducer | None = None, source: str = "crm") -> Publisher:
    return Publisher("customer", source, settings=SETTINGS, producer=producer or FakeProducer())


def problems(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str, str | None]]:
    return [(r.code, r.attribute) for r in exc.value.reasons]


# -- the public surface ------------------------------------------------------------------------


def test_the_public_surface_is_exactly_all() -> None:
    assert mdhub.client.__all__ == [
        "AsyncPublisher",
        "ChangeEvent",
        "Delivery",
        "GoldenRecord",
        "GoldenStatus",
        "PendingDelivery",
        "PublishStats",
        "Publisher",
        "Reason",
        "Received",
        "Rejection",
        "Retry",
        "Subscriber",
        "Tombstone",
    ]
    public = {name for name in dir(mdhub.client) if not name.startswith("_")}
    assert public == set(mdhub.client.__all__)
    for name in mdhub.client.__all__:
        assert getattr(mdhub.client, name).__doc__, f"{name} has no docstring"


def test_validation_error_belongs_to_the_error_tree() -> None:
    import mdhub.errors

    assert issubclass(ValidationError, MdhubError)
    assert "ValidationError" in mdhub.errors.__all__
    assert "ValidationError" in (mdhub.errors.__doc__ or "")


# -- checks before sending -----------------------------------------------------------------------


def test_every_problem_of_a_record_is_listed_and_nothing_is_sent() -> None:
    producer = FakeProducer()
    pub = publisher(producer)
    with pytest.raises(ValidationError) as exc:
        pub.publish(
            "C-1",
            {
                "first_name": 42,
                "email": "not-an-email",
                "country": "Atlantis",
                "phone": "12",
                "birth_date": "1980-12-31",
                "loyalty_tier": "diamond",
                "lifetime_value": -5,
                "shoe_size": 44,
            },
        )
    assert sorted(problems(exc)) == [
        ("BELOW_MINIMUM", "lifetime_value"),
        ("INVALID_PHONE", "phone"),
        ("NOT_ALLOWED", "loyalty_tier"),
        ("PATTERN", "country"),
        ("PATTERN", "email"),
        ("REQUIRED", "last_name"),
        ("TOO_LONG", "country"),
        ("TYPE", "birth_date"),
        ("TYPE", "first_name"),
        ("UNKNOWN_ATTRIBUTE", "shoe_size"),
        ("UNKNOWN_COUNTRY", "country"),
    ]
    message = str(exc.value)
    assert message.startswith("customer crm:C-1 was not sent, 11 problem(s):")
    for word in ("first_name", "birth_date", "shoe_size", "last_name is required", "diamond"):
        assert word in message
    assert producer.sent == [] and producer.queued == []
    assert pub.stats.published == 0


def test_a_mistyped_required_attribute_is_reported_once() -> None:
    with pytest.raises(ValidationError) as exc:
        publisher().publish("C-1", {"first_name": "Ada", "last_name": ["Lovelace"]})
    assert problems(exc) == [("TYPE", "last_name")]


def test_the_envelope_is_checked_too() -> None:
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    with pytest.raises(ValidationError) as exc:
        publisher().publish(
            "", GRACE, op="merge", source_version="7", occurred_at=future, change_id=""
        )
    assert sorted(problems(exc)) == [
        ("FUTURE_TIMESTAMP", "occurred_at"),
        ("MISSING_KEY", "source_key"),
        ("NOT_ALLOWED", "op"),
        ("TYPE", "change_id"),
        ("TYPE", "source_version"),
    ]
    with pytest.raises(ValidationError) as naive:
        publisher().publish("C-1", GRACE, occurred_at=dt.datetime(2026, 1, 1))
    assert problems(naive) == [("TYPE", "occurred_at")]


def test_values_are_checked_as_the_worker_standardizes_them_but_sent_as_given() -> None:
    producer = FakeProducer()
    pub = publisher(producer)
    pub.publish(
        "C-1",
        {**GRACE, "country": "Germany", "email": " Grace@Navy.Example ", "lifetime_value": 10},
    ).result(1)
    (_, _, value), *_ = producer.sent
    attributes = change_from_avro(CODEC.decode(value)).attributes
    # the original input travels (the hub keeps it intact and standardizes it itself)
    assert attributes["country"] == "Germany"
    assert attributes["email"] == " Grace@Navy.Example "
    assert attributes["lifetime_value"] == 10.0


def test_schema_problems_are_reported_before_sending() -> None:
    with pytest.raises(ValidationError) as exc:
        publisher().publish("C-1", GRACE, source_version=2**70)
    assert [r.code for r in exc.value.reasons] == ["SCHEMA"]


def test_unknown_entity_or_source_fails_at_construction() -> None:
    with pytest.raises(ConfigError, match="unknown entity type 'supplier'"):
        Publisher("supplier", "crm", settings=SETTINGS, producer=FakeProducer())
    with pytest.raises(ConfigError, match="may not publish customer; the model allows: crm, erp"):
        publisher(source="legacy")


def test_build_checks_without_sending() -> None:
    producer = FakeProducer()
    change = publisher(producer).build("C-1", GRACE, source_version=5)
    assert isinstance(change, CandidateChange)
    assert (change.source, change.source_key, change.source_version) == ("crm", "C-1", 5)
    assert producer.queued == []


# -- sending and delivery results ----------------------------------------------------------------


def test_publish_sends_to_the_source_topic_keyed_by_source_and_key() -> None:
    producer = FakeProducer()
    pub = publisher(producer)
    occurred = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
    pending = pub.publish("C-1001", GRACE, source_version=3, occurred_at=occurred, change_id="c-1")
    delivery = pending.result(1)
    assert delivery == Delivery("unit.customer.source.v1", "crm:C-1001", "c-1", 0, 0)
    assert delivery.ok and delivery.raise_for_error() is delivery
    topic, key, value = producer.sent[0]
    assert (topic, key) == ("unit.customer.source.v1", b"crm:C-1001")
    assert value[:2] == b"\xc3\x01"  # single-object encoding
    change = change_from_avro(CODEC.decode(value))
    assert change == pending.change
    assert (change.op, change.source_version, change.occurred_at) == (Op.UPSERT, 3, occurred)


def test_delete_sends_a_delete_of_the_source_record() -> None:
    producer = FakeProducer()
    pending = publisher(producer).delete("C-1", source_version=9)
    pending.result(1)
    change = change_from_avro(CODEC.decode(producer.sent[0][2]))
    assert (change.op, change.source_key, change.attributes) == (Op.DELETE, "C-1", {})


def test_default_versions_increase_and_default_ids_are_unique() -> None:
    pub = publisher()
    changes = [pub.publish("C-1", GRACE).change for _ in range(50)]
    versions = [c.source_version for c in changes]
    assert versions == sorted(versions) and len(set(versions)) == 50
    assert len({c.change_id for c in changes}) == 50
    assert all(c.occurred_at.tzinfo is not None for c in changes)


def test_failed_deliveries_carry_their_error_and_exit_raises() -> None:
    producer = FakeProducer(fail=frozenset({"crm:BAD"}))
    with (
        pytest.raises(PublishError, match=r"1 message\(s\) could not be delivered"),
        publisher(producer) as pub,
    ):
        good = pub.publish("GOOD", GRACE)
        bad = pub.publish("BAD", GRACE)
    assert good.result(0).ok
    failed = bad.result(0)
    assert not failed.ok and failed.partition is None and failed.offset is None
    assert failed.error is not None and "timed out" in failed.error.lower()
    with pytest.raises(PublishError, match="crm:BAD was not delivered"):
        failed.raise_for_error()
    stats = pub.stats
    assert (stats.published, stats.delivered, stats.failed, stats.in_flight) == (2, 1, 1, 0)
    assert stats.errors and stats.errors[0].startswith("crm:BAD: ")


def test_failures_reported_by_flush_do_not_raise_again_on_exit() -> None:
    producer = FakeProducer(fail=frozenset({"crm:BAD"}))
    with publisher(producer) as pub:
        pub.publish("BAD", GRACE)
        assert pub.flush(1).failed == 1


def test_flush_raises_while_messages_are_in_flight_and_result_times_out() -> None:
    producer = FakeProducer()
    pub = publisher(producer)
    producer.hold = True
    pending = pub.publish("C-1", GRACE)
    assert not pending.done()
    with pytest.raises(PublishError, match=r"no delivery report within 0\.2s"):
        pending.result(0.2)
    with pytest.raises(
        PublishError, match=r"1 message\(s\) to unit\.customer\.source\.v1 not delivered"
    ):
        pub.flush(0.1)
    assert pub.stats.in_flight == 1
    producer.hold = False
    assert pub.flush(1).delivered == 1
    assert pending.done() and pending.result().offset == 0


def test_a_full_queue_is_served_until_there_is_room() -> None:
    producer = FakeProducer(capacity=2)
    pub = publisher(producer)
    pendings = [pub.publish(f"C-{i}", GRACE) for i in range(7)]
    pub.flush(1)
    assert all(p.result(0).ok for p in pendings)
    assert len(producer.sent) == 7


def test_publish_change_can_leave_the_rules_to_the_hub() -> None:
    producer = FakeProducer()
    pub = publisher(producer)
    change = CandidateChange(
        change_id="c-9",
        entity="customer",
        source="crm",
        source_key="C-9",
        op=Op.UPSERT,
        source_version=1,
        occurred_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        attributes={"first_name": "Only"},
    )
    with pytest.raises(ValidationError) as exc:
        pub.publish_change(change)
    assert problems(exc) == [("REQUIRED", "last_name")]
    assert pub.publish_change(change, validate=False).result(1).ok  # the worker will reject it
    with pytest.raises(ConfigError, match="not 'erp'"):
        pub.publish_change(CandidateChange(**{**_fields(change), "source": "erp"}))


def _fields(change: CandidateChange) -> dict[str, Any]:
    return {name: getattr(change, name) for name in CandidateChange.__dataclass_fields__}


def test_a_closed_publisher_refuses_to_publish() -> None:
    pub = publisher()
    pub.close()
    with pytest.raises(RuntimeError, match="closed"):
        pub.publish("C-1", GRACE)


# -- asyncio -------------------------------------------------------------------------------------


def test_async_publisher_resolves_deliveries_on_the_loop() -> None:
    producer = FakeProducer(fail=frozenset({"crm:BAD"}))

    async def main() -> list[Delivery]:
        async with AsyncPublisher("customer", "crm", settings=SETTINGS, producer=producer) as pub:
            results = await asyncio.gather(*(pub.publish(f"A-{i}", GRACE) for i in range(20)))
            deleted = await pub.delete("A-0")
            with pytest.raises(ValidationError):
                await pub.publish("A-X", {"first_name": "No last name"})
            assert pub.stats.delivered == 21
            return [*results, deleted]

    deliveries = asyncio.run(main())
    assert len(deliveries) == 21 and all(d.ok for d in deliveries)
    assert len({(d.partition, d.offset) for d in deliveries}) == 21

    async def failing() -> Delivery:
        pub = AsyncPublisher("customer", "crm", settings=SETTINGS, producer=producer)
        try:
            return await pub.publish("BAD", GRACE)
        finally:
            await pub.close(1)

    failed = asyncio.run(failing())
    assert not failed.ok and failed.error


def test_async_publisher_does_not_block_the_loop_while_waiting() -> None:
    producer = FakeProducer()
    producer.hold = True

    async def main() -> int:
        pub = AsyncPublisher("customer", "crm", settings=SETTINGS, producer=producer)
        task = asyncio.create_task(pub.publish("A-1", GRACE))
        ticks = 0
        for _ in range(10):  # the loop keeps running while the delivery is outstanding
            await asyncio.sleep(0.01)
            ticks += 1
        assert not task.done()
        producer.hold = False
        delivery = await asyncio.wait_for(task, 5)
        assert delivery.ok
        await pub.close(1)
        return ticks

    assert asyncio.run(main()) == 10
