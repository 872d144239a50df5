"""Kafka chores of the benchmarks: scratch topics, message counts, consumer-group lag."""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextlib import suppress

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from mdhub.kafka.config import admin_config, consumer_config
from mdhub.settings import KafkaSettings

__all__ = [
    "committed_lag",
    "create_topics",
    "delete_topics",
    "end_offsets",
    "message_count",
    "wait_for_lag_zero",
]


def create_topics(kafka: KafkaSettings, names: Iterable[str], partitions: int) -> None:
    """Create plain (delete-policy) topics; existing ones are left alone."""
    admin = AdminClient(admin_config(kafka))
    futures = admin.create_topics(
        [NewTopic(name, partitions, kafka.replication_factor) for name in names],
        request_timeout=kafka.request_timeout_s,
    )
    for fut in futures.values():
        try:
            fut.result()
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise


def delete_topics(kafka: KafkaSettings, prefix: str) -> list[str]:
    """Delete every topic whose name starts with ``prefix``; return their names."""
    admin = AdminClient(admin_config(kafka))
    names = [
        t for t in admin.list_topics(timeout=kafka.request_timeout_s).topics if t.startswith(prefix)
    ]
    if names:
        for fut in admin.delete_topics(names, request_timeout=kafka.request_timeout_s).values():
            # best effort: a scratch topic left behind is only disk space
            with suppress(KafkaException):
                fut.result()
    return names


def _probe(kafka: KafkaSettings) -> Consumer:
    # A consumer that never subscribes: only metadata, watermark and committed-offset requests.
    return Consumer(consumer_config(kafka, "mdhub-bench-probe", **{"enable.auto.commit": False}))


def end_offsets(kafka: KafkaSettings, topic: str) -> dict[int, tuple[int, int]]:
    """Return ``{partition: (low, high)}`` watermarks of ``topic``."""
    consumer = _probe(kafka)
    try:
        meta = consumer.list_topics(topic, timeout=kafka.request_timeout_s)
        return {
            p: consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=kafka.request_timeout_s
            )
            for p in meta.topics[topic].partitions
        }
    finally:
        consumer.close()


def message_count(kafka: KafkaSettings, topic: str) -> int:
    """Messages currently in ``topic`` (high minus low watermark, summed over partitions)."""
    return sum(high - low for low, high in end_offsets(kafka, topic).values())


def committed_lag(kafka: KafkaSettings, group: str, topic: str) -> int:
    """Messages of ``topic`` that ``group`` has not committed yet (a partition never committed
    counts from its low watermark)."""
    ends = end_offsets(kafka, topic)
    consumer = Consumer(consumer_config(kafka, group, **{"enable.auto.commit": False}))
    try:
        committed = consumer.committed(
            [TopicPartition(topic, p) for p in ends], timeout=kafka.request_timeout_s
        )
    finally:
        consumer.close()
    lag = 0
    for tp in committed:
        low, high = ends[tp.partition]
        lag += high - (tp.offset if tp.offset >= 0 else low)
    return lag


def wait_for_lag_zero(kafka: KafkaSettings, group: str, topic: str, timeout_s: float) -> int:
    """Wait until ``group`` has committed all of ``topic`` (commits are periodic); return the lag
    last seen (0 on success)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lag = committed_lag(kafka, group, topic)
        if lag == 0 or time.monotonic() > deadline:
            return lag
        time.sleep(0.5)
