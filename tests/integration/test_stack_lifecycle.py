"""The local stack for real: Kafka and Redis come up, serve clients, and go down.

The stack runs in a temporary state directory on free ports (never 9092/6379, which a developer's
own stack may hold). The tests run in file order; the last one takes the stack down.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis as redis_py
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from mdhub.settings import StackSettings
from mdhub.stack import StackStatus, stack_down, stack_status, stack_up
from mdhub.stack.process import process_alive

pytestmark = pytest.mark.integration


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass(frozen=True)
class RunningStack:
    settings: StackSettings
    status: StackStatus
    up_seconds: float
    progress: list[str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    kafka_port, controller_port, redis_port = _free_ports(3)
    settings = StackSettings(
        state_dir=tmp_path_factory.mktemp("stack"),
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        redis_port=redis_port,
        start_timeout_s=120,
    )
    progress: list[str] = []
    started = time.monotonic()
    try:
        status = stack_up(settings, report=progress.append)
        yield RunningStack(settings, status, time.monotonic() - started, progress)
    finally:
        stack_down(settings)


def test_up_brings_both_servers_up_and_reports_progress(stack: RunningStack) -> None:
    assert stack.status.ready, stack.status
    assert stack.status.bootstrap_servers == f"127.0.0.1:{stack.settings.kafka_port}"
    assert stack.status.redis_url == f"redis://127.0.0.1:{stack.settings.redis_port}/0"
    assert any(line.startswith("fetching Kafka") for line in stack.progress), stack.progress
    assert any(line.startswith("formatting Kafka") for line in stack.progress), stack.progress
    assert any(line.startswith("starting Kafka") for line in stack.progress), stack.progress
    assert any(line.startswith("starting Redis") for line in stack.progress), stack.progress
    assert stack.status.started == ("kafka", "redis")
    print(f"cold up: {stack.up_seconds:.1f} s")


def test_status_shows_both_servers_running_and_reachable(stack: RunningStack) -> None:
    status = stack_status(stack.settings)

    for server in (status.kafka, status.redis):
        assert server.running, server
        assert server.reachable, server
        assert server.pid is not None and process_alive(server.pid), server
        assert server.detail == "ready"
    assert status.kafka.pid == stack.status.kafka.pid
    assert status.redis.pid == stack.status.redis.pid


def test_second_up_is_quick_and_leaves_the_servers_alone(stack: RunningStack) -> None:
    progress: list[str] = []
    started = time.monotonic()

    again = stack_up(stack.settings, report=progress.append)

    print(f"warm up: {time.monotonic() - started:.2f} s")
    assert progress == ["Kafka and Redis are already running"]
    assert again.ready
    assert again.started == ()  # what `mdhub run` stops on exit: nothing it did not start
    assert again.kafka.pid == stack.status.kafka.pid
    assert again.redis.pid == stack.status.redis.pid


def test_kafka_creates_a_topic_and_round_trips_a_message(stack: RunningStack) -> None:
    bootstrap = stack.status.bootstrap_servers
    topic = f"stack-test-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(
        timeout=30
    )
    assert topic in admin.list_topics(timeout=10).topics

    delivered: list[Message] = []
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        assert error is None, error
        delivered.append(message)

    producer.produce(topic, key=b"k1", value=b"hello stack", on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert len(delivered) == 1

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"stack-test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        received = None
        deadline = time.monotonic() + 60
        while received is None and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None:
                assert message.error() is None, message.error()
                received = message
        assert received is not None, "no message consumed within 60 s"
        assert (received.key(), received.value()) == (b"k1", b"hello stack")
        consumer.commit(message=received, asynchronous=False)  # the group coordinator works
    finally:
        consumer.close()


def test_redis_answers_and_offers_64_databases(stack: RunningStack) -> None:
    client = redis_py.Redis(host="127.0.0.1", port=stack.settings.redis_port, db=63)
    try:
        assert client.ping() is True
        client.set("stack-test", b"v")
        assert client.get("stack-test") == b"v"
        assert client.config_get("save") == {"save": ""}
    finally:
        client.close()


def test_down_stops_both_and_is_idempotent(stack: RunningStack) -> None:
    pids = [stack.status.kafka.pid, stack.status.redis.pid]
    state_dir = Path(stack.settings.state_dir)

    stack_down(stack.settings, only=("redis",))  # what `mdhub run` does when it started Redis
    status = stack_status(stack.settings)
    assert status.kafka.ready and not status.redis.running, status

    stack_down(stack.settings)

    status = stack_status(stack.settings)
    assert status.stopped, status
    assert not status.kafka.reachable and not status.redis.reachable
    assert status.kafka.detail == status.redis.detail == "not running"
    for pid in pids:
        assert pid is not None and not process_alive(pid), pid
    assert not (state_dir / "kafka" / "kafka.pid").exists()
    assert not (state_dir / "redis" / "redis.pid").exists()

    progress: list[str] = []
    stack_down(stack.settings, report=progress.append)
    assert progress == []
