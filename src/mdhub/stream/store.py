"""The worker's state store: faust's RocksDB store, restoring the state topic batch by batch.

faust restores a table's store from its changelog (the entity's state topic) record by record.
This store applies the records through a :class:`mdhub.stream.statelog.BatchFilter`, so that a
batch counts only once its commit marker is there, and remembers what it held back when the
restore ended, in :attr:`BatchedStore.batches`, for the agent to settle. The worker's app uses it
as its store, ``mdhub-rocksdb://`` (the same files as faust's ``rocksdb://``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from faust.stores import STORES
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP, EventT
from rocksdict import WriteBatch

from mdhub.stream.statelog import BatchFilter

__all__ = ["SCHEME", "BatchedStore"]

SCHEME = "mdhub-rocksdb"


class BatchedStore(RocksDBStore):
    """faust's RocksDB store whose changelog restore applies whole batches only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches = BatchFilter()

    def apply_changelog_batch(
        self,
        batch: Iterable[EventT[Any]],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        """Write the committed state records of ``batch`` (changelog events) to RocksDB, and as
        the persisted offset of each partition the last one before anything held back."""
        writes: dict[int, Any] = defaultdict(lambda: WriteBatch(raw_mode=True))
        last: dict[TP, int] = {}
        for event in batch:
            msg = event.message
            last[msg.tp] = max(msg.offset, last.get(msg.tp, -1))
            for key, value in self.batches.add(msg.partition, msg.offset, msg.key, msg.value):
                if value is None:
                    writes[msg.partition].delete(key)
                else:
                    writes[msg.partition].put(key, value)
        for partition, write in writes.items():
            self._db_for_partition(partition).write(write)
        for tp, offset in last.items():
            self.set_persisted_offset(tp, self.batches.applied_through(tp.partition, offset))


STORES.aliases[SCHEME] = f"{__name__}:BatchedStore"
