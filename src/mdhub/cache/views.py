"""Golden-record read views in Redis, written with a compare-and-set on version.

The views are disposable: they are filled from the golden and changes topics only, and a flushed
Redis is rebuilt from them. Every write is guarded by the golden record's version, so a replay, a
duplicate or an older version arriving late changes nothing.

Key layout (every name comes from :func:`mdhub.naming.redis_key`)::

    <ns>:<entity>:golden:<golden_id>            hash  version, doc (JSON; absent once gone),
                                                      xrefs (JSON list of the xref keys it claims)
    <ns>:<entity>:xref:<source>:<source_key>    zset  golden ids claiming the source record,
                                                      scored by claim order; the highest answers
    <ns>:<entity>:meta:live                     set   golden ids whose doc is present (count)
    <ns>:<entity>:meta:claimseq                 int   claim-order counter
    <ns>:<entity>:meta:fill                     hash  epoch (an id made when the views were
                                                      found lost), and per partition of the
                                                      entity's topics ("<topic>:<partition>")
                                                      the epoch in which it was read from offset 0
    <ns>:<entity>:history:<golden_id>           zset  one member per version: the change event
                                                      as JSON (:mod:`mdhub.cache.history`),
                                                      scored by version; written once per version
    <ns>:<entity>:review:<pair_id>              hash  doc (the potential match as JSON), opened
                                                      ("1" once the open record was seen), status
                                                      (open|accepted|rejected), decided_by,
                                                      decided_at
    <ns>:<entity>:reviewq                       zset  the open pair ids, scored by detected_at
                                                      (ms): the review queue, oldest first

An xref is a sorted set rather than a plain string so that the view converges whatever order the
golden records are replayed in: when a source record moves from golden A to golden B and a stale
version of A (still listing it) is applied after B's, A's next version removes only A's claim and
B's claim remains. A plain string would have been deleted, leaving the source record unresolvable.

The review queue converges the same way whatever is replayed: a decision (accepted or rejected)
takes the pair out of the queue and is final, so an ``open`` record re-delivered after it cannot
reopen the pair; it only fills in the score and contributions when the decision came first.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast, runtime_checkable

import orjson
import redis
import redis.exceptions as rexc
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from mdhub.cache.history import HistoryEntry, fold_history
from mdhub.errors import ConfigError, MdhubError, RedisUnavailableError
from mdhub.naming import redis_key

__all__ = [
    "REVIEW_STATUSES",
    "GoldenCache",
    "GoldenView",
    "RedisGoldenCache",
    "ReviewFields",
    "review_fields",
    "review_out",
]

#: Views sent to Redis per pipeline round trip.
DEFAULT_BATCH_SIZE: Final = 500

_GOLDEN: Final = "golden"
_HISTORY: Final = "history"
_XREF: Final = "xref"
_META: Final = "meta"
_LIVE: Final = "live"
_CLAIMSEQ: Final = "claimseq"
_FILL: Final = "fill"
_FILL_EPOCH: Final = "epoch"
_REVIEW: Final = "review"
_REVIEWQ: Final = "reviewq"

#: The states of a potential match: ``open`` waits in the queue, the others are decisions.
REVIEW_STATUSES: Final = ("open", "accepted", "rejected")
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class GoldenView:
    """One version of a golden record as the read views need it.

    Attributes:
        golden_id: the golden record's id.
        version: its version; a view is applied only when it is greater than the stored one.
        doc: the golden record as a JSON-able mapping, or ``None`` when the record is gone
            (retired or erased): the document and its xrefs are dropped, the version is kept so an
            older replay cannot bring it back.
        xrefs: the ``(source, source_key)`` pairs currently contributing to the record.
    """

    golden_id: str
    version: int
    doc: Mapping[str, Any] | None
    xrefs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.golden_id, str) or not self.golden_id:
            raise ValueError(f"golden_id must be a non-empty string, got {self.golden_id!r}")
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise ValueError(f"version must be an int, got {self.version!r}")
        if self.version < 0:
            raise ValueError(f"version must be >= 0, got {self.version}")
        if self.doc is not None and not isinstance(self.doc, Mapping):
            raise ValueError(f"doc must be a mapping or None, got {type(self.doc).__name__}")
        pairs = tuple(tuple(pair) for pair in self.xrefs)
        for pair in pairs:
            if len(pair) != 2 or not all(isinstance(part, str) and part for part in pair):
                raise ValueError(f"xrefs must be (source, source_key) string pairs, got {pair!r}")
            if ":" in pair[0]:
                raise ValueError(f"a source name cannot contain ':', got {pair[0]!r}")
        object.__setattr__(self, "xrefs", pairs)


@dataclass(frozen=True, slots=True)
class ReviewFields:
    """What the review views need of one potential-match document (see :func:`review_fields`).

    Attributes:
        pair_id: the pair's id (the review topic's key).
        status: ``open``, ``accepted`` or ``rejected``.
        doc: the document as stored (JSON text).
        detected_ms: when the pair was found (an open record) or decided (a decision), in ms
            since the epoch: the queue's order.
        decided_by: the steward command that decided (decisions only), or ``""``.
        decided_at: when it was decided (ISO 8601, decisions only), or ``""``.
    """

    pair_id: str
    status: str
    doc: str
    detected_ms: int
    decided_by: str
    decided_at: str

    @property
    def is_open(self) -> bool:
        """Whether the record asks for a decision (rather than records one)."""
        return self.status == "open"


def review_fields(doc: Mapping[str, Any]) -> ReviewFields:
    """Check a potential-match document and pick out what the views store and index.

    Raises:
        ValueError: ``pair_id`` is missing, ``status`` is not one of :data:`REVIEW_STATUSES`,
            ``detected_at`` is not an ISO 8601 time, or the document is not JSON-able.
    """
    pair_id = doc.get("pair_id")
    if not isinstance(pair_id, str) or not pair_id:
        raise ValueError(f"a potential match needs a pair_id, got {pair_id!r}")
    status = doc.get("status")
    if status not in REVIEW_STATUSES:
        raise ValueError(
            f"potential match {pair_id}: status must be one of {', '.join(REVIEW_STATUSES)}, "
            f"got {status!r}"
        )
    detected = doc.get("detected_at")
    try:
        when = dt.datetime.fromisoformat(str(detected))
    except ValueError:
        raise ValueError(
            f"potential match {pair_id}: detected_at must be an ISO 8601 time, got {detected!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    decided = status != "open"
    decided_by = doc.get("decided_by") if decided else None
    return ReviewFields(
        pair_id=pair_id,
        status=str(status),
        doc=encode_doc(doc),
        detected_ms=(when - _EPOCH) // dt.timedelta(milliseconds=1),
        decided_by=str(decided_by) if decided_by else "",
        decided_at=str(detected) if decided else "",
    )


def review_out(
    doc: str, status: str, decided_by: str | None, decided_at: str | None
) -> dict[str, Any]:
    """The stored potential match as read: the detected pair with its current decision."""
    out = cast(dict[str, Any], json.loads(doc))
    out["status"] = status
    out["decided_by"] = decided_by or None
    out["decided_at"] = decided_at or None
    return out


@runtime_checkable
class GoldenCache(Protocol):
    """The read views of golden records (port). Implementations: Redis, and memory for tests.

    Every method raises :class:`mdhub.errors.RedisUnavailableError` when the store cannot be
    reached; the caller may retry later.
    """

    def apply_golden(self, entity: str, views: Sequence[GoldenView]) -> int:
        """Apply the views whose version is newer than the stored one; return how many were."""
        ...

    def get_golden(self, entity: str, golden_id: str) -> dict[str, Any] | None:
        """Return the golden record, or ``None`` when it is unknown or gone."""
        ...

    def get_xref(self, entity: str, source: str, source_key: str) -> str | None:
        """Return the golden id the source record contributes to, or ``None``."""
        ...

    def get_xrefs(self, entity: str, records: Sequence[tuple[str, str]]) -> list[str | None]:
        """:meth:`get_xref` of each ``(source, source_key)``, in one round trip."""
        ...

    def apply_history(self, entity: str, entries: Sequence[HistoryEntry]) -> int:
        """Add the entries whose version is not in the record's history yet; return how many were."""
        ...

    def get_history(
        self, entity: str, golden_id: str, *, limit: int, before_version: int | None = None
    ) -> list[dict[str, Any]]:
        """Return up to ``limit`` change events of a golden record, newest first.

        Only versions below ``before_version`` are returned when it is given (paging).
        """
        ...

    def get_version(self, entity: str, golden_id: str, version: int) -> dict[str, Any] | None:
        """Return the golden record as it was at ``version`` (see :func:`fold_history`)."""
        ...

    def apply_reviews(self, entity: str, docs: Sequence[Mapping[str, Any]]) -> int:
        """Apply potential matches and their decisions (the review topic); return how many changed.

        An ``open`` document enters the review queue (ordered by ``detected_at``, oldest first);
        an ``accepted`` or ``rejected`` one takes the pair out of it for good and records the
        decision (``decided_by``, and its ``detected_at`` as ``decided_at``), keeping the score
        and contributions of the open one. A replayed ``open`` after a decision changes nothing.

        Raises:
            ValueError: a document is invalid (see :func:`review_fields`).
        """
        ...

    def list_reviews(
        self, entity: str, *, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """Return the number of open pairs and a page of them, oldest first."""
        ...

    def get_review(self, entity: str, pair_id: str) -> dict[str, Any] | None:
        """Return a potential match (open or decided), or ``None`` when it is unknown."""
        ...

    def ping(self) -> None:
        """Return when the store answers; raise ``RedisUnavailableError`` otherwise."""
        ...

    def clear(self, entity: str) -> int:
        """Delete every view key of ``entity`` (before a rebuild); return how many were deleted."""
        ...

    def count(self, entity: str) -> int:
        """Return the number of golden records of ``entity`` whose document is present."""
        ...

    def fill_state(self, entity: str) -> tuple[str, set[str]]:
        """The id of the entity's current fill, and the partitions (``"<topic>:<partition>"``)
        marked as read from offset 0 in it. The id changes whenever the views are lost (a flush,
        an empty restart, :meth:`clear`); the first caller after a loss makes it."""
        ...

    def mark_partitions_filled(self, entity: str, epoch: str, partitions: Iterable[str]) -> None:
        """Record that ``partitions`` are read (or being read) from offset 0 in fill ``epoch``."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


# KEYS[1] golden hash, KEYS[2] live-id set, KEYS[3] claim-order counter,
# KEYS[4..] the xref keys the new version claims (none when the record is gone).
# ARGV[1] golden id, ARGV[2] version, ARGV[3] "1" with a doc / "0" gone, ARGV[4] doc JSON,
# ARGV[5] JSON list of KEYS[4..] (stored, to release them when a later version drops them).
# The xref keys of the previous version are read from the hash; they are not in KEYS, which is
# fine on a single Redis (not on a cluster).
_APPLY_LUA: Final = """
local stored = redis.call('HGET', KEYS[1], 'version')
if stored and tonumber(stored) >= tonumber(ARGV[2]) then
  return 0
end
local id = ARGV[1]
local claimed = {}
for i = 4, #KEYS do claimed[KEYS[i]] = true end
local previous = redis.call('HGET', KEYS[1], 'xrefs')
if previous then
  for _, key in ipairs(cjson.decode(previous)) do
    if not claimed[key] then redis.call('ZREM', key, id) end
  end
end
if #KEYS >= 4 then
  local seq = redis.call('INCR', KEYS[3])
  for i = 4, #KEYS do redis.call('ZADD', KEYS[i], 'NX', seq, id) end
end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'version', ARGV[2], 'doc', ARGV[4], 'xrefs', ARGV[5])
  redis.call('SADD', KEYS[2], id)
