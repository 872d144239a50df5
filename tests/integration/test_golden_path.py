"""The first golden path end to end, against real Kafka and Redis, with the hub's own processes.

A module of tests shares one hub (worker, projector, API) in a namespace of its own; every test uses
its own source keys. Redis for this module is a dedicated server, so one test can stop it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_py
from harness import Hub, wait_for

from conftest import free_ports
from mdhub.domain.identity import golden_id_for
from mdhub.domain.records import Op
from mdhub.kafka.lag import group_assignment
from mdhub.naming import Stage, group_name

pytestmark = pytest.mark.integration

TIMEOUT = 60
PROJECTED = (Stage.GOLDEN, Stage.CHANGES, Stage.REVIEW)


class RedisServer:
    """A redis-server of this module's own, so a test can take it away and bring it back empty."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_ports(1)[0]
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis_py.Redis.from_url(self.url, socket_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis_py.exceptions.ConnectionError:
                return False

        wait_for(answers, 20, "redis-server to answer")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
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
        # the worker is ready once a first record has come out golden through the API
        hub.publish([hub.change("warmup", 1, {"first_name": "Warm", "last_name": "Up"})])
        gid = golden_id_for("customer", "crm", "warmup")
        wait_for(
            lambda: hub.api_status(f"/v1/customer/golden/{gid}") == 200,
            120,
            "the warm-up record",
        )
        yield hub
    finally:
        hub.stop_all()


def golden_via_api(hub: Hub, source_key: str, version: int, source: str = "crm") -> dict:
    gid = golden_id_for("customer", source, source_key)

    def at_version() -> dict | None:
        if hub.api_status(f"/v1/customer/golden/{gid}") != 200:
            return None
        response = hub.api(f"/v1/customer/golden/{gid}")
        if response.status_code == 200 and response.json()["version"] >= version:
            return response.json()
        return None

    return wait_for(at_version, TIMEOUT, f"golden {source}:{source_key} at version {version}")


def changes_of(hub: Hub, golden_id: str) -> list[dict]:
    return [v for k, v in hub.read("customer", Stage.CHANGES) if k == golden_id]


def rejects_of(hub: Hub, key: str) -> list[dict]:
    return [v for k, v in hub.read("customer", Stage.REJECTED) if k == key]


def test_published_record_comes_out_golden_from_the_api(hub: Hub) -> None:
    hub.publish(
        [
            hub.change(
                "A-1",
                1,
                {"first_name": "  Grace ", "last_name": "Hopper", "email": "g@navy.example"},
            )
        ]
    )
    doc = golden_via_api(hub, "A-1", 1)
    assert doc["version"] == 1
    assert doc["status"] == "active"
    assert doc["attributes"]["first_name"] == "Grace"  # standardized: trimmed
    assert doc["attributes"]["email"] == "g@navy.example"
    assert doc["lineage"]["last_name"]["source"] == "crm"
    assert doc["lineage"]["last_name"]["source_key"] == "A-1"
    xref = hub.api("/v1/customer/xref/crm/A-1")
    assert xref.status_code == 200
    assert xref.json()["golden_id"] == doc["golden_id"] == golden_id_for("customer", "crm", "A-1")
    golden = [v for k, v in hub.read("customer", Stage.GOLDEN) if k == doc["golden_id"]]
    assert [g["version"] for g in golden] == [1]


def test_update_makes_version_2_with_a_change_event(hub: Hub) -> None:
    hub.publish(
        [
            hub.change("A-2", 1, {"first_name": "Alan", "last_name": "Turing", "city": "London"}),
            hub.change(
                "A-2",
                2,
                {
                    "first_name": "Alan",
                    "last_name": "Turing",
                    "city": "Manchester",
                    "phone": "+44 161 496 0000",
                },
            ),
        ]
    )
    doc = golden_via_api(hub, "A-2", 2)
    assert doc["attributes"]["city"] == "Manchester"
    events = changes_of(hub, doc["golden_id"])
    assert [e["version"] for e in events] == [1, 2]
    second = events[1]
    assert second["changed"] == ["phone", "city"]
    assert second["before"]["city"] == "London"
    assert second["after"]["city"] == "Manchester"
    assert second["before"]["phone"] is None
    assert second["after"]["phone"] == "+441614960000"  # standardized to E.164
    assert second["cause"]["kind"] == "source_change"
    assert second["cause"]["source_key"] == "A-2"


def test_identical_republish_makes_no_new_version(hub: Hub) -> None:
    first = hub.change("A-3", 1, {"first_name": "Ada", "last_name": "Byron"})
    hub.publish([first])
    golden_via_api(hub, "A-3", 1)
    # the very same change again, then the same values under a newer source version, then a real change
    same_values_newer = hub.change("A-3", 2, {"first_name": "Ada", "last_name": "Byron"})
    real_change = hub.change("A-3", 3, {"first_name": "Ada", "last_name": "Lovelace"})
    hub.publish([first, same_values_newer, real_change])
    doc = golden_via_api(hub, "A-3", 2)
    assert doc["attributes"]["last_name"] == "Lovelace"
    assert doc["version"] == 2
    assert [e["version"] for e in changes_of(hub, doc["golden_id"])] == [1, 2]
    assert rejects_of(hub, "crm:A-3") == []


def test_stale_version_is_rejected_and_the_worker_keeps_going(hub: Hub) -> None:
    stale = hub.change("A-4", 3, {"first_name": "Kath", "last_name": "Old"})
    hub.publish([hub.change("A-4", 5, {"first_name": "Katherine", "last_name": "Johnson"}), stale])
    wait_for(lambda: rejects_of(hub, "crm:A-4"), TIMEOUT, "the stale change on the rejected topic")
    doc = golden_via_api(hub, "A-4", 1)
    assert doc["attributes"]["last_name"] == "Johnson"
    (reject,) = rejects_of(hub, "crm:A-4")
    assert [r["code"] for r in reject["reasons"]] == ["STALE_SOURCE_VERSION"]
    assert reject["stage"] == "merge"
    assert reject["source_key"] == "A-4"
    assert reject["change_id"] == stale.change_id
    assert reject["value"] == hub.encode(stale)  # the original bytes, untouched
    assert reject["topic"] == hub.topic("customer", Stage.SOURCE)
    assert hub.alive("worker")


def test_undecodable_bytes_are_rejected_with_the_original_bytes(hub: Hub) -> None:
    garbage = b"\x00\x01 this is not avro \xff"
    hub.publish_raw("customer", b"crm:GARBAGE-1", garbage)
    hub.publish([hub.change("A-5", 1, {"first_name": "Hedy", "last_name": "Lamarr"})])
    (reject,) = wait_for(
        lambda: rejects_of(hub, "crm:GARBAGE-1"), TIMEOUT, "the garbage on the rejected topic"
    )
    assert reject["value"] == garbage
    assert reject["key"] == b"crm:GARBAGE-1"
    assert [r["code"] for r in reject["reasons"]] == ["UNDECODABLE"]
    assert isinstance(reject["offset"], int)
    golden_via_api(hub, "A-5", 1)  # processed after the garbage: the worker did not stop
    assert hub.alive("worker")


def test_inputs_travel_in_bundles_and_one_too_large_for_a_bundle_alone(hub: Hub) -> None:
    """The router forwards inputs to the resolve topic in bundles; an input larger than a bundle
    may hold goes alone with its coordinates in headers. The worker reads both: the large one is
    rejected with its original bytes and source coordinates, the small ones come out golden."""
    from confluent_kafka import Consumer

    from mdhub.errors import DecodeError
    from mdhub.kafka.reading import read_to_end, snapshot_ends
    from mdhub.stream.bundle import H_BUNDLE, MAX_BYTES, BundleCodec
    from mdhub.stream.router import H_OFFSET, H_TOPIC

    large = b"\x00" + bytes(range(256)) * (MAX_BYTES // 256 + 8)  # not Avro, and too large
    hub.publish([hub.change("BUNDLED-1", 1, {"first_name": "Grace", "last_name": "Hopper"})])
    hub.publish_raw("customer", b"crm:LARGE-1", large)
    hub.publish([hub.change("BUNDLED-2", 1, {"first_name": "Alan", "last_name": "Turing"})])
    (reject,) = wait_for(
        lambda: rejects_of(hub, "crm:LARGE-1"), TIMEOUT, "the large input on the rejected topic"
    )
    assert reject["value"] == large
    assert reject["topic"] == hub.topic("customer", Stage.SOURCE)
    assert [r["code"] for r in reject["reasons"]] == ["UNDECODABLE"]
    golden_via_api(hub, "BUNDLED-1", 1)
    golden_via_api(hub, "BUNDLED-2", 1)

    resolve = hub.topic("customer", Stage.RESOLVE)
    consumer = Consumer(
        {
            "bootstrap.servers": hub.settings.kafka.bootstrap_servers,
            "group.id": "bundle-reader",
            "enable.auto.commit": False,
            "broker.address.family": "v4",
        }
    )
    forwarded: list[tuple[dict[str, bytes], bytes | None]] = []
    try:
        snapshot = snapshot_ends(consumer, [resolve], timeout=10)
        read_to_end(
            consumer,
            snapshot,
            lambda batch: forwarded.extend((dict(m.headers() or ()), m.value()) for m in batch),
        )
    finally:
        consumer.close()
    singles = [(h, v) for h, v in forwarded if H_BUNDLE not in h]
    assert [v for _, v in singles] == [large]  # only the large input travelled alone
    assert singles[0][0][H_TOPIC] == hub.topic("customer", Stage.SOURCE).encode()
    assert int(singles[0][0][H_OFFSET]) == reject["offset"]
    codec = BundleCodec(hub.catalog)
    carried: dict[tuple[str, int, int], tuple[bytes | None, bytes | None]] = {}
    for headers, value in forwarded:
        if H_BUNDLE not in headers:
            continue
        try:
            inputs = codec.decode(value)
        except DecodeError:
            continue  # a foreign message a later test puts on the resolve topic on purpose
        assert int(headers[H_BUNDLE]) == len(inputs)  # the header counts what the bundle holds
        for m in inputs:
            carried[(m.topic, m.partition, m.offset)] = (m.key, m.value)
    assert carried
    # every input went through, bundled with its key and value untouched, except the large one
    published = hub.read_raw("customer", Stage.SOURCE) + hub.read_raw("customer", Stage.COMMANDS)
    assert carried == {
        (m.topic, m.partition, m.offset): (m.key, m.value) for m in published if m.value != large
    }


def test_a_bundle_that_does_not_decode_is_rejected_and_the_worker_goes_on(hub: Hub) -> None:
    """A message on the internal resolve topic marked as a bundle whose bytes are no bundle (a
    bug, or a foreign producer) lands on the rejected topic with its bytes; the worker goes on."""
    from mdhub.stream.bundle import H_BUNDLE

    resolve = hub.topic("customer", Stage.RESOLVE)
    garbage = b"\xc3\x01 not a bundle at all"
    hub.producer.produce(resolve, None, garbage, partition=0, headers=[(H_BUNDLE, b"3")])
    hub.producer.deliver_all(30)
    hub.publish([hub.change("AFTER-BAD-BUNDLE", 1, {"first_name": "Ada", "last_name": "King"})])

    def routed_rejects() -> list[dict]:
        return [v for _, v in hub.read("customer", Stage.REJECTED) if v["stage"] == "route"]

    (reject,) = wait_for(routed_rejects, TIMEOUT, "the bad bundle on the rejected topic")
    assert reject["value"] == garbage
    assert reject["topic"] == resolve
    assert reject["reasons"][0]["code"] in {"UNDECODABLE", "UNKNOWN_SCHEMA"}
    golden_via_api(hub, "AFTER-BAD-BUNDLE", 1)  # processed after it: the worker did not stop
    assert hub.alive("worker")


def test_rule_violations_are_all_collected(hub: Hub) -> None:
    hub.publish(
        [
            hub.change(
                "A-6",
                1,
                {"first_name": "X", "email": "Not-An-Email", "country": "Atlantis", "phone": "12"},
            )
        ]
    )
    (reject,) = wait_for(
        lambda: rejects_of(hub, "crm:A-6"), TIMEOUT, "the invalid change on the rejected topic"
    )
    codes = sorted((r["code"], r["attribute"]) for r in reject["reasons"])
    assert codes == [
        ("INVALID_PHONE", "phone"),
        ("PATTERN", "country"),
        ("PATTERN", "email"),
        ("REQUIRED", "last_name"),
        ("TOO_LONG", "country"),
        ("UNKNOWN_COUNTRY", "country"),
    ]


def test_source_delete_retires_the_golden_record(hub: Hub) -> None:
    hub.publish([hub.change("A-7", 1, {"first_name": "Tim", "last_name": "Berners-Lee"})])
    doc = golden_via_api(hub, "A-7", 1)
    hub.publish([hub.change("A-7", 2, op=Op.DELETE)])
    gid = doc["golden_id"]
    wait_for(
        lambda: hub.api_status(f"/v1/customer/golden/{gid}") == 404,
        TIMEOUT,
        "the retired record to leave the API",
    )
    events = changes_of(hub, gid)
    assert [(e["version"], e["status"]) for e in events] == [(1, "active"), (2, "retired")]
    golden = [v for k, v in hub.read("customer", Stage.GOLDEN) if k == gid]
    assert golden[-1] is None  # a tombstone closes the golden topic's history of the record
    assert golden[-2]["status"] == "retired"


def test_redis_outage_gives_503_and_rebuild_restores_every_view(
    hub: Hub, own_redis: RedisServer
) -> None:
    keys = [f"R-{i}" for i in range(30)]
    hub.publish([hub.change(k, 1, {"first_name": "Re", "last_name": f"Build{k}"}) for k in keys])
    hub.publish(
        [hub.change(k, 2, {"first_name": "Re", "last_name": f"Built{k}"}) for k in keys[:10]]
    )
    golden_via_api(hub, keys[0], 2)
    for k in keys:
        golden_via_api(hub, k, 2 if k in keys[:10] else 1)

    hub.stop("projector")  # so only the rebuild can bring the views back
    own_redis.stop()
    response = hub.api(f"/v1/customer/golden/{golden_id_for('customer', 'crm', keys[0])}")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 503
    assert "Retry-After" in response.headers
    assert hub.api("/healthz").status_code == 200

    own_redis.start()  # back, but empty: every view is gone
    gid0 = golden_id_for("customer", "crm", keys[0])
    wait_for(
        lambda: hub.api_status(f"/v1/customer/golden/{gid0}") == 404,
        TIMEOUT,
        "the API to see Redis again",
    )

    rebuilt = hub.cli("cache", "rebuild", "--entity", "customer")
    assert rebuilt.returncode == 0, rebuilt.stderr
    for k in keys:
        doc = hub.api(f"/v1/customer/golden/{golden_id_for('customer', 'crm', k)}").json()
        assert doc["version"] == (2 if k in keys[:10] else 1)
        assert doc["attributes"]["last_name"] == (f"Built{k}" if k in keys[:10] else f"Build{k}")
    hub.start("projector")


def test_cli_get_and_tail_show_the_golden_record(hub: Hub) -> None:
    hub.publish([hub.change("A-8", 1, {"first_name": "Radia", "last_name": "Perlman"})])
    doc = golden_via_api(hub, "A-8", 1)
    by_id = hub.cli("get", "customer", doc["golden_id"])
    assert by_id.returncode == 0, by_id.stderr
    assert '"Perlman"' in by_id.stdout
    by_key = hub.cli("get", "customer", "--source", "crm", "--key", "A-8")
    assert by_key.returncode == 0 and doc["golden_id"] in by_key.stdout
    tail = hub.cli("tail", "--entity", "customer", "--from-beginning", "--idle-timeout", "3")
    assert tail.returncode == 0, tail.stderr
    assert any(
        doc["golden_id"] in line and '"Perlman"' in line for line in tail.stdout.splitlines()
    )


def test_projector_refills_the_views_after_redis_is_flushed(
    hub: Hub, own_redis: RedisServer
) -> None:
    hub.publish([hub.change("F-1", 1, {"first_name": "Flush", "last_name": "Ed"})])
    hub.publish([hub.change("F-1", 2, {"first_name": "Flush", "last_name": "Edd"})])
    doc = golden_via_api(hub, "F-1", 2)
    redis_py.Redis.from_url(own_redis.url).flushdb()
    assert hub.api_status(f"/v1/customer/golden/{doc['golden_id']}") == 404
    back = golden_via_api(
        hub, "F-1", 2
    )  # the running projector notices and replays the golden topic
    assert back["attributes"]["last_name"] == "Edd"
    assert back["version"] == 2


def test_two_projectors_both_refill_their_partitions_after_a_flush(
    hub: Hub, own_redis: RedisServer
) -> None:
    group = group_name(hub.namespace, "projector")
    topics = [hub.topic(e, s) for e in hub.model.entities for s in PROJECTED]
    hub.start("projector-2")
    try:
        wait_for(
            lambda: (
                group_assignment(hub.settings.kafka, group, None) == ("STABLE", 2, 2 * len(topics))
            ),
            TIMEOUT,
            "two projectors sharing the partitions",
        )
        keys = [f"TP-{i}" for i in range(8)]
        hub.publish([hub.change(key, 1, {"first_name": "Two", "last_name": key}) for key in keys])
        docs = [golden_via_api(hub, key, 1) for key in keys]
        ids = {doc["golden_id"] for doc in docs}
        partitions = {
            m.partition
            for m in hub.read_raw("customer", Stage.GOLDEN)
            if m.key is not None and m.key.decode() in ids
        }
        assert partitions == {0, 1}, "the records must lie in both projectors' partitions"
        redis_py.Redis.from_url(own_redis.url).flushdb()
        for key, doc in zip(keys, docs, strict=True):
            back = golden_via_api(hub, key, 1)  # refilled by whichever projector has its partition
            assert back["golden_id"] == doc["golden_id"]
            assert back["attributes"]["last_name"] == key
        assert hub.alive("projector") and hub.alive("projector-2")
    finally:
        hub.stop("projector-2")


def test_cli_publish_checks_the_whole_file_then_sends(hub: Hub, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"source_key": "P-1", "first_name": "Ok", "last_name": "Fine"}\n'
        '{"source_key": "P-2", "first_name": "Bad", "birth_date": "31/12/1980"}\n'
        "not json\n"
    )
    refused = hub.cli("publish", "--entity", "customer", "--source", "crm", str(bad))
    assert refused.returncode == 1
    assert "line 2" in refused.stderr and "birth_date" in refused.stderr
    assert "line 3" in refused.stderr
    assert "nothing was sent" in refused.stderr

    good = tmp_path / "good.csv"
    good.write_text(
        "source_key,first_name,last_name,tags\nP-10,Csv,Person,a|b\nP-11,Other,Person,\n"
    )
    sent = hub.cli("publish", "--entity", "customer", "--source", "erp", str(good))
    assert sent.returncode == 0, sent.stderr
    assert "sent 2" in sent.stderr
    doc = golden_via_api(hub, "P-10", 1, source="erp")
    assert doc["attributes"]["tags"] == ["a", "b"]
    golden_via_api(hub, "P-11", 1, source="erp")
    assert not [k for k, _ in hub.read("customer", Stage.SOURCE) if k in ("crm:P-1", "crm:P-2")]


def test_worker_restart_without_local_state_recovers_it_from_kafka(hub: Hub) -> None:
    hub.publish([hub.change("S-1", 1, {"first_name": "State", "last_name": "Full"})])
    golden_via_api(hub, "S-1", 1)
    hub.stop("worker")
    shutil.rmtree(hub.workdir / "worker")  # the RocksDB copy is gone: only the state topic remains
    hub.start("worker")
    hub.publish(
        [
            hub.change("S-1", 1, {"first_name": "State", "last_name": "Full"}),  # a duplicate
            hub.change("S-1", 2, {"first_name": "State", "last_name": "Fuller"}),
        ]
    )
    doc = golden_via_api(hub, "S-1", 2)
    assert doc["attributes"]["last_name"] == "Fuller"
    assert doc["created_at"] == "2026-01-01T01:00:00Z"  # created by version 1, known from the state
    assert [e["version"] for e in changes_of(hub, doc["golden_id"])] == [1, 2]


def test_every_input_of_a_burst_is_accounted_for_and_matches_the_domain_oracle(hub: Hub) -> None:
    """2,000 changes in bursts (updates, duplicates, stale versions): the golden topic ends exactly
    where the pure domain says, and every input is accepted, unchanged or rejected."""
    import random

    rng = random.Random(7)
    changes = []
    for i in range(500):
        for version in rng.sample(range(1, 6), 4):  # out of order on purpose: some become stale
            name = rng.choice(["Ann", "Bob", "Cy"])
            changes.append(
                hub.change(f"B-{i}", version, {"first_name": name, "last_name": f"L{i}"})
            )
    hub.publish(changes)
    wait_for(lambda: hub.processed("customer"), TIMEOUT, "the worker to process the burst")

    # the oracle: the pure pipeline over the same inputs, in the router's order
    stage = hub.oracle("customer")
    oracle = {
        gid: golden
        for gid, golden in stage.goldens().items()
        if any(s.source_key.startswith("B-") for s in golden.sources)
    }
    expected_rejects = sum(
        1
        for out in stage.outputs
        if out.topic == hub.topic("customer", Stage.REJECTED)
        and out.key is not None
        and out.key.startswith(b"crm:B-")
    )
    assert expected_rejects > 0  # the out-of-order versions made some stale
    latest: dict[str, dict] = {}
    for key, value in hub.read("customer", Stage.GOLDEN):
        if key in oracle and value is not None:
            latest[key] = value
    assert set(latest) == set(oracle)
    for gid, golden in oracle.items():
        assert latest[gid]["version"] == golden.version
        assert latest[gid]["attributes"]["first_name"] == golden.attributes["first_name"]
    rejects = [v for k, v in hub.read("customer", Stage.REJECTED) if k and k.startswith("crm:B-")]
    assert len(rejects) == expected_rejects
    assert {r["reasons"][0]["code"] for r in rejects} <= {"STALE_SOURCE_VERSION"}
    versions = [v["version"] for k, v in hub.read("customer", Stage.CHANGES) if k in oracle]
    assert len(versions) == sum(g.version for g in oracle.values())  # one event per version

    reconciled = hub.cli("reconcile", "--entity", "customer", "--json")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    partitions = json.loads(reconciled.stdout)
    assert all(p["ok"] for p in partitions)
    assert sum(p["consumed"] for p in partitions) == sum(p["log_end"] for p in partitions)
    assert sum(p["rejected"] for p in partitions) >= expected_rejects


def test_worker_serves_prometheus_metrics(hub: Hub) -> None:
    import re

    import httpx

    hub.publish_raw("customer", b"crm:M-GARBAGE", b"not avro at all")
    hub.publish([hub.change("M-1", 1, {"first_name": "Met", "last_name": "Rics"})])
    golden_via_api(hub, "M-1", 1)
    found = wait_for(
        lambda: re.findall(r"worker metrics on http://0\.0\.0\.0:(\d+)/metrics", hub.log("worker")),
        TIMEOUT,
        "the worker to announce its metrics port",
    )
    port = int(found[-1])  # the running worker's (an earlier test restarted it)

    def scrape() -> str | None:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        return text if 'reason="UNDECODABLE"' in text else None

    text = wait_for(scrape, TIMEOUT, "the rejected reason in the metrics")
    accepted = re.search(
        r'mdhub_worker_outcome_messages_total\{entity="customer",outcome="accepted"\} (\S+)', text
    )
    assert accepted is not None and float(accepted.group(1)) >= 1
    assert re.search(
        r'mdhub_worker_rejected_reasons_total\{entity="customer",reason="UNDECODABLE"\} [1-9]', text
    )
    assert re.search(r"mdhub_worker_assigned_partitions (\S+)", text).group(1) != "0.0"  # type: ignore[union-attr]
    assert "mdhub_worker_batch_seconds_bucket" in text
    assert "golden_id" not in text  # labels stay bounded


def test_phone_numbers_are_parsed_ahead_by_the_workers_helper(hub: Hub) -> None:
    """A burst of records with new phone numbers: the worker's helper process parses them and
    computes the records' match keys ahead of the agent (``mdhub.stream.ahead``), the metrics say
    so, and every golden record holds its number in E.164 form, as without the helper."""
    import re

    import httpx

    count = 300
    hub.publish(
        [
            hub.change(
                f"T-{i}",
                1,
                {
                    "first_name": f"Tel{i}",
                    "last_name": f"Ahead{i}",
                    "email": f"tel{i}@ahead.example",
                    "phone": f"+49 30 555 {i:04d}",
                },
            )
            for i in range(count)
        ]
    )
    for i in (0, count // 2, count - 1):
        doc = golden_via_api(hub, f"T-{i}", 1)
        assert doc["attributes"]["phone"] == f"+4930555{i:04d}"
    port = int(
        wait_for(
            lambda: re.findall(
                r"worker metrics on http://0\.0\.0\.0:(\d+)/metrics", hub.log("worker")
            ),
            TIMEOUT,
            "the worker to announce its metrics port",
        )[-1]
    )

    def ahead() -> tuple[float, float] | None:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        counts = [
            re.search(rf'mdhub_worker_{name}_total\{{where="ahead"\}} (\S+)', text)
            for name in ("phone_numbers", "match_keys")
        ]
        found = tuple(float(c.group(1)) if c else 0.0 for c in counts)
        return found if all(found) else None  # type: ignore[return-value]

    phones, keys = wait_for(ahead, TIMEOUT, "phone numbers and match keys prepared ahead")
    assert phones >= 1 and keys >= 1


def test_steward_override_and_erase_through_the_commands_topic(hub: Hub) -> None:
    hub.publish(
        [hub.change("ST-1", 1, {"first_name": "Pin", "last_name": "Ned", "loyalty_tier": "silver"})]
    )
    doc = golden_via_api(hub, "ST-1", 1)
    gid = doc["golden_id"]

    pinned = hub.cli(
        "steward", "override", "customer", gid, "loyalty_tier", "gold", "--reason", "VIP"
    )
    assert pinned.returncode == 0, pinned.stderr
    doc = golden_via_api(hub, "ST-1", 2)
    assert doc["attributes"]["loyalty_tier"] == "gold"
    assert doc["lineage"]["loyalty_tier"]["source"] == "steward"
    assert doc["lineage"]["loyalty_tier"]["rule"] == "steward_override"
    hub.publish(
        [hub.change("ST-1", 2, {"first_name": "Pin", "last_name": "Ned", "loyalty_tier": "bronze"})]
    )
    assert golden_via_api(hub, "ST-1", 2)["attributes"]["loyalty_tier"] == "gold"  # the pin holds

    refused = hub.cli("steward", "override", "customer", gid, "loyalty_tier", "diamond")
    assert refused.returncode == 0  # sent; the worker refuses it with reasons on the rejected topic
    rejected = wait_for(
        lambda: [
            v for k, v in hub.read("customer", Stage.REJECTED) if v and v.get("stage") == "steward"
        ],
        TIMEOUT,
        "the refused command on the rejected topic",
    )
    assert [r["code"] for r in rejected[-1]["reasons"]] == ["NOT_ALLOWED"]

    erased = hub.cli("steward", "erase", "customer", gid, "--reason", "GDPR request")
    assert erased.returncode == 0, erased.stderr
    wait_for(
        lambda: hub.api_status(f"/v1/customer/golden/{gid}") == 404,
        TIMEOUT,
        "the erased record to leave the API",
    )
    assert hub.api_status("/v1/customer/xref/crm/ST-1") == 404
    events = changes_of(hub, gid)
    last = events[-1]
    assert last["status"] == "erased" and last["changed"] == []
    assert all(v is None for v in last["after"].values()) and all(
        v is None for v in last["before"].values()
    )
    assert last["cause"]["kind"] == "steward_command"

    def erased_history() -> list | None:
        page = hub.api(f"/v1/customer/golden/{gid}/history")
        items = page.json()["items"] if page.status_code == 200 else []
        return items if items and items[0]["status"] == "erased" else None

    history = wait_for(erased_history, TIMEOUT, "the history view to keep only the erasure")
    assert [(h["version"], h["status"]) for h in history] == [(last["version"], "erased")]
    golden = [v for k, v in hub.read("customer", Stage.GOLDEN) if k == gid]
    assert golden[-1] is None  # tombstone
    assert golden[-2]["status"] == "erased" and golden[-2]["sources"] == []
    assert all(v is None for v in golden[-2]["attributes"].values())
