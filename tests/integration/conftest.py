"""Real Kafka and Redis for the integration tests.

``MDHUB_TEST_KAFKA_BOOTSTRAP`` and ``MDHUB_TEST_REDIS_URL`` name servers to use; they must answer,
or the tests fail (never skip). Without them the session starts its own stack (Kafka 3.9.2 KRaft
from Maven Central jars and redis-server) on free ports in a temporary directory, and stops it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis as redis_py
from confluent_kafka.admin import AdminClient

from mdhub.settings import StackSettings
from mdhub.stack import stack_down, stack_up


@dataclass(frozen=True)
class Servers:
    """Where the session's Kafka and Redis are."""

    kafka_bootstrap: str
    redis_url: str


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _check_reachable(servers: Servers) -> None:
    try:
        AdminClient({"bootstrap.servers": servers.kafka_bootstrap}).list_topics(timeout=15)
    except Exception as exc:
        pytest.fail(
            f"Kafka at {servers.kafka_bootstrap} (MDHUB_TEST_KAFKA_BOOTSTRAP) does not answer: {exc}"
        )
    try:
        redis_py.Redis.from_url(servers.redis_url, socket_timeout=5).ping()
    except Exception as exc:
        pytest.fail(f"Redis at {servers.redis_url} (MDHUB_TEST_REDIS_URL) does not answer: {exc}")


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    bootstrap = os.environ.get("MDHUB_TEST_KAFKA_BOOTSTRAP")
    redis_url = os.environ.get("MDHUB_TEST_REDIS_URL")
    if bootstrap and redis_url:
        found = Servers(bootstrap, redis_url)
        _check_reachable(found)
        yield found
        return
    kafka_port, controller_port, redis_port = free_ports(3)
    settings = StackSettings(
        state_dir=tmp_path_factory.mktemp("stack"),
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        redis_port=redis_port,
        start_timeout_s=180,
    )
    status = stack_up(settings)
    try:
        yield Servers(bootstrap or status.bootstrap_servers, redis_url or status.redis_url)
    finally:
        stack_down(settings)


@pytest.fixture(scope="session")
def kafka_bootstrap(servers: Servers) -> str:
    return servers.kafka_bootstrap


@pytest.fixture(scope="session")
def redis_url(servers: Servers) -> str:
    return servers.redis_url
