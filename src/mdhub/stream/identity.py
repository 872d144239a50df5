"""The resolve stage's in-memory identity index, kept in step with its state store.

The durable identity state is one :class:`~mdhub.domain.resolve.Summary` per source record, stored
in the worker's table (key ``__ref__/<source>:<source_key>``) and its changelog topic like the
golden records. The blocking index is derived from the summaries: it is built in memory when the
worker takes over a shard partition and updated with every summary written, so it costs no state
writes of its own.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import replace

from mdhub.domain.matching.plan import date_ordinal
from mdhub.domain.resolve import Summary

__all__ = ["SUMMARY_PREFIX", "IdentityIndex", "summary_key"]

SUMMARY_PREFIX = b"__ref__/"


def summary_key(ref: str) -> bytes:
    """The state-store key of a source record's summary."""
    return SUMMARY_PREFIX + ref.encode()


class IdentityIndex:
    """Summaries by source ref and blocking key -> refs (insertion order, oldest first).

    Each block maps its refs to their dates (the ordinal under :attr:`date_key`, None without
    one): the resolver's date rule (:class:`~mdhub.domain.matching.plan.Narrowing`) reads them
    there, next to the refs, instead of in every record's summary."""

    def __init__(self) -> None:
        self.summaries: dict[str, Summary] = {}
        self.blocks: dict[str, dict[str, int | None]] = {}
        self.largest_block = 0
        self.next_seq = 1
        self.date_key: str | None = None

    def _date(self, summary: Summary) -> int | None:
        return None if self.date_key is None else date_ordinal(summary.features, self.date_key)

    def date_by(self, date_key: str | None) -> None:
        """Keep the dates under ``date_key`` in the blocks (from now on, and for the refs in
        them already)."""
        if date_key == self.date_key:
            return
        self.date_key = date_key
        for members in self.blocks.values():
            for ref in members:
                members[ref] = self._date(self.summaries[ref])

    def dated_block(self, key: str, date_key: str) -> Collection[tuple[str, int | None]] | None:
        """A block's ``(ref, date)`` pairs, oldest first (a live view, as :meth:`block`); None if
        the blocks do not keep the dates under ``date_key``."""
        if date_key != self.date_key:
            return None
        members = self.blocks.get(key)
        return members.items() if members else ()

    @classmethod
    def load(cls, items: Iterable[tuple[bytes, bytes]]) -> IdentityIndex:
        """Build the index from stored ``(key, value)`` pairs (other keys are ignored).

        Blocks are filled in ``seq`` order, which is the order records entered them while the
        index was live: a rebuilt index lists every block exactly as the live one did.
        """
        index = cls()
        loaded = [
            Summary.from_json(value)
            for key, value in items
            if key.startswith(SUMMARY_PREFIX) and value
        ]
        for summary in sorted(loaded, key=lambda s: (s.seq, s.ref)):
            index.put(summary)
        return index

    def stamp(self, summary: Summary) -> Summary:
        """Give ``summary`` the ``seq`` it must be stored with: a new one when it enters blocks
        (new, or its blocking keys changed), else the one it had."""
        old = self.summaries.get(summary.ref)
        old_keys = old.keys if old is not None and old.indexed else ()
        new_keys = summary.keys if summary.indexed else ()
        if new_keys and new_keys != old_keys:
            seq = self.next_seq
        else:
            seq = old.seq if old is not None else 0
        return summary if summary.seq == seq else replace(summary, seq=seq)

    def __len__(self) -> int:
        return len(self.summaries)

    def summary(self, ref: str) -> Summary | None:
        """The summary of ``ref``, or None."""
        return self.summaries.get(ref)

    def block(self, key: str) -> Collection[str]:
        """The refs of a block, oldest first: a live view, not a copy (the blocks of a new record
        hold tens of refs, read for every input), so the index must not change while it is read."""
        members = self.blocks.get(key)
        return members.keys() if members else ()

    def put(self, summary: Summary) -> None:
        """Add or replace a summary, moving it between blocks as its keys change."""
        old = self.summaries.get(summary.ref)
        old_keys = old.keys if old is not None and old.indexed else ()
        new_keys = summary.keys if summary.indexed else ()
        if summary.seq >= self.next_seq:
            self.next_seq = summary.seq + 1
        date = self._date(summary)
        if old_keys != new_keys:
            # leave every old block and join every new one at its end: blocks stay in seq order
            for key in old_keys:
                members = self.blocks.get(key)
                if members is not None:
                    members.pop(summary.ref, None)
                    if not members:
                        del self.blocks[key]
            for key in new_keys:
                members = self.blocks.setdefault(key, {})
                members[summary.ref] = date
                if len(members) > self.largest_block:
                    self.largest_block = len(members)
        elif new_keys and old is not None and self._date(old) != date:
            for key in new_keys:  # the same blocks, the same places: a new date
                self.blocks[key][summary.ref] = date
        self.summaries[summary.ref] = summary