else
  redis.call('HDEL', KEYS[1], 'doc')
  redis.call('HSET', KEYS[1], 'version', ARGV[2], 'xrefs', ARGV[5])
  redis.call('SREM', KEYS[2], id)
end
return 1
"""

# KEYS[1] history zset; ARGV[1] version, ARGV[2] event JSON, ARGV[3] "1" for an erasure. The
# changes topic may carry a version more than once (at-least-once re-delivery, replays); the first
# event stored for it is kept. An erasure replaces the whole history with the fact of the erasure,
# and older events replayed after it are not added back.
_HISTORY_LUA: Final = """
local top = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if top[1] and tonumber(top[2]) >= tonumber(ARGV[1]) and string.find(top[1], '"status":"erased"', 1, true) then
  return 0
end
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[1])
elseif redis.call('ZCOUNT', KEYS[1], ARGV[1], ARGV[1]) > 0 then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# KEYS[1] review hash, KEYS[2] review queue; ARGV[1] pair id, ARGV[2] status, ARGV[3] doc JSON,
# ARGV[4] detected_at (ms), ARGV[5] decided_by, ARGV[6] decided_at. A decision is final: it leaves
# the queue and a later "open" (a re-delivery) only fills in the details when it had not been seen.
_REVIEW_LUA: Final = """
local status = redis.call('HGET', KEYS[1], 'status')
if ARGV[2] == 'open' then
  if status and status ~= 'open' then
    if redis.call('HGET', KEYS[1], 'opened') then return 0 end
    redis.call('HSET', KEYS[1], 'doc', ARGV[3], 'opened', '1')
    return 1
  end
  if status == 'open' and redis.call('HGET', KEYS[1], 'doc') == ARGV[3] then return 0 end
  redis.call('HSET', KEYS[1], 'doc', ARGV[3], 'status', 'open', 'opened', '1')
  redis.call('ZADD', KEYS[2], 'NX', ARGV[4], ARGV[1])
  return 1
end
redis.call('ZREM', KEYS[2], ARGV[1])
if status == ARGV[2] and redis.call('HGET', KEYS[1], 'decided_by') == ARGV[5] then return 0 end
if not status then redis.call('HSET', KEYS[1], 'doc', ARGV[3]) end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'decided_by', ARGV[5], 'decided_at', ARGV[6])
return 1
"""

