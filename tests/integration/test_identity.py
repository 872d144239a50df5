"""Identity resolution and stewardship against real Kafka and Redis, through the API and the CLI.

Duplicates across sources become one golden record; a record that bridges two golden records merges
them and the loser redirects; the review queue fills and empties through the API; an explanation
names the comparators that decided; and a steward split and a "not a match" survive a full replay
of the source and commands topics into an empty hub, which ends with the same golden ids and
records.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from harness import Hub, wait_for

from conftest import free_ports
from mdhub.naming import Stage

pytestmark = pytest.mark.integration

TIMEOUT = 90


@pytest.fixture(scope="module")
def hub(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hub]:
    (api_port,) = free_ports(1)
    hub = Hub(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("identity"), api_port)
    hub.ensure_topics()
    hub.start("worker", "projector", "api")
    try:
        wait_for(lambda: hub.api_status("/healthz") == 200, 60, "the API")
        yield hub
    finally:
        hub.stop_all()


def person(**attrs: Any) -> dict[str, Any]:
    return attrs


def xref(hub: Hub, ref: str) -> str | None:
    source, key = ref.split(":")
    response = hub.api(f"/v1/customer/xref/{source}/{key}")
    return response.json()["golden_id"] if response.status_code == 200 else None


def wait_xrefs(hub: Hub, *refs: str) -> dict[str, str]:
    def found() -> dict[str, str] | None:
        ids = {ref: xref(hub, ref) for ref in refs}
        return ids if all(ids.values()) else None  # type: ignore[return-value]

    return wait_for(found, TIMEOUT, f"xrefs of {refs}")


def publish(hub: Hub, ref: str, version: int, attrs: dict[str, Any]) -> None:
    source, key = ref.split(":")
    hub.publish([hub.change(key, version, attrs, source=source)])


def test_duplicates_across_sources_become_one_golden_record_and_explain_why(hub: Hub) -> None:
    publish(
        hub,
        "crm:DUP-1",
        1,
        person(
            first_name="Robert",
            last_name="Kowalski",
            email="robert.kowalski@example.com",
            birth_date="1971-04-09",
        ),
    )
    wait_xrefs(hub, "crm:DUP-1")
    publish(
        hub,
        "erp:DUP-2",
        1,
        person(first_name="Bob", last_name="Kowalski", birth_date="1971-09-04", street="5 Elm St"),
    )
    publish(
        hub,
        "webshop:DUP-3",
        1,
        person(first_name="Robert", last_name="Kowalsky", email="Robert.Kowalski@example.com"),
    )
    ids = wait_for(
        lambda: (lambda got: got if len(set(got.values())) == 1 else None)(
            wait_xrefs(hub, "crm:DUP-1", "erp:DUP-2", "webshop:DUP-3")
        ),
        TIMEOUT,
        "the three source records to share one golden record",
    )
    golden_id = ids["crm:DUP-1"]
    doc = hub.api(f"/v1/customer/golden/{golden_id}").json()
    assert sorted(s["source"] for s in doc["sources"]) == ["crm", "erp", "webshop"]
    assert doc["attributes"]["street"] == "5 Elm St"  # only the ERP knows it

    explain = hub.api(f"/v1/customer/golden/{golden_id}/explain")
    assert explain.status_code == 200
    body = explain.json()
    items = {f"{i['source']}:{i['source_key']}": i for i in body["sources"]}
    erp = items["erp:DUP-2"]
    assert erp["method"] == "matched" and erp["score"] >= 12
    contributions = {c["attribute"]: c for c in erp["contributions"]}
    assert contributions["first_name"]["detail"] == "nickname"
    assert contributions["birth_date"]["detail"] == "swapped day/month"
    assert "first_name" in erp["reason"]
    assert items["crm:DUP-1"]["method"] == "created"

    cli = hub.cli("explain", "customer", golden_id)
    assert cli.returncode == 0, cli.stderr
    assert "nickname" in cli.stdout and "erp" in cli.stdout


def test_a_bridging_record_merges_two_golden_records_and_the_loser_redirects(hub: Hub) -> None:
    publish(hub, "crm:BR-1", 1, person(first_name="Ines", last_name="Okafor", email="io@a.example"))
    publish(hub, "erp:BR-2", 1, person(first_name="Ines", last_name="Okafor", phone="+4930123456"))
    before = wait_xrefs(hub, "crm:BR-1", "erp:BR-2")
    assert before["crm:BR-1"] != before["erp:BR-2"]  # names alone do not match

    publish(
        hub,
        "webshop:BR-3",
        1,
        person(first_name="Ines", last_name="Okafor", email="io@a.example", phone="+4930123456"),
    )
    after = wait_for(
        lambda: (lambda got: got if len(set(got.values())) == 1 else None)(
            wait_xrefs(hub, "crm:BR-1", "erp:BR-2", "webshop:BR-3")
        ),
        TIMEOUT,
        "the bridge to merge the two golden records",
    )
    survivor = after["crm:BR-1"]
    loser = ({before["crm:BR-1"], before["erp:BR-2"]} - {survivor}).pop()
    response = hub.api(f"/v1/customer/golden/{loser}")
    assert response.status_code == 200
    doc = response.json()
    assert doc["golden_id"] == survivor and doc["redirected_from"] == loser
    assert response.headers["content-location"].endswith(f"/golden/{survivor}")
    statuses = [v["status"] for k, v in hub.read("customer", Stage.CHANGES) if k == loser]
    assert statuses[-1] == "merged"


def test_the_review_queue_fills_and_empties_through_the_api(hub: Hub) -> None:
    base = person(
        first_name="Grace", last_name="Brewster", email="gb@navy.example", birth_date="1906-12-09"
    )
    publish(hub, "crm:RV-1", 1, base)
    wait_xrefs(hub, "crm:RV-1")
    refs = ("webshop:RV-2", "erp:RV-3")

    def open_items() -> list[dict[str, Any]]:
        page = hub.api("/v1/customer/review?limit=500").json()
        return [i for i in page["items"] if i["ref"] in refs]

    publish(hub, "webshop:RV-2", 1, person(first_name="Grace", last_name="Brewster"))
    # inputs published within one millisecond on different partitions are ordered by partition:
    # wait, so that RV-3 is certainly the later one
    wait_for(open_items, TIMEOUT, "the first potential match")
    publish(hub, "erp:RV-3", 1, person(first_name="Grace", last_name="Brewster", city="Arlington"))

    # RV-2 and RV-3 are each proposed with RV-1; RV-3 also with RV-2 (all three: names only)
    items = wait_for(
        lambda: (lambda got: got if len(got) == 3 else None)(open_items()),
        TIMEOUT,
        "three open reviews",
    )
    pairs = [(i["ref"], i["candidate_ref"]) for i in items]
    assert pairs[0] == ("webshop:RV-2", "crm:RV-1")  # oldest first
    assert set(pairs[1:]) == {("erp:RV-3", "crm:RV-1"), ("erp:RV-3", "webshop:RV-2")}
    assert all(6 <= i["score"] < 12 for i in items)
    api = f"http://127.0.0.1:{hub.api_port}/v1/customer/review"
    decisions = [("accept", items[0]), ("reject", items[1]), ("reject", items[2])]
    for verb, item in decisions:
        response = httpx.post(
            f"{api}/{item['pair_id']}/{verb}", json={"by": "steward-1"}, timeout=10
        )
        assert response.status_code == 202, response.text
    wait_for(lambda: not open_items(), TIMEOUT, "the review queue to empty")
    again = httpx.post(f"{api}/{items[0]['pair_id']}/reject", json={}, timeout=10)
    assert again.status_code == 409  # already decided
    ids = wait_for(
        lambda: (lambda got: got if got["webshop:RV-2"] == got["crm:RV-1"] else None)(
            wait_xrefs(hub, "crm:RV-1", "webshop:RV-2", "erp:RV-3")
        ),
        TIMEOUT,
        "the accepted pair to be linked",
    )
    assert ids["erp:RV-3"] != ids["crm:RV-1"]
    # not a match stays: even with the same e-mail and birth date the rejected record stays apart
    publish(hub, "erp:RV-3", 2, {**base, "city": "Arlington"})
    time.sleep(3)
    wait_for(lambda: hub.processed("customer"), TIMEOUT, "the update to be processed")
    assert xref(hub, "erp:RV-3") != xref(hub, "crm:RV-1")


def _copy_inputs(source: Hub, target: Hub) -> int:
    """Copy the source and commands topics into ``target`` with their partitions and broker times
    (the target's input topics keep producer times, like a mirror), so its router sees the same
    order."""
    admin = AdminClient({"bootstrap.servers": target.settings.kafka.bootstrap_servers})
    resources = []
    for stage in (Stage.SOURCE, Stage.COMMANDS):
        resource = ConfigResource(ConfigResource.Type.TOPIC, target.topic("customer", stage))
        resource.add_incremental_config(
            ConfigEntry(
                "message.timestamp.type", "CreateTime", incremental_operation=AlterConfigOpType.SET
            )
        )
        resources.append(resource)
    for future in admin.incremental_alter_configs(resources).values():
        future.result(timeout=30)

    def applied() -> bool:  # the brokers apply topic configs asynchronously
        described = admin.describe_configs(
            [ConfigResource(ConfigResource.Type.TOPIC, r.name) for r in resources]
        )
        return all(
            f.result(timeout=30)["message.timestamp.type"].value == "CreateTime"
            for f in described.values()
        )

    wait_for(applied, 30, "the input topics to keep producer timestamps")
    time.sleep(1.0)  # every broker thread has the new config, not just the metadata
    copied = 0
    producer = target.producer._producer  # the raw confluent producer: partition and timestamp
    for stage in (Stage.SOURCE, Stage.COMMANDS):
        for msg in source.read_raw("customer", stage):
            producer.produce(
                target.topic("customer", stage),
                key=msg.key,
                value=msg.value,
                partition=msg.partition,
                timestamp=msg.timestamp_ms,
            )
            copied += 1
    assert producer.flush(30) == 0
    for stage in (Stage.SOURCE, Stage.COMMANDS):
        want = sorted(
            (m.partition, m.offset, m.timestamp_ms) for m in source.read_raw("customer", stage)
        )
        got = sorted(
            (m.partition, m.offset, m.timestamp_ms) for m in target.read_raw("customer", stage)
        )
        assert got == want, f"the copy of the {stage} topic did not keep partitions and timestamps"
    return copied


def test_split_and_not_a_match_survive_a_full_replay_into_an_empty_hub(
    hub: Hub, kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    same = person(
        first_name="Oskar", last_name="Lindqvist", email="oskar@l.example", birth_date="1988-02-29"
    )
    publish(hub, "crm:SP-1", 1, same)
    wait_xrefs(hub, "crm:SP-1")
    publish(hub, "erp:SP-2", 1, {**same, "street": "Storgatan 1"})
    publish(hub, "webshop:SP-3", 1, {**same, "tags": ["newsletter"]})
    ids = wait_for(
        lambda: (lambda got: got if len(set(got.values())) == 1 else None)(
            wait_xrefs(hub, "crm:SP-1", "erp:SP-2", "webshop:SP-3")
        ),
        TIMEOUT,
        "one golden record",
    )
    golden_id = ids["crm:SP-1"]
    split = hub.cli("steward", "split", "customer", golden_id, "webshop:SP-3", "--by", "s1")
    assert split.returncode == 0, split.stdout + split.stderr
    apart = hub.cli("steward", "not-match", "customer", "crm:SP-1", "erp:SP-2")
    assert apart.returncode == 0, apart.stdout + apart.stderr
    wait_for(
        lambda: len(set(wait_xrefs(hub, "crm:SP-1", "erp:SP-2", "webshop:SP-3").values())) == 3,
        TIMEOUT,
        "three golden records after the split and the not-a-match",
    )
    # later updates of the same people do not bring them together again
    publish(hub, "webshop:SP-3", 2, {**same, "phone": "+46701234567"})
    publish(hub, "erp:SP-2", 2, {**same, "street": "Storgatan 2"})
    wait_for(lambda: hub.processed("customer"), TIMEOUT, "the updates to be processed")
    final = wait_xrefs(hub, "crm:SP-1", "erp:SP-2", "webshop:SP-3")
    assert len(set(final.values())) == 3 and final["crm:SP-1"] == golden_id

    # replay every input of this hub into an empty one
    (api_port,) = free_ports(1)
    replay = Hub(kafka_bootstrap, redis_url, tmp_path, api_port)
    replay.ensure_topics()
    copied = _copy_inputs(hub, replay)
    replay.start("worker")
    try:
        wait_for(lambda: replay.processed("customer"), 180, f"the replay of {copied} inputs")
    finally:
        replay.stop_all()

    def latest(h: Hub) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in h.read("customer", Stage.GOLDEN):
            out[key] = value
        return {k: v for k, v in out.items() if v is not None}

    original, replayed = latest(hub), latest(replay)
    assert set(replayed) == set(original)
    different = [k for k in original if original[k] != replayed[k]]
    assert not different, f"{len(different)} golden records differ, e.g. {different[:3]}"
    # the split and the not-a-match are there, with the same ids
    for ref, gid in final.items():
        source, key = ref.split(":")
        assert any(
            s["source"] == source and s["source_key"] == key and not s["deleted"]
            for s in replayed[gid]["sources"]
        )
