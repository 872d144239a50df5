"""A batch's inputs prepared ahead, in a helper process, while the agent works on the batch.

Two parts of processing a change depend on nothing but the change itself, and cost the worker's
main thread (what limits a worker's throughput) much of its time in the benchmark:

* standardizing a phone number (:func:`mdhub.domain.standardize.parse_phone`; phonenumbers is
  pure Python): 25-30 us per change. A number seen before is answered from the process's
  :data:`~mdhub.domain.standardize.PHONES` cache; a new one was parsed on the main thread;
* the change's match features and blocking keys (:func:`mdhub.domain.resolve.match_keys`):
  ~20 us per change, measured in process.

:class:`ParseAhead` hands the inputs of a batch, in chunks, to a helper process. The helper runs
the functions the pipeline and the resolver call: Avro decode,
:func:`~mdhub.stream.pipeline.standardized_change` and :func:`~mdhub.domain.resolve.match_keys`.
It answers with the phone numbers it parsed (``(text, region) -> answer``) and each input's
match keys. The agent puts the phone answers into
its cache and keeps the match keys by the input's exact bytes for the resolver.

Each answer is what the worker would compute from the same input: the helper runs the same code
on the same bytes, with the worker's own entity model (handed over when the helper starts) and a
schema catalog it checks against the worker's (same fingerprints, or it refuses to work). So the
hub's outputs are the same with or without the helper: an input the helper has not answered yet
is handled by the main thread as before. The helper is an optimisation only: when it cannot
start or dies, the worker logs it once and goes on without it.

Chunks are small (:data:`CHUNK` inputs, :data:`CHUNK_BYTES`) and at most :data:`IN_FLIGHT` are sent
and unanswered, so the requests waiting in the pipe never fill it (64 KB) and the worker never
waits on a send; the first answers of a batch arrive after a few inputs. The helper may wait on
sending a large answer, until the agent next looks (every few inputs).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from mdhub.domain.model import EntityModel, HubModel, Standardizer
from mdhub.domain.resolve import MatchKeys, match_keys
from mdhub.domain.standardize import PHONES, PhoneCache
from mdhub.serde.catalog import SchemaCatalog
from mdhub.serde.generate import fullname
from mdhub.serde.mapping import change_from_avro
from mdhub.stream.pipeline import standardized_change

__all__ = [
    "CHUNK",
    "CHUNK_BYTES",
    "IN_FLIGHT",
    "MAX_INPUT_BYTES",
    "ParseAhead",
    "ahead_entities",
    "serve",
]

log = logging.getLogger(__name__)

CHUNK = 32
"""Inputs per request to the helper, at most."""

CHUNK_BYTES = 16_384
"""Bytes of inputs per request, at most (an input larger than that goes alone)."""

MAX_INPUT_BYTES = 8192
"""Larger candidate changes are not sent to the helper (the benchmark's are ~400 bytes)."""

IN_FLIGHT = 3
"""Requests sent and not answered yet, at most: 3 x 16 KB stays below a pipe's 64 KB."""

NICE = 10
"""The helper's niceness: it yields the CPU to the worker, Kafka and the projector."""

_REFUSED = "refused"


def serve(
    conn: Connection, model: HubModel, schemas_dir: Path, fingerprints: Sequence[bytes]
) -> None:
    """The helper process: answer ``(entity, [candidate change bytes])`` with ``(the phone
    answers it computed, [the match keys of each input, or None])``, until ``None`` or the end
    of the pipe. Refuses (one ``("refused", why)`` answer) when its schema catalog is not the
    worker's."""
    os.nice(NICE)
    catalog = SchemaCatalog.load(schemas_dir)
    if catalog.fingerprints != list(fingerprints):
        conn.send((_REFUSED, f"the schemas in {schemas_dir} changed since the worker started"))
        return
    codecs = {name: catalog.codec(fullname(name, "CandidateChange")) for name in model.entities}
    PHONES.keep_computed()
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the worker is gone
            return
        if request is None:
            return
        entity_name, values = request
        entity = model.entities[entity_name]
        codec = codecs[entity_name]
        found: list[MatchKeys | None] = []
        for value in values:
            try:
                change, _ = standardized_change(entity, change_from_avro(codec.decode(value)))
                found.append(match_keys(entity.matching, change.attributes))
            except Exception:  # the agent rejects such an input itself, with its reasons
                found.append(None)
        conn.send((PHONES.take_computed(), found))


def _chunks(values: Sequence[bytes]) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    size = 0
    for value in values:
        if chunk and (len(chunk) == CHUNK or size + len(value) > CHUNK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(value)
        size += len(value)
    if chunk:
        yield chunk


class ParseAhead:
    """The worker's side of the helper process (see the module's description)."""

    def __init__(
        self, model: HubModel, catalog: SchemaCatalog, schemas_dir: Path, cache: PhoneCache = PHONES
    ) -> None:
        self._args = (model, schemas_dir, catalog.fingerprints)
        self._cache = cache  # where the phone answers go: the one the standardizers use
        self._conn: Connection | None = None
        self._process: Any = None
        self._waiting: deque[tuple[str, list[bytes]]] = deque()
        self._sent: deque[list[bytes]] = deque()  # the inputs of each request not answered yet
        self._keys: dict[bytes, MatchKeys] = {}
        self._failed = False
        self.answers = 0
        """Phone numbers answered by the helper so far."""
        self.keys_used = 0
        """Match keys of the helper's that the agent took so far."""

    @property
    def pid(self) -> int | None:
        """The helper's process id while it runs."""
        return None if self._process is None else self._process.pid

    def start(self) -> bool:
        """Start the helper unless it runs (it takes ~1 s to be ready); whether it runs."""
        if self._failed:
            return False
        if self._conn is None:
            try:
                context = multiprocessing.get_context("spawn")  # no copy of faust's threads
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=serve,
                    args=(theirs, *self._args),
                    name="mdhub-parse-ahead",
                    daemon=True,
                )
                process.start()
                theirs.close()
            except (OSError, RuntimeError) as exc:
                self._give_up(f"it did not start ({exc})")
                return False
            self._conn, self._process = ours, process
            log.info("preparing inputs ahead in a helper process (pid %s)", process.pid)
        return True

    def submit(self, entity: str, values: Sequence[bytes]) -> None:
        """Queue a batch's candidate changes of ``entity`` (in the order the agent takes them)."""
        values = [value for value in values if len(value) <= MAX_INPUT_BYTES]
        if not values or not self.start():
            return
        self._waiting.extend((entity, chunk) for chunk in _chunks(values))
        self._send()

    def collect(self) -> None:
        """Take the answers that arrived, and send more requests; never waits."""
        conn = self._conn
        if conn is None or not self._sent:
            return
        try:
            while self._sent and conn.poll():
                answer = conn.recv()
                if answer[0] == _REFUSED:
                    self._give_up(answer[1])
                    return
                phones, found = answer
                self._cache.add(phones)
                self.answers += len(phones)
                for value, keys in zip(self._sent.popleft(), found, strict=True):
                    if keys is not None:
                        self._keys[value] = keys
        except (EOFError, OSError, ValueError) as exc:
            self._give_up(f"it stopped ({exc!r})")
            return
        self._send()

    def keys_for(self, value: bytes | None) -> MatchKeys | None:
        """The helper's match keys of the input with these bytes, once (None: not answered)."""
        if value is None or not self._keys:
            return None
        keys = self._keys.pop(value, None)
        if keys is not None:
            self.keys_used += 1
        return keys

    def end_batch(self) -> None:
        """Forget the requests not sent and the answers not taken: the batch is done."""
        self._waiting.clear()
        self._keys.clear()

    def _send(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            while self._waiting and len(self._sent) < IN_FLIGHT:
                entity, chunk = self._waiting.popleft()
                conn.send((entity, chunk))
                self._sent.append(chunk)
        except (OSError, ValueError) as exc:
            self._give_up(f"it stopped ({exc!r})")

    def _give_up(self, why: str) -> None:
        log.warning(
            "the helper process that prepares inputs ahead is not used any more: %s; the worker "
            "does that work itself (slower, same results)",
            why,
        )
        self._failed = True
        self._waiting.clear()
        self._sent.clear()
        self._keys.clear()
        self._shut()

    def close(self) -> None:
        """Stop the helper."""
        if self._process is not None:
            log.warning(
                "prepared ahead by the helper process: %d phone numbers (%d parsed by the main "
                "thread), the match keys of %d changes",
                self.answers,
                self._cache.parsed,
                self.keys_used,
            )
        self._waiting.clear()
        if self._conn is not None:
            with suppress(OSError, ValueError):  # already gone
                self._conn.send(None)
        self._shut()

    def _shut(self) -> None:
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            conn.close()
        if process is not None:
            process.join(timeout=2)
            if process.is_alive():
                process.kill()
                process.join(timeout=2)


def ahead_entities(entities: Iterable[EntityModel]) -> list[str]:
    """Names of the entity types the helper has work for: a phone number standardizer, or
    matching."""
    return [
        entity.name
        for entity in entities
        if entity.matching is not None
        or any(Standardizer.PHONE_E164 in spec.standardizers for spec in entity.attributes.values())
    ]
