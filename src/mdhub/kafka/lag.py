"""Consumer-group lag from Kafka's admin API: committed offsets against the log end."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from mdhub.errors import KafkaUnavailableError, MdhubError
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


def group_assignment(
    kafka: KafkaSettings, group: str, topics: Sequence[str] | None
) -> tuple[str, int, int]:
    """Return ``(state, members, partitions assigned)`` of a consumer group (of ``topics``, if given).

    Raises:
        KafkaUnavailableError: Kafka cannot be reached.
    """
    admin = AdminClient(admin_config(kafka))
    try:
        futures = admin.describe_consumer_groups([group], request_timeout=kafka.request_timeout_s)
        description = futures[group].result()
    except KafkaException as exc:
        raise KafkaUnavailableError(
            f"Kafka at {kafka.bootstrap_servers}: cannot describe group {group}: {exc}"
        ) from exc
    wanted = set(topics) if topics is not None else None
    assigned = sum(
        1
        for member in description.members
        if member.assignment is not None
        for tp in member.assignment.topic_partitions
        if wanted is None or tp.topic in wanted
    )
    state = getattr(description.state, "name", str(description.state))
    return state, len(description.members), assigned


def check_worker(kafka: KafkaSettings, namespace: str) -> None:
    """Return when at least one stream worker has source partitions assigned.

    Raises:
        MdhubError: none has (the message says what the worker group looks like).
        KafkaUnavailableError: Kafka cannot be reached.
    """
    group = f"{namespace}-worker"
    state, members, assigned = group_assignment(kafka, group, None)
    if assigned == 0:
        raise MdhubError(
            f"no stream worker has partitions assigned (group {group} is {state} with "
            f"{members} member(s)); start one with `mdhub worker`"
        )
