"""The Python SDK against real Kafka and the hub's own worker: publish, subscribe, commit, redeliver.

The module shares one hub (a worker in a namespace of its own); every test uses its own source keys
and consumer groups.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import ROOT, CommittedOffsets, Hub, read_raw

from conftest import free_ports
from mdhub.client import (
    AsyncPublisher,
    ChangeEvent,
    Delivery,
    GoldenRecord,
    GoldenStatus,
    Publisher,
    Received,
    Rejection,
    Retry,
    Subscriber,
    Tombstone,
)
from mdhub.domain.identity import golden_id_for
from mdhub.errors import ValidationError
from mdhub.kafka.lag import group_lag
from mdhub.naming import Stage

pytestmark = pytest.mark.integration

TIMEOUT = 45


@pytest.fixture(scope="module")
def hub(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hub]:
    hub = Hub(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("hub"), free_ports(1)[0])
    hub.ensure_topics()
    hub.start("worker")
    try:
        with Publisher("customer", "crm", settings=hub.settings) as publisher:
            publisher.publish("warmup", {"first_name": "Warm", "last_name": "Up"})
        gid = golden_id_for("customer", "crm", "warmup")
        with viewer(hub) as subscriber:
            wait_for_records(subscriber, lambda got: gid in golden_ids(got), 90)
        yield hub
    finally:
        hub.stop_all()


def viewer(hub: Hub, topic: Any = "golden") -> Subscriber[Any]:
    """A subscriber without a group, from the beginning (like ``mdhub tail --from-beginning``)."""
    return Subscriber("customer", None, topic=topic, from_beginning=True, settings=hub.settings)


def golden_ids(got: list[Received[Any]]) -> set[str]:
    return {m.record.golden_id for m in got if isinstance(m.record, GoldenRecord)}


def wait_for_records(
    subscriber: Subscriber[Any],
    done: Callable[[list[Received[Any]]], bool],
    timeout: float = TIMEOUT,
) -> list[Received[Any]]:
    """Every message the subscriber yields until ``done(messages so far)``, or fail."""
    got: list[Received[Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for received in subscriber.messages(idle_timeout=0.5):
            got.append(received)
            if done(got):
                return got
        if done(got):
            return got
    raise AssertionError(f"timed out after {timeout}s; got {len(got)} message(s)")


def of(got: list[Received[Any]], gid: str) -> list[Any]:
    return [
        m.record
        for m in got
        if (isinstance(m.record, GoldenRecord | ChangeEvent) and m.record.golden_id == gid)
        or m.record == Tombstone(gid)
    ]


def test_published_records_come_out_golden_to_a_subscriber(hub: Hub) -> None:
    with Publisher("customer", "crm", settings=hub.settings) as publisher:
        grace = publisher.publish(
            "S-1", {"first_name": "Grace", "last_name": "Hopper", "country": "Germany"}
        )
        alan = publisher.publish("S-2", {"first_name": "Alan", "last_name": "Turing"})
    for pending in (grace, alan):
        delivery = pending.result(0)
        assert delivery.ok and delivery.topic == hub.topic("customer", Stage.SOURCE)
        assert delivery.partition is not None and delivery.offset is not None
    wanted = {golden_id_for("customer", "crm", key) for key in ("S-1", "S-2")}
    group = "sdk-" + uuid.uuid4().hex[:8]
    with Subscriber("customer", group, from_beginning=True, settings=hub.settings) as subscriber:
        got = wait_for_records(subscriber, lambda got: wanted <= golden_ids(got))
        subscriber.commit()
    (record,) = of(got, golden_id_for("customer", "crm", "S-1"))
    assert isinstance(record, GoldenRecord)
    assert (record.version, record.status, record.merged_into) == (1, GoldenStatus.ACTIVE, None)
    assert record.attributes["last_name"] == "Hopper"
    assert record.attributes["country"] == "DE"  # standardized by the hub, sent as given
    assert record.source("crm", "S-1") is not None


def test_an_invalid_record_is_refused_before_anything_is_sent(hub: Hub) -> None:
    with Publisher("customer", "crm", settings=hub.settings) as publisher:
        with pytest.raises(ValidationError) as exc:
            publisher.publish("V-1", {"first_name": "Only", "email": "nope", "shoe_size": 44})
        assert publisher.stats.published == 0
    assert sorted(r.code for r in exc.value.reasons) == ["PATTERN", "REQUIRED", "UNKNOWN_ATTRIBUTE"]
    assert not [
        m
        for m in read_raw(hub.settings.kafka.bootstrap_servers, hub.topic("customer", Stage.SOURCE))
        if m.key == b"crm:V-1"
    ]


def test_the_committed_offset_moves_only_after_the_handler_succeeded(hub: Hub) -> None:
    keys = ["C-1", "C-2", "C-3"]
    gids = {key: golden_id_for("customer", "crm", key) for key in keys}
    with Publisher("customer", "crm", settings=hub.settings) as publisher:
        for key in keys:
            publisher.publish(key, {"first_name": "Commit", "last_name": key})
    with viewer(hub) as subscriber:
        wait_for_records(subscriber, lambda got: set(gids.values()) <= golden_ids(got))
    golden_topic = hub.topic("customer", Stage.GOLDEN)
    bootstrap = hub.settings.kafka.bootstrap_servers
    where: dict[str, list[tuple[int, int]]] = {}
    for m in read_raw(bootstrap, golden_topic):
        where.setdefault((m.key or b"").decode(), []).append((m.partition, m.offset))
    (failing,) = where[gids["C-2"]]

    group = "sdk-commit-" + uuid.uuid4().hex[:8]
    calls: list[str] = []

    def fails_on_c2(record: GoldenRecord | Tombstone) -> None:
        assert isinstance(record, GoldenRecord)
        calls.append(record.golden_id)
        if record.golden_id == gids["C-2"]:
            raise ConnectionError("the downstream system is down")

    first = Subscriber("customer", group, from_beginning=True, settings=hub.settings)
    with pytest.raises(ConnectionError):
        first.run(fails_on_c2, retry=Retry(attempts=2, backoff_s=0.1), idle_timeout=5)
    assert calls.count(gids["C-2"]) == 2  # retried once in place, then given up
    first.close()  # commits what was processed, nothing from the failed record on

    committed = CommittedOffsets(bootstrap, group, golden_topic)
    try:
        assert committed.offsets()[failing[0]] == failing[1]
    finally:
        committed.close()

    # the next member of the group (or this one restarted) gets the failed record again, and
    # not the ones processed before it on its partition
    redelivered: list[str] = []

    def succeeds(record: GoldenRecord | Tombstone) -> None:
        assert isinstance(record, GoldenRecord)
        redelivered.append(record.golden_id)

    # the same from_beginning as before: it applies to partitions without a committed offset
    with Subscriber("customer", group, from_beginning=True, settings=hub.settings) as second:
        second.run(succeeds, idle_timeout=3)
    assert gids["C-2"] in redelivered
    done_before = [  # records with one message, before the failed one on its partition
        gid
        for gid in calls
        if len(where[gid]) == 1 and where[gid][0][0] == failing[0] and where[gid][0][1] < failing[1]
    ]
    assert not set(done_before) & set(redelivered)
    lag = group_lag(hub.settings.kafka, group, [golden_topic])
    assert set(lag.values()) == {0}


def test_a_source_delete_ends_in_a_retired_version_and_a_tombstone(hub: Hub) -> None:
    gid = golden_id_for("customer", "crm", "D-1")
    with Publisher("customer", "crm", settings=hub.settings) as publisher:
        publisher.publish("D-1", {"first_name": "Tim", "last_name": "Berners-Lee"})
        publisher.flush()
        publisher.delete("D-1")
    with viewer(hub) as subscriber:
        got = wait_for_records(subscriber, lambda got: Tombstone(gid) in [m.record for m in got])
    active, retired, tombstone = of(got, gid)
    assert (active.version, active.status) == (1, GoldenStatus.ACTIVE)
    assert (retired.version, retired.status) == (2, GoldenStatus.RETIRED)
    assert tombstone == Tombstone(gid)
    with viewer(hub, "changes") as subscriber:
        events = wait_for_records(subscriber, lambda got: len(of(got, gid)) >= 2)
    assert [(e.version, e.status) for e in of(events, gid)] == [
        (1, GoldenStatus.ACTIVE),
        (2, GoldenStatus.RETIRED),
    ]


def test_rule_violations_sent_anyway_come_back_as_rejections(hub: Hub, tmp_path: Path) -> None:
    with Publisher("customer", "crm", settings=hub.settings) as publisher:
        change = publisher.build("R-1", {"first_name": "Ok", "last_name": "Fine"})
        broken = type(change)(**{**_fields(change), "attributes": {"first_name": "No last"}})
        publisher.publish_change(broken, validate=False)
    with viewer(hub, "rejected") as subscriber:
        got = wait_for_records(
            subscriber,
            lambda got: any(isinstance(m.record, Rejection) and m.key == "crm:R-1" for m in got),
        )
    (rejection,) = [m.record for m in got if m.key == "crm:R-1"]
    assert rejection.codes == ("REQUIRED",)
    assert rejection.reasons[0].attribute == "last_name"
    assert (rejection.source, rejection.source_key, rejection.stage) == ("crm", "R-1", "validate")
    assert rejection.value is not None and rejection.value.startswith(b"\xc3\x01")


def _fields(change: Any) -> dict[str, Any]:
    return {name: getattr(change, name) for name in type(change).__dataclass_fields__}


def test_the_async_publisher_works_in_asyncio_run(hub: Hub) -> None:
    keys = [f"AS-{i}" for i in range(5)]

    async def main() -> list[Delivery]:
        async with AsyncPublisher("customer", "webshop", settings=hub.settings) as publisher:
            return await asyncio.gather(
                *(publisher.publish(k, {"first_name": "Async", "last_name": k}) for k in keys)
            )

    deliveries = asyncio.run(main())
    assert [d.key for d in deliveries] == [f"webshop:{k}" for k in keys]
    assert all(d.ok for d in deliveries)
    assert len({(d.partition, d.offset) for d in deliveries}) == len(keys)
    wanted = {golden_id_for("customer", "webshop", k) for k in keys}
    with viewer(hub) as subscriber:
        wait_for_records(subscriber, lambda got: wanted <= golden_ids(got))


def test_the_example_programs_publish_and_keep_a_local_copy(hub: Hub) -> None:
    def example(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            env=hub.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    sent = example("examples/publish_customers.py", "--prefix", "EXA", "--count", "3")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.count(" ok") == 3 and "crm:EXA-3 -> " in sent.stdout
    wanted = {golden_id_for("customer", "crm", f"EXA-{i}") for i in (1, 2, 3)}
    with viewer(hub) as subscriber:
        wait_for_records(subscriber, lambda got: wanted <= golden_ids(got))
    group = "example-" + uuid.uuid4().hex[:8]
    copy = example(
        "examples/subscribe_golden.py", "--group", group, "--from-beginning", "--idle-timeout", "3"
    )
    assert copy.returncode == 0, copy.stderr
    for gid in wanted:
        assert f"{gid} v1 " in copy.stdout
    assert "golden record(s) in the local copy" in copy.stdout
    assert set(
        group_lag(hub.settings.kafka, group, [hub.topic("customer", Stage.GOLDEN)]).values()
    ) == {0}
