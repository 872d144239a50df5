"""The state topic in batches: a batch's state records count only once its commit marker is there.

The agent writes each batch's state (golden records, identity summaries, ledgers) to the entity's
state topic, the changelog of its RocksDB store, as many records. Kafka does not store them
atomically: a worker killed while they are being delivered leaves a prefix of them in the topic,
without the batch's ledgers, which come last. Restoring that prefix and then replaying the batch,
which the ledgers say was not done, processes its inputs against state they had partly changed
already: seen in the kill -9 test, 2,311 records of a batch in the topic and no ledger, and 84
inputs then rejected twice with different reasons, others counted unchanged instead of accepted.

So the agent writes each batch as ``BEGIN``, its records, ``COMMIT`` (per partition), and whoever
reads the topic back (:class:`BatchFilter`: the worker's store restoring it, ``mdhub reconcile``)
applies a batch's records only at its commit. Records still waiting when the reading ends are of a
batch that never finished: they are left out. The worker that restores them writes their keys'
current values (the state before that batch) to the topic again as a batch of its own, so that
the topic's newest record per key is what the store holds (:meth:`BatchFilter.uncommitted`), and
then replays the batch.

Records outside markers (topics written before there were markers) apply at once. Compaction keeps
only the newest ``BEGIN`` and ``COMMIT``: records of older batches then apply at once, in offset
order, which ends in the same state as applying them batch by batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BEGIN_KEY", "COMMIT_KEY", "BatchFilter"]

BEGIN_KEY = b"__batch__/begin"
"""The state-topic key opening a batch's records (value: how many follow)."""

COMMIT_KEY = b"__batch__/commit"
"""The state-topic key closing a batch's records: they count from here on."""


@dataclass(slots=True)
class _Partition:
    begin: int | None = None  # offset of the BEGIN whose COMMIT was not read yet
    held: dict[int, tuple[bytes, bytes | None]] = field(default_factory=dict)  # offset -> record


@dataclass(slots=True)
class BatchFilter:
    """State-topic records in (each partition in offset order), committed state records out."""

    _partitions: dict[int, _Partition] = field(default_factory=dict)

    def add(
        self, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> list[tuple[bytes, bytes | None]]:
        """Read one record; return the state records that count from it on, in order.

        A record read again (a restore resumed before it) is held once.
        """
        if key is None:
            return []  # not written by the hub
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = _Partition()
        if key == BEGIN_KEY:
            if part.begin is None:  # a BEGIN after an unfinished one: both commit together
                part.begin = offset
            return []
        if key == COMMIT_KEY:
            if part.begin is None:
                return []  # its BEGIN compacted away: its records were applied as they came
            records = [part.held[o] for o in sorted(part.held)]
            part.held.clear()
            part.begin = None
            return records
        if part.begin is not None:
            part.held[offset] = (key, value)
            return []
        return [(key, value)]

    def applied_through(self, partition: int, offset: int) -> int:
        """The offset up to which ``partition`` counts, given that ``offset`` was read last: just
        before the unfinished batch's ``BEGIN``, if any, so that reading again from there (a
        restore resumes at the offset it was given) sees that ``BEGIN`` again."""
        part = self._partitions.get(partition)
        if part is not None and part.begin is not None:
            return part.begin - 1
        return offset

    def uncommitted(self, partition: int) -> list[bytes]:
        """Keys of the held records of ``partition`` (a batch whose commit was not read)."""
        part = self._partitions.get(partition)
        if part is None:
            return []
        return list(dict.fromkeys(part.held[o][0] for o in sorted(part.held)))

    def discard(self, partition: int) -> None:
        """Forget what is held for ``partition`` (its keys were written again, committed)."""
        self._partitions.pop(partition, None)
