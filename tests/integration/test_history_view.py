"""The history view end to end: worker -> changes topic -> projector -> Redis -> API.

One hub (worker, projector, API) in a namespace of its own, with a redis-server of this module's
own so that a test can flush it. One source record gets three versions (v2 changes the city, v3
removes the phone); the tests read its history and its past versions through the API, after the
projector filled them, after a FLUSHDB, and after `mdhub cache rebuild`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py
from harness import Hub, wait_for

from conftest import free_ports
from mdhub.domain.identity import golden_id_for
from mdhub.kafka.lag import group_lag
from mdhub.naming import Stage

pytestmark = pytest.mark.integration

TIMEOUT = 60
KEY = "H-1"
GID = golden_id_for("customer", "crm", KEY)
LONDON = {
    "first_name": "Alan",
    "last_name": "Turing",
    "city": "London",
    "phone": "+44 161 496 0000",
}
MANCHESTER = {**LONDON, "city": "Manchester"}
NO_PHONE = {k: v for k, v in MANCHESTER.items() if k != "phone"}
PHONE = "+441614960000"  # as standardized to E.164


class RedisServer:
    """A redis-server for this module alone: a FLUSHDB here touches no other test's views."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_ports(1)[0]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.client = redis_py.Redis.from_url(self.url, socket_timeout=5)

        def answers() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}")
            try:
                return bool(self.client.ping())
            except redis_py.exceptions.ConnectionError:
                return False

        wait_for(answers, 20, "redis-server to answer")

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hub(
    kafka_bootstrap: str, own_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hub]:
    hub = Hub(
        kafka_bootstrap, own_redis.url, tmp_path_factory.mktemp("hub"), api_port=free_ports(1)[0]
    )
    hub.ensure_topics()
    hub.start("worker", "projector", "api")
    try:
        hub.publish(
            [
                hub.change(KEY, 1, LONDON),
                hub.change(KEY, 2, MANCHESTER),
                hub.change(KEY, 3, NO_PHONE),
            ]
        )
        wait_for(lambda: len(history(hub)) == 3, 120, "three versions in the history view")
        yield hub
    finally:
        hub.stop_all()


def history(hub: Hub, query: str = "") -> list[dict[str, Any]]:
    """The history items the API lists now (none while it answers anything but 200)."""
    try:
        response = hub.api(f"/v1/customer/golden/{GID}/history{query}")
    except Exception:  # the API may not listen yet
        return []
    items: list[dict[str, Any]] = response.json()["items"] if response.status_code == 200 else []
    return items


def at_version(hub: Hub, version: int) -> dict[str, Any]:
    response = hub.api(f"/v1/customer/golden/{GID}?version={version}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_history_is_complete(hub: Hub) -> None:
    items = history(hub)
    assert [e["version"] for e in items] == [3, 2, 1]
    v3, v2, v1 = items
    assert set(v1["changed"]) == {"first_name", "last_name", "city", "phone"}
    assert v1["before"] == dict.fromkeys(v1["changed"])
    assert v2["changed"] == ["city"]
    assert (v2["before"], v2["after"]) == ({"city": "London"}, {"city": "Manchester"})
    assert v3["changed"] == ["phone"]
    assert (v3["before"], v3["after"]) == ({"phone": PHONE}, {"phone": None})
    assert {e["cause"]["source_key"] for e in items} == {KEY}
    assert all(e["cause"]["kind"] == "source_change" for e in items)
    assert v1["occurred_at"] == "2026-01-01T01:00:00Z"

    assert at_version(hub, 1)["attributes"] == {
        "first_name": "Alan",
        "last_name": "Turing",
        "city": "London",
        "phone": PHONE,
    }
    assert at_version(hub, 2)["attributes"]["city"] == "Manchester"
    assert at_version(hub, 2)["attributes"]["phone"] == PHONE
    third = at_version(hub, 3)
    assert "phone" not in third["attributes"]
    assert third["attributes"]["city"] == "Manchester"
    assert (third["version"], third["status"]) == (3, "active")


def test_the_history_lists_every_version_and_rebuilds_each_one(hub: Hub) -> None:
    assert_history_is_complete(hub)
    current = hub.api(f"/v1/customer/golden/{GID}").json()
    assert current["version"] == 3
    assert at_version(hub, 3)["attributes"] == current["attributes"]

    page = hub.api(f"/v1/customer/golden/{GID}/history?limit=2").json()
    assert [e["version"] for e in page["items"]] == [3, 2]
    assert page["next_before_version"] == 2
    rest = hub.api(f"/v1/customer/golden/{GID}/history?limit=2&before_version=2").json()
    assert ([e["version"] for e in rest["items"]], rest["next_before_version"]) == ([1], None)

    missing = hub.api(f"/v1/customer/golden/{GID}?version=4")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert hub.api("/v1/customer/golden/no-such-id/history").status_code == 404


def test_the_same_values_again_add_nothing_to_the_history(hub: Hub) -> None:
    # a newer source version with the same values: no new golden version, so no history entry
    hub.publish([hub.change(KEY, 4, NO_PHONE)])
    ns, kafka = hub.namespace, hub.settings.kafka

    def caught_up(group: str, stage: Stage) -> bool:
        return sum(group_lag(kafka, f"{ns}-{group}", [hub.topic("customer", stage)]).values()) == 0

    wait_for(lambda: hub.processed("customer"), TIMEOUT, "the router and the worker to catch up")
    wait_for(lambda: caught_up("projector", Stage.CHANGES), TIMEOUT, "the projector to catch up")
    assert [e["version"] for e in history(hub)] == [3, 2, 1]


def test_the_projector_refills_the_history_after_a_flushdb(
    hub: Hub, own_redis: RedisServer
) -> None:
    own_redis.client.flushdb()
    # the running projector notices the lost fill marker and replays both topics from offset 0
    wait_for(lambda: len(history(hub)) == 3, TIMEOUT, "the history refilled by the projector")
    assert_history_is_complete(hub)


def test_cache_rebuild_restores_the_history(hub: Hub, own_redis: RedisServer) -> None:
    hub.stop("projector")  # the rebuild alone must bring the history back
    try:
        own_redis.client.flushdb()
        assert hub.api_status(f"/v1/customer/golden/{GID}?version=1") == 404
        rebuilt = hub.cli("cache", "rebuild", "--entity", "customer")
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        assert "history entries" in rebuilt.stderr
        assert_history_is_complete(hub)
        assert hub.api(f"/v1/customer/golden/{GID}").json()["version"] == 3
    finally:
        hub.start("projector")