# Failures that mean "Redis cannot serve us right now": retry later.
_UNAVAILABLE: Final = (
    rexc.ConnectionError,  # includes BusyLoadingError, AuthenticationError, MaxConnectionsError
    rexc.TimeoutError,
    rexc.ClusterDownError,
    rexc.TryAgainError,
    rexc.ReadOnlyError,
)


# dates, times and dataclasses are not JSON: refused, as json refuses them, not written as orjson
# would write them
_DOC_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def encode_doc(doc: Mapping[str, Any]) -> str:
    """Return the JSON text stored for ``doc`` (shared with the in-memory fake): compact UTF-8,
    keys in the doc's order. orjson writes one of the benchmark's golden docs in 3.1 us, json in
    19.5 (the projector writes one per golden version); a float that is not finite is written as
    null (attribute values never are: validation refuses them)."""
    try:
        return orjson.dumps(doc, option=_DOC_OPTIONS).decode()
    except TypeError as exc:  # orjson.JSONEncodeError is one
        raise ValueError(f"golden doc is not JSON-able: {exc}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _first(found: list[bytes | str]) -> str | None:
    return _text(found[0]) if found else None


def _describe(client: redis.Redis) -> str:
    """Return the server address of ``client`` as a URL, without credentials."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    db = kwargs.get("db", 0)
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={db}"
    scheme = "rediss" if issubclass(pool.connection_class, redis.SSLConnection) else "redis"
    host = str(kwargs.get("host", "localhost"))
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{kwargs.get('port', 6379)}/{db}"


def _erasure(entry: HistoryEntry) -> str:
    return "1" if entry.event.get("status") == "erased" else "0"


class RedisGoldenCache:
    """:class:`GoldenCache` on Redis: version-guarded writes through one Lua script, pipelined.

    Args:
        client: a redis-py client; bytes or decoded responses both work.
        namespace: first segment of every key (``Settings.namespace``).
        batch_size: views sent per pipeline round trip.
    """

    def __init__(
        self, client: redis.Redis, namespace: str, *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._client = client
        self._namespace = namespace
        self._batch_size = batch_size
        self._where = _describe(client)
        # register_script only hashes the source; the pipeline loads it on first use and again
        # after a Redis restart or SCRIPT FLUSH.
        self._apply = client.register_script(_APPLY_LUA)
        self._add_history = client.register_script(_HISTORY_LUA)
        self._apply_review = client.register_script(_REVIEW_LUA)

    @classmethod
    def from_url(cls, url: str, namespace: str, socket_timeout_s: float = 2.0) -> RedisGoldenCache:
        """Build a cache for the Redis at ``url``. Connects lazily: a Redis that is down now is fine.

        Raises:
            ConfigError: ``url`` is not a Redis URL.
        """
        # One quick retry covers a pooled connection that a Redis restart closed; more would only
        # make callers (the API) wait longer before answering 503.
        retry = Retry(ExponentialWithJitterBackoff(cap=0.2, base=0.05), retries=1)
        try:
            client = redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout_s,
                socket_connect_timeout=socket_timeout_s,
                retry=retry,
            )
        except ValueError as exc:
            raise ConfigError(f"MDHUB_REDIS__URL: {exc}") from exc
        return cls(client, namespace)

    @property
    def namespace(self) -> str:
        """The first segment of every key."""
        return self._namespace

    @property
    def where(self) -> str:
        """The server address, without credentials (for messages)."""
        return self._where

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        except _UNAVAILABLE as exc:
            raise RedisUnavailableError(
                f"Redis at {self._where} is unavailable ({action}: {exc}); "
                "check it with `mdhub stack status`"
            ) from exc
        except rexc.RedisError as exc:
            raise MdhubError(f"Redis at {self._where} refused {action}: {exc}") from exc

    def _key(self, entity: str, view: str, *ids: str) -> str:
        return redis_key(self._namespace, entity, view, *ids)

    def apply_golden(self, entity: str, views: Sequence[GoldenView]) -> int:
        """Apply the views whose version is newer than the stored one; return how many were.

        Views are sent in pipelines of ``batch_size``; within a call they are applied in order, so
        two versions of one record in one call end with the higher. A batch that is retried after
        a dropped connection is applied again harmlessly, but may then count fewer views.

        Raises:
            RedisUnavailableError: Redis cannot be reached; views of earlier batches stay applied.
            ValueError: a doc is not JSON-able.
        """
        live = self._key(entity, _META, _LIVE)
        claimseq = self._key(entity, _META, _CLAIMSEQ)
        applied = 0
        for start in range(0, len(views), self._batch_size):
            batch = views[start : start + self._batch_size]
            pipe = self._client.pipeline(transaction=False)
            for view in batch:
                if view.doc is None:
                    xref_keys: list[str] = []
                    present, doc = "0", ""
                else:
                    xref_keys = list(
                        dict.fromkeys(self._key(entity, _XREF, s, k) for s, k in view.xrefs)
                    )
                    present, doc = "1", encode_doc(view.doc)
                self._apply(
                    keys=[self._key(entity, _GOLDEN, view.golden_id), live, claimseq, *xref_keys],
                    args=[view.golden_id, view.version, present, doc, json.dumps(xref_keys)],
                    client=pipe,
                )
            with self._translated("writing golden views"):
                results = pipe.execute()
            applied += sum(int(result) for result in results)
        return applied

    def get_golden(self, entity: str, golden_id: str) -> dict[str, Any] | None:
        """Return the golden record, or ``None`` when it is unknown or gone."""
        with self._translated("reading a golden record"):
            raw = self._client.hget(self._key(entity, _GOLDEN, golden_id), "doc")
        if raw is None:
            return None
        return cast(dict[str, Any], json.loads(raw))

    def version(self, entity: str, golden_id: str) -> int | None:
        """Return the stored version of a golden record (also once it is gone), or ``None``."""
        with self._translated("reading a version"):
            raw = self._client.hget(self._key(entity, _GOLDEN, golden_id), "version")
        return None if raw is None else int(raw)

    def get_xref(self, entity: str, source: str, source_key: str) -> str | None:
        """Return the golden id the source record contributes to, or ``None``."""
        return self.get_xrefs(entity, [(source, source_key)])[0]

    def get_xrefs(self, entity: str, records: Sequence[tuple[str, str]]) -> list[str | None]:
        """:meth:`get_xref` of each ``(source, source_key)``, in one pipeline."""
        # no view is stored under a source name with ":" (GoldenView refuses it): not asked
        asked = [(source, key) for source, key in records if ":" not in source]
        if not asked:
            return [None] * len(records)
        with self._translated("reading xrefs"):
            pipe = self._client.pipeline(transaction=False)
            for source, source_key in asked:
                pipe.zrange(self._key(entity, _XREF, source, source_key), 0, 0, desc=True)
            hits = iter(pipe.execute())
        return [None if ":" in source else _first(next(hits)) for source, _ in records]

    def apply_history(self, entity: str, entries: Sequence[HistoryEntry]) -> int:
        """Add the entries whose version is not in the record's history yet; return how many were.

        Entries are sent in pipelines of ``batch_size``. A version already in the history is left
        as it is, so re-delivered and replayed events change nothing.

        Raises:
            RedisUnavailableError: Redis cannot be reached; entries of earlier batches stay added.
            ValueError: an event is not JSON-able.
        """
        applied = 0
        for start in range(0, len(entries), self._batch_size):
            batch = entries[start : start + self._batch_size]
            pipe = self._client.pipeline(transaction=False)
            for entry in batch:
                self._add_history(
                    keys=[self._key(entity, _HISTORY, entry.golden_id)],
                    args=[entry.version, encode_doc(entry.event), _erasure(entry)],
                    client=pipe,
                )
            with self._translated("writing history entries"):
                results = pipe.execute()
            applied += sum(int(result) for result in results)
        return applied

    def get_history(
        self, entity: str, golden_id: str, *, limit: int, before_version: int | None = None
    ) -> list[dict[str, Any]]:
        """Return up to ``limit`` change events of a golden record, newest first.

        Only versions below ``before_version`` are returned when it is given (paging).
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        top = "+inf" if before_version is None else f"({before_version}"
        with self._translated("reading a history"):
            raw = cast(
                list[bytes | str],
                self._client.zrevrangebyscore(
                    self._key(entity, _HISTORY, golden_id), top, "-inf", start=0, num=limit
                ),
            )
        return [cast(dict[str, Any], json.loads(item)) for item in raw]

    def get_version(self, entity: str, golden_id: str, version: int) -> dict[str, Any] | None:
        """Return the golden record as it was at ``version`` (see :func:`fold_history`).

        Raises:
            RedisUnavailableError: Redis cannot be reached.
            MdhubError: the history misses a version before ``version``.
        """
        if version < 1:
            return None
        with self._translated("reading a history"):
            raw = cast(
                list[bytes | str],
                self._client.zrangebyscore(self._key(entity, _HISTORY, golden_id), "-inf", version),
            )
        return fold_history((json.loads(item) for item in raw), version)

    def apply_reviews(self, entity: str, docs: Sequence[Mapping[str, Any]]) -> int:
        """Apply potential matches and their decisions; return how many changed the views.

        See :meth:`GoldenCache.apply_reviews`. Documents are sent in pipelines of ``batch_size``,
        in order.

        Raises:
            RedisUnavailableError: Redis cannot be reached; earlier batches stay applied.
            ValueError: a document is invalid (nothing of its batch was sent).
        """
        queue = self._key(entity, _REVIEWQ)
        applied = 0
        for start in range(0, len(docs), self._batch_size):
            batch = [review_fields(doc) for doc in docs[start : start + self._batch_size]]
            pipe = self._client.pipeline(transaction=False)
            for review in batch:
                self._apply_review(
                    keys=[self._key(entity, _REVIEW, review.pair_id), queue],
                    args=[
                        review.pair_id,
                        review.status,
                        review.doc,
                        review.detected_ms,
                        review.decided_by,
                        review.decided_at,
                    ],
                    client=pipe,
                )
            with self._translated("writing review views"):
                results = pipe.execute()
            applied += sum(int(result) for result in results)
        return applied

    def list_reviews(
        self, entity: str, *, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """Return the number of open pairs and a page of them, oldest first.

        Raises:
            RedisUnavailableError: Redis cannot be reached.
            ValueError: ``offset`` < 0 or ``limit`` < 1.
        """
        _check_page(offset, limit)
        queue = self._key(entity, _REVIEWQ)
        with self._translated("reading the review queue"):
            pipe = self._client.pipeline(transaction=True)
            pipe.zcard(queue)
            pipe.zrange(queue, offset, offset + limit - 1)
            total, members = pipe.execute()
            pipe = self._client.pipeline(transaction=False)
            for member in members:
                pipe.hgetall(self._key(entity, _REVIEW, _text(member)))
            found = pipe.execute() if members else []
        items = [_review_of(fields) for fields in found]
        return int(total), [item for item in items if item is not None]

    def get_review(self, entity: str, pair_id: str) -> dict[str, Any] | None:
        """Return a potential match (open or decided), or ``None`` when it is unknown."""
        with self._translated("reading a potential match"):
            fields = self._client.hgetall(self._key(entity, _REVIEW, pair_id))
        return _review_of(fields)

    def ping(self) -> None:
        """Return when Redis answers; raise ``RedisUnavailableError`` otherwise."""
        with self._translated("ping"):
            self._client.ping()

    def clear(self, entity: str) -> int:
        """Delete every key under ``<ns>:<entity>:`` (SCAN, then UNLINK); return how many."""
        # redis_key(ns, entity, "") is "<ns>:<entity>:", the prefix of every view of the entity.
        pattern = _glob_escape(self._key(entity, "")) + "*"
        deleted = 0
        with self._translated("clearing views"):
            batch: list[bytes | str] = []
            for key in self._client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    deleted += self._client.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += self._client.unlink(*batch)
        return deleted

    def count(self, entity: str) -> int:
        """Return the number of golden records of ``entity`` whose document is present."""
        with self._translated("counting golden records"):
            return self._client.scard(self._key(entity, _META, _LIVE))

    def fill_state(self, entity: str) -> tuple[str, set[str]]:
        """The entity's current fill (``epoch`` of its fill hash, made by the first caller after
        the views were lost: every projector that sees the loss gets the same one), and the
        partitions marked as read from offset 0 in it; one round trip."""
        key = self._key(entity, _META, _FILL)
        with self._translated("reading the fill marker"):
            pipe = self._client.pipeline(transaction=True)
            pipe.hsetnx(key, _FILL_EPOCH, uuid.uuid4().hex)
            pipe.hgetall(key)
            _, raw = pipe.execute()
        fields = {_text(name): _text(value) for name, value in raw.items()}
        epoch = fields.pop(_FILL_EPOCH)
        return epoch, {name for name, value in fields.items() if value == epoch}

    def mark_partitions_filled(self, entity: str, epoch: str, partitions: Iterable[str]) -> None:
        """Record that ``partitions`` are read from offset 0 in fill ``epoch``. After a loss in
        between, the marks stand beside no epoch (or a newer one) and count for nothing."""
        items = [part for partition in partitions for part in (partition, epoch)]
        if not items:
            return
        with self._translated("writing the fill marker"):
            self._client.hset(self._key(entity, _META, _FILL), items=items)

    def close(self) -> None:
        """Close the client's connections."""
        with self._translated("closing"):
            self._client.close()


def _check_page(offset: int, limit: int) -> None:
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")


def _review_of(raw: Mapping[bytes | str, bytes | str]) -> dict[str, Any] | None:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    if "doc" not in fields or "status" not in fields:
        return None  # cleared between reading the queue and the pair
    return review_out(
        fields["doc"], fields["status"], fields.get("decided_by"), fields.get("decided_at")
    )


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
