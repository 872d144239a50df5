"""Consumer lag against real Kafka: ``mdhub lag`` agrees with Kafka's own consumer-group command,
a group that stops is reported STOP (and a stuck live member STALL) within the window, a group
falling behind WARN, and ``/metrics`` carries the right figures."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from harness import ROOT, wait_for
from prometheus_client.parser import text_string_to_metric_families

from mdhub.api import create_app
from mdhub.kafka import offsets
from mdhub.kafka.offsets import close_readers, committed_offsets
from mdhub.ops.lag import LagTracker, Status
from mdhub.ops.lagsource import KafkaLagSource
from mdhub.ops.monitor import LagMonitor
from mdhub.settings import KafkaSettings, StackSettings
from mdhub.stack import kafka_classpath
from mdhub.stream.stall import LagProbe
from mdhub.testing import InMemoryGoldenCache

pytestmark = pytest.mark.integration

CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


@pytest.fixture(scope="module")
def tools_classpath() -> str:
    # the jars `make run` uses (or KAFKA_HOME's); fetched once into the repo's state directory
    return kafka_classpath(StackSettings(state_dir=ROOT / ".mdhub"))


@pytest.fixture
def namespace() -> str:
    return "t" + uuid.uuid4().hex[:10]


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result()


def produce(
    bootstrap: str, topic: str, counts: dict[int, int], timestamp_ms: int | None = None
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for partition, count in counts.items():
        for i in range(count):
            extra: dict[str, Any] = {} if timestamp_ms is None else {"timestamp": timestamp_ms}
            producer.produce(topic, value=b"m%d" % i, partition=partition, **extra)
    assert producer.flush(30) == 0


def commit(bootstrap: str, group: str, offsets: list[TopicPartition]) -> None:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def kafka_describe(
    classpath: str, bootstrap: str, group: str
) -> dict[tuple[str, int], tuple[Any, ...]]:
    """What ``kafka-consumer-groups.sh --describe`` reports: (current offset, log end, lag)."""
    run = subprocess.run(
        ["java", "-cp", classpath, CONSUMER_GROUP_COMMAND,
         "--bootstrap-server", bootstrap, "--describe", "--group", group],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    lines = run.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["GROUP"])
    columns = lines[header].split()
    rows = {}
    for line in lines[header + 1 :]:
        fields = dict(zip(columns, line.split(), strict=False))
        if fields.get("GROUP") != group:
            continue
        rows[(fields["TOPIC"], int(fields["PARTITION"]))] = tuple(
            None if fields[c] == "-" else int(fields[c])
            for c in ("CURRENT-OFFSET", "LOG-END-OFFSET", "LAG")
        )
    return rows


def mdhub_lag(bootstrap: str, namespace: str, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDHUB_")}
    env |= {"MDHUB_KAFKA__BOOTSTRAP_SERVERS": bootstrap, "MDHUB_NAMESPACE": namespace}
    run = subprocess.run(
        [sys.executable, "-m", "mdhub", "lag", "--json", "--samples", "2", "--interval", "0.5",
         *args],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    doc: dict[str, Any] = json.loads(run.stdout)
    return doc


def test_lag_matches_kafkas_consumer_group_command(
    kafka_bootstrap: str, namespace: str, tools_classpath: str
) -> None:
    topic = f"{namespace}.customer.golden.v1"
    create_topic(kafka_bootstrap, topic, 3)
    produced_at = time.time() - 120  # the messages are two minutes old
    produce(kafka_bootstrap, topic, {0: 30, 1: 20, 2: 0}, timestamp_ms=int(produced_at * 1000))
    external = f"{namespace}-ext-crm"
    commit(
        kafka_bootstrap,
        external,
        [TopicPartition(topic, 0, 12), TopicPartition(topic, 1, 20), TopicPartition(topic, 2, 0)],
    )
    # a second group, live: a member that consumed part of the topic and committed
    live = f"{namespace}-ext-erp"
    member = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": live, "enable.auto.commit": False,
         "auto.offset.reset": "earliest"}
    )  # fmt: skip
    try:
        member.subscribe([topic])
        wait_for(lambda: member.consume(10, timeout=0.5), 30, "the live member's first messages")
        member.commit(asynchronous=False)

        # the three readings run side by side; nothing moves meanwhile
        with ThreadPoolExecutor(3) as pool:
            ours_doc = pool.submit(
                mdhub_lag, kafka_bootstrap, namespace, "--group", external, "--group", live
            )
            kafkas = {g: pool.submit(kafka_describe, tools_classpath, kafka_bootstrap, g)
                      for g in (external, live)}  # fmt: skip
            doc = ours_doc.result()
        for group in (external, live):
            kafka = kafkas[group].result()
            (found,) = [g for g in doc["groups"] if g["group"] == group]
            ours = {
                (p["topic"], p["partition"]): (p["current_offset"], p["log_end_offset"], p["lag"])
                for p in found["partitions"]
            }
            print(f"{group}: mdhub lag {sorted(ours.items())}")
            print(f"{group}: ConsumerGroupCommand {sorted(kafka.items())}")
            assert ours.keys() == kafka.keys()
            for where, (current, end, lag) in kafka.items():
                if current is None:
                    # assigned but never committed: Kafka's tool shows "-"; mdhub lag counts the
                    # whole log as lag (here: the empty partition, so 0)
                    assert ours[where] == (None, end, end)
                else:
                    assert ours[where] == (current, end, lag)
    finally:
        member.close()

    (group,) = [g for g in doc["groups"] if g["group"] == external]
    by_partition = {p["partition"]: p for p in group["partitions"]}
    assert (by_partition[0]["current_offset"], by_partition[0]["lag"]) == (12, 18)
    assert by_partition[1]["lag"] == by_partition[2]["lag"] == 0
    assert by_partition[1]["lag_seconds"] == 0
    # the oldest unconsumed message of partition 0 was produced two minutes ago
    assert 120 <= by_partition[0]["lag_seconds"] < 120 + 60
    assert (group["lag"], group["state"], group["members"]) == (18, "EMPTY", 0)
    # the group has no member and its lagging offset does not move: nobody consumes it
    assert by_partition[0]["status"] == "STOP"
    assert group["status"] == "STOP"

    # without --group: every group that reads the namespace's topics, and only those
    with KafkaLagSource(KafkaSettings(bootstrap_servers=kafka_bootstrap), namespace) as source:
        assert {k.group for k in source.sample().offsets} == {external, live}


def test_a_group_falling_behind_while_it_commits_is_warn(
    kafka_bootstrap: str, namespace: str
) -> None:
    topic = f"{namespace}.customer.changes.v1"
    create_topic(kafka_bootstrap, topic, 1)
    group = f"{namespace}-ext-slow"
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    tracker = LagTracker(window_s=30)
    statuses = []
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    committer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    with KafkaLagSource(kafka, namespace, groups=[group]) as source:
        for step in range(1, 4):  # the producers add 20 per step, the consumer commits 5
            for _ in range(20):
                producer.produce(topic, value=b"m", partition=0)
            assert producer.flush(10) == 0
            committer.commit(offsets=[TopicPartition(topic, 0, 5 * step)], asynchronous=False)
            tracker.observe(source.sample())
            (evaluated,) = tracker.report().groups
            statuses.append(evaluated.status)
    committer.close()
    assert statuses == [Status.OK, Status.WARN, Status.WARN]
    (partition,) = evaluated.partitions
    assert partition.lag == 60 - 15
    assert partition.consume_rate is not None and partition.produce_rate is not None
    assert partition.produce_rate > partition.consume_rate > 0
    assert partition.eta_seconds == float("inf")


def scrape(app: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async def call() -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/metrics")
            assert response.status_code == 200
            return response.text

    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(asyncio.run(call()))
        for s in family.samples
    }


@pytest.fixture
def monitor(kafka_bootstrap: str, namespace: str) -> Iterator[LagMonitor]:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    m = LagMonitor(
        KafkaLagSource(kafka, namespace), window_s=3.0, interval_s=0.5,
        projector_group=f"{namespace}-projector",
    )  # fmt: skip
    yield m
    m.stop()


def test_stopped_and_stuck_groups_in_metrics_within_the_window(
    kafka_bootstrap: str, namespace: str, monitor: LagMonitor
) -> None:
    topic = f"{namespace}.customer.golden.v1"
    create_topic(kafka_bootstrap, topic, 1)
    produce(kafka_bootstrap, topic, {0: 10})

    def caught_up_member(group: str) -> Consumer:
        consumer = Consumer(
            {"bootstrap.servers": kafka_bootstrap, "group.id": group,
             "enable.auto.commit": False, "auto.offset.reset": "earliest"}
        )  # fmt: skip
        consumer.subscribe([topic])
        seen: list[Any] = []

        def read_all() -> bool:
            seen.extend(m for m in consumer.consume(100, timeout=0.5) if m.error() is None)
            return len(seen) >= 10

        wait_for(read_all, 30, f"{group} to read the topic")
        consumer.commit(asynchronous=False)
        return consumer

    stopped, stuck = f"{namespace}-ext-stopped", f"{namespace}-projector"
    gone = caught_up_member(stopped)
    present = caught_up_member(stuck)
    app = create_app(InMemoryGoldenCache(), ["customer"], ops=monitor)
    try:
        part = frozenset({("topic", topic), ("partition", "0")})

        def status(group: str) -> str | None:
            metrics = scrape(app)
            for s in Status:
                key = (
                    "mdhub_consumer_partition_status_code",
                    part | {("group", group), ("status", s.value)},
                )
                if key in metrics:
                    return s.value
            return None

        wait_for(lambda: status(stopped) == "OK" and status(stuck) == "OK", 30, "both caught up")
        gone.close()  # the process is gone; `present` stays in its group but stops polling
        stopped_at = time.monotonic()
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        produced = 10

        def keep_producing_until(check: Any) -> Any:
            nonlocal produced
            producer.produce(topic, value=b"more", partition=0)
            producer.flush(10)
            produced += 1
            return check()

        wait_for(lambda: keep_producing_until(lambda: status(stopped) == "STOP"), 30, "STOP")
        took = time.monotonic() - stopped_at
        print(f"STOP reported {took:.1f} s after the consumer left (window 3 s, polls every 0.5 s)")
        assert took < 3.0 + 4.0  # the window, plus a few polls on a busy machine
        wait_for(lambda: keep_producing_until(lambda: status(stuck) == "STALL"), 30, "STALL")

        # with the producers quiet, the gauges settle on the exact lag
        expected = produced - 10
        group_labels = part | {("group", stopped)}

        def settled() -> bool:
            m = scrape(app)
            return m.get(("mdhub_consumer_lag_messages", group_labels)) == expected

        wait_for(settled, 30, f"lag {expected} in /metrics")
        metrics = scrape(app)
        assert metrics[("mdhub_consumer_committed_offset", group_labels)] == 10
        assert metrics[("mdhub_topic_log_end_offset", part)] == produced
        assert metrics[("mdhub_consumer_lag_seconds", group_labels)] > 0
        assert (
            metrics[
                (
                    "mdhub_consumer_group_status_code",
                    frozenset({("group", stopped), ("status", "STOP")}),
                )
            ]
            == 4
        )
        # the hub's projector group doubles as projection lag to Redis
        assert metrics[("mdhub_projection_lag_messages", frozenset({("topic", topic)}))] == expected
        assert metrics[("mdhub_lag_sample_success", frozenset())] == 1
    finally:
        present.close()


def test_the_workers_stall_probe_and_the_offset_readers_read_committed_offsets(
    kafka_bootstrap: str, namespace: str
) -> None:
    topic = f"{namespace}.customer.resolve.v1"
    create_topic(kafka_bootstrap, topic, 2)
    produce(kafka_bootstrap, topic, {0: 7, 1: 3})
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    group = f"{namespace}-worker"
    both = [(topic, 0), (topic, 1)]
    probe = LagProbe(kafka, group)
    try:
        assert probe.lag([]) == 0
        assert probe.lag(both) == 10  # nothing committed: all of it waits
        assert probe.starts(topic, [0, 1]) == {0: 0, 1: 0}  # nothing committed: the earliest
        assert committed_offsets(kafka, group, both, 30) == {(topic, 0): -1, (topic, 1): -1}
        commit(kafka_bootstrap, group, [TopicPartition(topic, 0, 5)])
        # the group's offset reader is kept between calls, and made again once closed
        assert offsets._READERS
        close_readers()  # as `mdhub run` does before it stops Kafka
        assert not offsets._READERS
        assert committed_offsets(kafka, group, both, 30) == {(topic, 0): 5, (topic, 1): -1}
        close_readers()
        assert probe.lag([(topic, 0)]) == 2
        assert probe.lag(both) == 5
        assert probe.starts(topic, [0, 1]) == {0: 5, 1: 0}
        # partition 1's first three messages deleted (retention): its first offset is 3, not 0
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap, "log_level": 3})
        for future in admin.delete_records([TopicPartition(topic, 1, 3)]).values():
            future.result(timeout=30)
        assert probe.starts(topic, [0, 1]) == {0: 5, 1: 3}
        assert probe.starts(topic, [0]) == {0: 5}
    finally:
        probe.close()
    unreachable = LagProbe(KafkaSettings(bootstrap_servers="127.0.0.1:1"), "nobody")
    try:
        assert unreachable.lag([(topic, 0)], timeout=1.0) is None
        with pytest.raises(KafkaException):
            unreachable.starts(topic, [0], timeout=1.0)
    finally:
        unreachable.close()
