"""Read views of golden records (Redis), written with a compare-and-set on version.

The port is :class:`GoldenCache`; :class:`RedisGoldenCache` implements it on Redis and
:class:`mdhub.testing.InMemoryGoldenCache` in memory for tests. Besides the current golden record
and the xrefs, the views hold each record's history (:class:`HistoryEntry`, one per version).
"""

from __future__ import annotations

from mdhub.cache.history import HistoryEntry, event_to_json, fold_history, history_entry
from mdhub.cache.views import GoldenCache, GoldenView, RedisGoldenCache

__all__ = [
    "GoldenCache",
    "GoldenView",
    "HistoryEntry",
    "RedisGoldenCache",
    "event_to_json",
    "fold_history",
    "history_entry",
]
