"""Consumer-group lag from Kafka's admin API: committed offsets against the log end."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from mdhub.errors import KafkaUnavailableError
from mdhub.kafka.config import admin_config, consumer_config
from mdhub.settings import KafkaSettings

__all__ = ["group_lag"]


def group_lag(
    kafka: KafkaSettings, group: str, topics: Sequence[str]
) -> dict[tuple[str, int], int]:
    """Return ``{(topic, partition): lag}`` of ``group`` on ``topics``.

    A partition the group never committed counts its whole log (from the low watermark) as lag.

    Raises:
        KafkaUnavailableError: Kafka cannot be reached.
    """
    admin = AdminClient(admin_config(kafka))
    probe = Consumer(consumer_config(kafka, group + "-lag-probe"))
    try:
        meta = probe.list_topics(timeout=kafka.request_timeout_s)
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            if topic in meta.topics
            for p in meta.topics[topic].partitions
        ]
        futures = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, partitions)],
            request_timeout=kafka.request_timeout_s,
        )
        committed = {
            (tp.topic, tp.partition): tp.offset for tp in futures[group].result().topic_partitions
        }
        lag: dict[tuple[str, int], int] = {}
        for tp in partitions:
            low, high = probe.get_watermark_offsets(
                tp, timeout=kafka.request_timeout_s, cached=False
            )
            offset = committed.get((tp.topic, tp.partition), -1)
            lag[(tp.topic, tp.partition)] = high - (offset if offset >= 0 else low)
        return lag
    except KafkaException as exc:
        raise KafkaUnavailableError(
            f"Kafka at {kafka.bootstrap_servers}: cannot read group {group}: {exc}"
        ) from exc
    finally:
        probe.close()
