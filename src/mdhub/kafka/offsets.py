"""Committed offsets of consumer groups, read with a consumer of the group, not the admin API.

librdkafka's admin ``ListConsumerGroupOffsets`` crashes the whole process when the group's
coordinator answers NOT_COORDINATOR: its response handler asks the client's consumer group to look
for the coordinator again, and an admin client has no consumer group (a segfault in
``rd_kafka_cgrp_op`` called from ``rd_kafka_handle_OffsetFetch`` in thread ``rdk:main``;
librdkafka issue #5040, confluent-kafka-python #1982). A broker that has just started answers so
while it loads its ``__consumer_offsets`` partitions: ``mdhub run``, waiting for the hub's groups
to catch up right after publishing its samples, ended with a segfault in five runs in which it had
started Kafka itself (gdb showed that stack; a sixth such run ended there without a message), and
in none of two with Kafka already up. A consumer configured with the group's id fetches the
offsets with its own group handle, which looks the coordinator up again and retries. It never
subscribes, so it never joins the group, and it commits nothing.

The readers are kept per group (making and destroying librdkafka clients while requests are in
flight has crashed it too; see :func:`mdhub.kafka.admin.shared_admin`), at most
:data:`MAX_READERS` of them; the least recently used one is closed beyond that.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from mdhub.kafka.config import consumer_config
from mdhub.settings import KafkaSettings

__all__ = ["MAX_READERS", "close_readers", "committed_offsets", "read_committed"]

MAX_READERS = 64
"""Consumer groups whose offset readers a process keeps open."""

_READERS: OrderedDict[str, Consumer] = OrderedDict()
_LOCK = threading.Lock()


def _reader(kafka: KafkaSettings, group: str) -> Consumer:
    conf = consumer_config(kafka, group, **{"enable.auto.commit": False})
    key = repr(sorted((str(k), repr(v)) for k, v in conf.items()))  # group.id included
    with _LOCK:
        reader = _READERS.get(key)
        if reader is not None:
            _READERS.move_to_end(key)
            return reader
        reader = _READERS[key] = Consumer(conf)
        while len(_READERS) > MAX_READERS:
            _, oldest = _READERS.popitem(last=False)
            with contextlib.suppress(KafkaException, RuntimeError):
                oldest.close()
        return reader


def close_readers() -> None:
    """Close every reader this process keeps (before Kafka stops under a process that goes on:
    an open reader would log a failed connection attempt several times a second)."""
    with _LOCK:
        while _READERS:
            _, reader = _READERS.popitem()
            with contextlib.suppress(KafkaException, RuntimeError):
                reader.close()


def committed_offsets(
    kafka: KafkaSettings, group: str, partitions: Iterable[tuple[str, int]], timeout: float
) -> dict[tuple[str, int], int]:
    """``{(topic, partition): offset}`` committed by ``group``; -1 where it committed nothing.

    Raises:
        KafkaException: Kafka did not answer within ``timeout`` seconds, or refused a partition.
    """
    wanted = list(partitions)
    return read_committed(_reader(kafka, group), wanted, timeout) if wanted else {}


def read_committed(
    consumer: Consumer, partitions: Iterable[tuple[str, int]], timeout: float
) -> dict[tuple[str, int], int]:
    """:func:`committed_offsets` with a consumer of the group the caller keeps itself.

    Raises:
        KafkaException: Kafka did not answer within ``timeout`` seconds, or refused a partition.
    """
    wanted = [TopicPartition(topic, partition) for topic, partition in partitions]
    found: dict[tuple[str, int], int] = {}
    for tp in consumer.committed(wanted, timeout=timeout):
        if tp.error is not None:
            raise KafkaException(tp.error)
        found[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else -1
    return found
