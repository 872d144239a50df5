"""Test helpers shipped with mdhub: in-memory implementations of the hub's ports.

They follow the same contracts as the real adapters, so tests of the API, the projector or a
consumer need no Redis or Kafka.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mdhub.cache.history import HistoryEntry, fold_history
from mdhub.cache.views import GoldenView, encode_doc, review_fields, review_out
from mdhub.domain.commands import StewardCommand
from mdhub.errors import KafkaUnavailableError, RedisUnavailableError

__all__ = ["CommandRecorder", "FakeKafkaMessage", "InMemoryGoldenCache"]


@dataclass(slots=True)
class _Golden:
    version: int
    doc: str | None  # JSON text, as Redis stores it
    xrefs: tuple[tuple[str, str], ...]


@dataclass(slots=True)
class _Review:
    doc: str  # JSON text, as Redis stores it
    status: str
    detected_ms: int
    opened: bool
    decided_by: str = ""
    decided_at: str = ""


@dataclass(slots=True)
class _Entity:
    golden: dict[str, _Golden] = field(default_factory=dict)
    # (source, source_key) -> {golden id: claim order}; the highest claim answers
    claims: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    claimseq: int = 0
    # golden id -> {version: change event JSON}
    history: dict[str, dict[int, str]] = field(default_factory=dict)
    # pair id -> potential match; the open ones are the review queue
    reviews: dict[str, _Review] = field(default_factory=dict)


class InMemoryGoldenCache:
    """:class:`mdhub.cache.GoldenCache` in memory, with the version guard of the Redis one.

    Set :attr:`available` to ``False`` to simulate Redis being down: every method then raises
    :class:`~mdhub.errors.RedisUnavailableError` until it is set back to ``True``.

    Attributes:
        available: whether the "server" answers.
        where: the address named in error messages.
    """

    def __init__(self, *, where: str = "memory://golden-cache") -> None:
        self.available = True
        self.where = where
        self._entities: dict[str, _Entity] = {}
        self._fill: dict[str, dict[str, str]] = {}  # entity -> its fill hash, as in Redis
        self._lock = threading.Lock()  # the API calls it from a threadpool

    def _check(self) -> None:
        if not self.available:
            raise RedisUnavailableError(
                f"Redis at {self.where} is unavailable (simulated); "
                "check it with `mdhub stack status`"
            )

    def apply_golden(self, entity: str, views: Sequence[GoldenView]) -> int:
        """Apply the views whose version is newer than the stored one; return how many were."""
        self._check()
        encoded = [None if v.doc is None else encode_doc(v.doc) for v in views]
        applied = 0
        with self._lock:
            state = self._entities.setdefault(entity, _Entity())
            for view, doc in zip(views, encoded, strict=True):
                stored = state.golden.get(view.golden_id)
                if stored is not None and stored.version >= view.version:
                    continue
                xrefs = () if doc is None else tuple(dict.fromkeys(view.xrefs))
                for pair in stored.xrefs if stored else ():
                    if pair not in xrefs:
                        self._release(state, pair, view.golden_id)
                if xrefs:
                    state.claimseq += 1
                    for pair in xrefs:
                        state.claims.setdefault(pair, {}).setdefault(view.golden_id, state.claimseq)
                state.golden[view.golden_id] = _Golden(view.version, doc, xrefs)
                applied += 1
        return applied

    @staticmethod
    def _release(state: _Entity, pair: tuple[str, str], golden_id: str) -> None:
        claimants = state.claims.get(pair)
        if claimants is None:
            return
        claimants.pop(golden_id, None)
        if not claimants:
            del state.claims[pair]

    def get_golden(self, entity: str, golden_id: str) -> dict[str, Any] | None:
        """Return the golden record, or ``None`` when it is unknown or gone."""
        self._check()
        with self._lock:
            state = self._entities.get(entity)
            stored = state.golden.get(golden_id) if state else None
        if stored is None or stored.doc is None:
            return None
        doc: dict[str, Any] = json.loads(stored.doc)
        return doc

    def get_xref(self, entity: str, source: str, source_key: str) -> str | None:
        """Return the golden id the source record contributes to, or ``None``."""
        self._check()
        with self._lock:
            state = self._entities.get(entity)
            claimants = state.claims.get((source, source_key)) if state else None
            if not claimants:
                return None
            return max(claimants.items(), key=lambda item: item[1])[0]

    def get_xrefs(self, entity: str, records: Sequence[tuple[str, str]]) -> list[str | None]:
        """:meth:`get_xref` of each ``(source, source_key)``."""
        return [self.get_xref(entity, source, key) for source, key in records]

    def apply_history(self, entity: str, entries: Sequence[HistoryEntry]) -> int:
        """Add the entries whose version is not in the record's history yet; return how many were."""
        self._check()
        encoded = [encode_doc(entry.event) for entry in entries]
        applied = 0
        with self._lock:
            state = self._entities.setdefault(entity, _Entity())
            for entry, event in zip(entries, encoded, strict=True):
                versions = state.history.setdefault(entry.golden_id, {})
                erased_at = max(
                    (v for v, e in versions.items() if '"status":"erased"' in e), default=0
                )
                if erased_at >= entry.version:
                    continue  # nothing before an erasure comes back
                if entry.event.get("status") == "erased":
                    versions.clear()  # only the fact of the erasure stays
                elif entry.version in versions:
                    continue
                versions[entry.version] = event
                applied += 1
        return applied

    def _events(self, entity: str, golden_id: str) -> list[tuple[int, str]]:
        with self._lock:
            state = self._entities.get(entity)
            versions = state.history.get(golden_id, {}) if state else {}
            return sorted(versions.items())

    def get_history(
        self, entity: str, golden_id: str, *, limit: int, before_version: int | None = None
    ) -> list[dict[str, Any]]:
        """Return up to ``limit`` change events of a golden record, newest first.

        Only versions below ``before_version`` are returned when it is given (paging).
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self._check()
        newest_first = [
            event
            for version, event in reversed(self._events(entity, golden_id))
            if before_version is None or version < before_version
        ]
        return [json.loads(event) for event in newest_first[:limit]]

    def get_version(self, entity: str, golden_id: str, version: int) -> dict[str, Any] | None:
        """Return the golden record as it was at ``version`` (see :func:`fold_history`)."""
        self._check()
        events = (json.loads(event) for v, event in self._events(entity, golden_id) if v <= version)
        return fold_history(events, version)

    def version(self, entity: str, golden_id: str) -> int | None:
        """Return the stored version of a golden record (also once it is gone), or ``None``."""
        self._check()
        with self._lock:
            state = self._entities.get(entity)
            stored = state.golden.get(golden_id) if state else None
        return None if stored is None else stored.version

    def apply_reviews(self, entity: str, docs: Sequence[Mapping[str, Any]]) -> int:
        """Apply potential matches and their decisions; return how many changed the views.

        See :meth:`mdhub.cache.GoldenCache.apply_reviews`: an open pair waits in the queue, a
        decision is final.
        """
        self._check()
        fields = [review_fields(doc) for doc in docs]
        applied = 0
        with self._lock:
            reviews = self._entities.setdefault(entity, _Entity()).reviews
            for new in fields:
                stored = reviews.get(new.pair_id)
                if new.is_open:
                    if stored is not None and stored.status != "open":
                        if stored.opened:
                            continue  # decided: a re-delivered open record cannot reopen it
                        stored.doc, stored.opened = new.doc, True
                    elif stored is not None:
                        if stored.doc == new.doc:
                            continue
                        stored.doc = new.doc  # keeps its place in the queue
                    else:
                        reviews[new.pair_id] = _Review(new.doc, "open", new.detected_ms, True)
                    applied += 1
                    continue
                if stored is None:
                    stored = reviews[new.pair_id] = _Review(new.doc, "", new.detected_ms, False)
                elif stored.status == new.status and stored.decided_by == new.decided_by:
                    continue
                stored.status = new.status
                stored.decided_by, stored.decided_at = new.decided_by, new.decided_at
                applied += 1
        return applied

    def list_reviews(
        self, entity: str, *, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """Return the number of open pairs and a page of them, oldest first."""
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self._check()
        with self._lock:
            state = self._entities.get(entity)
            reviews = state.reviews if state else {}
            # as Redis orders a sorted set: by score, then by member
            queue = sorted(
                (r.detected_ms, pair_id, r) for pair_id, r in reviews.items() if r.status == "open"
            )
            page = [_review_doc(r) for _, _, r in queue[offset : offset + limit]]
        return len(queue), page

    def get_review(self, entity: str, pair_id: str) -> dict[str, Any] | None:
        """Return a potential match (open or decided), or ``None`` when it is unknown."""
        self._check()
        with self._lock:
            state = self._entities.get(entity)
            stored = state.reviews.get(pair_id) if state else None
            return None if stored is None else _review_doc(stored)

    def ping(self) -> None:
        """Return, or raise ``RedisUnavailableError`` when :attr:`available` is false."""
        self._check()

    def clear(self, entity: str) -> int:
        """Forget every view of ``entity``; return how many keys Redis would have deleted."""
        self._check()
        with self._lock:
            state = self._entities.pop(entity, None)
            self._fill.pop(entity, None)
        if state is None:
            return 0
        live = any(g.doc is not None for g in state.golden.values())
        keys = len(state.golden) + len(state.claims) + int(live) + int(state.claimseq > 0)
        queued = any(r.status == "open" for r in state.reviews.values())
        return keys + len(state.history) + len(state.reviews) + int(queued)

    def count(self, entity: str) -> int:
        """Return the number of golden records of ``entity`` whose document is present."""
        self._check()
        with self._lock:
            state = self._entities.get(entity)
            return sum(g.doc is not None for g in state.golden.values()) if state else 0

    def fill_state(self, entity: str) -> tuple[str, set[str]]:
        """The id of the entity's current fill (made by the first call after :meth:`clear`) and
        the partitions marked as read from offset 0 in it."""
        self._check()
        with self._lock:
            marks = self._fill.setdefault(entity, {})
            epoch = marks.setdefault("epoch", uuid.uuid4().hex)
            return epoch, {
                name for name, value in marks.items() if name != "epoch" and value == epoch
            }

    def mark_partitions_filled(self, entity: str, epoch: str, partitions: Iterable[str]) -> None:
        """Record that ``partitions`` are read from offset 0 in fill ``epoch``."""
        self._check()
        with self._lock:
            self._fill.setdefault(entity, {}).update(dict.fromkeys(partitions, epoch))

    def close(self) -> None:
        """Nothing to release."""


def _review_doc(review: _Review) -> dict[str, Any]:
    return review_out(review.doc, review.status, review.decided_by, review.decided_at)


class CommandRecorder:
    """A ``send_command`` for :func:`mdhub.api.app.create_app` that keeps the commands it is given.

    Set :attr:`available` to ``False`` to simulate Kafka being down: every call then raises
    :class:`~mdhub.errors.KafkaUnavailableError`, and nothing is recorded.

    Attributes:
        sent: the commands, in the order they were sent.
        available: whether the "broker" answers.
    """

    def __init__(self) -> None:
        self.sent: list[StewardCommand] = []
        self.available = True
        self._lock = threading.Lock()

    def __call__(self, command: StewardCommand) -> None:
        if not self.available:
            raise KafkaUnavailableError(
                "Kafka at memory://commands is unavailable (simulated); "
                "check it with `mdhub stack status`"
            )
        with self._lock:
            self.sent.append(command)


class FakeKafkaMessage:
    """A consumed Kafka message (the parts of ``confluent_kafka.Message`` the projector reads)."""

    def __init__(
        self, topic: str, value: bytes | None, offset: int = 0, partition: int = 0
    ) -> None:
        self._topic, self._value, self._offset, self._partition = topic, value, offset, partition

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes | None:
        return self._value

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset
