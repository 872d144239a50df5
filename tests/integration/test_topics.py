"""`mdhub topics ensure` against real Kafka: creates the registry with its configs, idempotently,
and reports drift of existing topics without altering them."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from harness import ROOT

from mdhub.kafka.admin import ensure_topics
from mdhub.modelfile import load_model
from mdhub.naming import Stage, topic_name
from mdhub.settings import KafkaSettings
from mdhub.topology import topic_specs

pytestmark = pytest.mark.integration


def _configs(admin: AdminClient, topic: str) -> dict[str, str]:
    (future,) = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    return {k: v.value for k, v in future.result().items()}


def test_ensure_creates_every_topic_with_its_configs_then_is_idempotent(
    kafka_bootstrap: str,
) -> None:
    ns = "t" + uuid.uuid4().hex[:10]
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=3)
    model = load_model(ROOT / "config" / "model.yaml")
    specs = topic_specs(model, ns, 3, 1)
    first = ensure_topics(kafka, specs)
    assert {r.action for r in first} == {"created"}
    assert len(first) == len(model.entities) * len(Stage)

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    meta = admin.list_topics(timeout=10)
    golden = topic_name(ns, "customer", Stage.GOLDEN)
    assert len(meta.topics[golden].partitions) == 3
    golden_conf = _configs(admin, golden)
    assert golden_conf["cleanup.policy"] == "compact"
    assert golden_conf["min.compaction.lag.ms"] == "3600000"
    assert golden_conf["delete.retention.ms"] == "604800000"
    source_conf = _configs(admin, topic_name(ns, "customer", Stage.SOURCE))
    assert source_conf["cleanup.policy"] == "delete"
    assert source_conf["retention.ms"] == "-1"
    assert _configs(admin, topic_name(ns, "customer", Stage.CHANGES))["retention.ms"] == "-1"

    second = ensure_topics(kafka, specs)
    assert {r.action for r in second} == {"exists"}


def test_ensure_reports_drift_and_leaves_the_topic_alone(kafka_bootstrap: str) -> None:
    ns = "t" + uuid.uuid4().hex[:10]
    golden = topic_name(ns, "customer", Stage.GOLDEN)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(golden, 1, 1, config={"cleanup.policy": "delete"})])[
        golden
    ].result()
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=2)
    model = load_model(ROOT / "config" / "model.yaml")
    reports = {r.name: r for r in ensure_topics(kafka, topic_specs(model, ns, 2, 1))}
    drift = reports[golden]
    assert drift.action == "drift"
    assert "partitions 1 (expected 2)" in drift.drift
    assert "cleanup.policy=delete (expected compact)" in drift.drift
    assert _configs(admin, golden)["cleanup.policy"] == "delete"
    assert reports[topic_name(ns, "customer", Stage.SOURCE)].action == "created"
