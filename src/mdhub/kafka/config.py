"""librdkafka (confluent-kafka) client configs, generated from the one settings tree."""

from __future__ import annotations

from typing import Any

from mdhub.settings import KafkaSettings

__all__ = ["FLUSHED_LINGER_MS", "admin_config", "consumer_config", "producer_config"]


def _common(kafka: KafkaSettings) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "security.protocol": kafka.security_protocol,
        # librdkafka may try ::1 for "localhost"; the stack advertises 127.0.0.1
        "broker.address.family": "v4",
        # warnings such as "coordinator load in progress: retrying" are retried by the client
        # itself; show errors only (override with MDHUB_KAFKA__EXTRA='{"log_level": "6"}')
        "log_level": 3,
        # after a broker restart, re-bootstrap instead of waiting on stale metadata (a worker was
        # seen stuck in flush for minutes without it)
        "metadata.recovery.rebootstrap.trigger.ms": 10_000,
    }
    if kafka.sasl_mechanism:
        conf["sasl.mechanism"] = kafka.sasl_mechanism
    if kafka.sasl_username:
        conf["sasl.username"] = kafka.sasl_username
    if kafka.sasl_password is not None:
        conf["sasl.password"] = kafka.sasl_password.get_secret_value()
    return conf


FLUSHED_LINGER_MS = 100
"""``linger.ms`` of producers that flush after every batch (the worker's). With the default of 5 ms
the worker's producer sent a produce request per partition every 5 ms while a batch was being
computed, ~720 requests/s at ~1,300 changes/s, which cost the broker more than the data. At
1,000 ms nothing was sent before the flush, so the worker waited for a whole batch's outputs
(~80 ms a batch of ~1,700 inputs); with 100 ms most of them are in Kafka by then. Measured with
``mdhub evaluate --people 10000`` (2 runs each): 1,727 and 1,752 messages/s at 1,000 ms, 1,888 and
1,925 at 100 ms; ``make bench`` (no latency phase) was unchanged, 1,347 against 1,377 changes/s
with the broker at 14.5 and 15.2 CPU s."""


def producer_config(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """An idempotent, ``acks=all`` producer that partitions like the Java client (murmur2)."""
    conf = {
        **_common(kafka),
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.timeout.ms": 300_000,
        "queue.buffering.max.messages": 500_000,
    }
    conf.update(kafka.extra)
    conf.update(overrides)
    return conf


def consumer_config(kafka: KafkaSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """An at-least-once consumer: offsets are stored only after the side effects are done."""
    conf = {
        **_common(kafka),
        "group.id": group_id,
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    conf.update(kafka.extra)
    conf.update(overrides)
    return conf


def admin_config(kafka: KafkaSettings) -> dict[str, Any]:
    """An admin client."""
    return {**_common(kafka), **kafka.extra}
