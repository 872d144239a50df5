"""Reconciliation: per source partition, consumed = accepted + unchanged + rejected + pending review.

The worker keeps a :class:`~mdhub.domain.ledger.Ledger` per source partition in its state (written
with the state, after the outputs are in Kafka). This module reads the ledgers back from the state
topic, the worker group's committed offsets, the log ends, and the rejected topic, and checks that
everything adds up.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from mdhub.domain.ledger import LEDGER_KEY_PREFIX, Ledger
from mdhub.errors import DecodeError, KafkaUnavailableError
from mdhub.kafka.config import consumer_config
from mdhub.kafka.lag import group_lag
from mdhub.kafka.reading import read_to_end, snapshot_ends
from mdhub.naming import Stage, group_name, topic_name
from mdhub.serde.catalog import SchemaCatalog
from mdhub.settings import Settings
from mdhub.stream.statelog import BatchFilter

__all__ = ["PartitionReport", "reconcile"]


@dataclass(frozen=True, slots=True)
class PartitionReport:
    """The accounting of one source partition."""

    partition: int
    log_end: int
    committed_lag: int
    ledger: Ledger
    rejected_on_topic: int

    @property
    def unprocessed(self) -> int:
        """Messages after the last one the worker accounted for."""
        start = self.ledger.last_offset + 1 if self.ledger.first_offset >= 0 else 0
        return max(0, self.log_end - start)

    @property
    def problems(self) -> list[str]:
        """Why the partition does not reconcile (empty when it does)."""
        out = []
        ledger = self.ledger
        if not ledger.balanced:
            out.append(
                f"{ledger.consumed} consumed but {ledger.accounted} accounted for "
                f"(offsets {ledger.first_offset}..{ledger.last_offset})"
            )
        if ledger.rejected != self.rejected_on_topic:
            out.append(
                f"ledger counts {ledger.rejected} rejected, the rejected topic holds "
                f"{self.rejected_on_topic}"
            )
        return out


def _read_all(
    consumer: Consumer,
    topic: str,
    timeout: float,
    handle: Callable[[int, int, bytes | None, bytes | None], None],
) -> None:
    def each(messages: Sequence[KafkaMessage]) -> None:
        for msg in messages:
            handle(int(msg.partition() or 0), int(msg.offset() or 0), msg.key(), msg.value())

    read_to_end(consumer, snapshot_ends(consumer, [topic], timeout), each)


def reconcile(settings: Settings, catalog: SchemaCatalog, entity: str) -> list[PartitionReport]:
    """Return the accounting of every partition of ``entity``'s source topic.

    Raises:
        KafkaUnavailableError: Kafka cannot be reached.
    """
    ns, kafka = settings.namespace, settings.kafka
    source = topic_name(ns, entity, Stage.SOURCE)
    conf = consumer_config(
        kafka, group_name(ns, f"reconcile-{uuid.uuid4().hex[:8]}"), **{"enable.auto.commit": False}
    )
    consumer = Consumer(conf)
    try:
        ledgers: dict[int, Ledger] = {}
        batches = BatchFilter()  # a batch's ledgers count once its commit is in the topic

        def on_state(partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
            for k, v in batches.add(partition, offset, key, value):
                if k.startswith(LEDGER_KEY_PREFIX):
                    suffix = k[len(LEDGER_KEY_PREFIX) :]
                    if suffix.isdigit():  # source partitions (commands have ledgers of their own)
                        ledgers[int(suffix)] = Ledger.from_bytes(v)

        rejected_codec = catalog.codec("mdhub.common.RejectedRecord")
        rejected: dict[int, set[int]] = defaultdict(set)

        def on_rejected(
            partition: int, offset: int, key: bytes | None, value: bytes | None
        ) -> None:
            if value is None:
                return
            try:
                record = rejected_codec.decode(value)
            except DecodeError:
                return
            if record["topic"] == source:
                rejected[record["partition"]].add(record["offset"])

        _read_all(consumer, topic_name(ns, entity, Stage.STATE), kafka.request_timeout_s, on_state)
        _read_all(
            consumer, topic_name(ns, entity, Stage.REJECTED), kafka.request_timeout_s, on_rejected
        )
        # the router consumes the source topic (and forwards in one order to the resolve stage)
        lag = group_lag(kafka, group_name(ns, f"router-{entity}"), [source])
        reports = []
        for (_, partition), partition_lag in sorted(lag.items()):
            _, end = consumer.get_watermark_offsets(
                TopicPartition(source, partition), timeout=kafka.request_timeout_s
            )
            ledger = ledgers.get(partition, Ledger())
            counted = {o for o in rejected.get(partition, set()) if o <= ledger.last_offset}
            reports.append(PartitionReport(partition, end, partition_lag, ledger, len(counted)))
        return reports
    except KafkaException as exc:
        raise KafkaUnavailableError(f"Kafka at {kafka.bootstrap_servers}: {exc}") from exc
    finally:
        consumer.close()
