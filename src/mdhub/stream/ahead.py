"""Phone numbers of a batch parsed ahead, in a helper process, while the agent works on the batch.

Standardizing a phone number (:func:`mdhub.domain.standardize.parse_phone`, phonenumbers is pure
Python) cost the worker's main thread 25-30 us per change in the benchmark, about a tenth of its
time, and the main thread is what limits a worker's throughput. A number seen before is answered from the
process's :data:`~mdhub.domain.standardize.PHONES` cache; a new one was parsed on the main thread.

:class:`ParseAhead` hands the inputs of a batch, in chunks, to a helper process. The helper
decodes each input and runs the same steps the pipeline runs before validation (Avro decode,
:func:`~mdhub.domain.validation.standardize`, :func:`~mdhub.domain.standardize.apply_standardizers`)
and sends back the ``(text, region) -> answer`` pairs it computed; the agent puts them into its
cache between two inputs. Answers are what :func:`parse_phone` returns for that exact input, in
either process (same code, same library), so the hub's outputs are the same with or without the
helper: a number the helper has not answered yet is parsed on the main thread as before. The
helper is an optimisation only: when it cannot start or dies, the worker logs it once and goes on
without it.

Chunks are small (:data:`CHUNK`) and at most :data:`IN_FLIGHT` are sent but unanswered, so a send
does not wait on a full pipe (inputs over :data:`MAX_INPUT_BYTES` are left to the main thread) and
the first answers of a batch arrive after a few inputs. The helper's answers to a chunk are a few
KB, so it never waits on the worker either.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Sequence
from contextlib import suppress
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from mdhub.domain.model import EntityModel, Standardizer
from mdhub.domain.standardize import PHONES, PhoneCache, apply_standardizers
from mdhub.domain.validation import standardize
from mdhub.modelfile import load_model
from mdhub.serde.catalog import SchemaCatalog
from mdhub.serde.mapping import change_from_avro

__all__ = ["CHUNK", "IN_FLIGHT", "MAX_INPUT_BYTES", "ParseAhead", "phone_entities", "serve"]

log = logging.getLogger(__name__)

CHUNK = 32
"""Inputs per message to the helper (~13 KB of candidate changes)."""

IN_FLIGHT = 3
"""Chunks sent and not answered yet, at most (well below a pipe's 64 KB buffer)."""

MAX_INPUT_BYTES = 8192
"""Larger candidate changes are not sent to the helper (the benchmark's are ~400 bytes)."""

NICE = 10
"""The helper's niceness: it yields the CPU to the worker, Kafka and the projector."""


def serve(conn: Connection, model_file: Path, schemas_dir: Path) -> None:
    """The helper process: answer ``(entity, [candidate change bytes])`` with the phone answers
    it computed for them, until ``None`` or the end of the pipe."""
    os.nice(NICE)
    model = load_model(model_file)
    catalog = SchemaCatalog.load(schemas_dir)
    codecs = {name: catalog.codec(f"mdhub.{name}.CandidateChange") for name in model.entities}
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
        for value in values:
            try:
                apply_standardizers(entity, standardize(change_from_avro(codec.decode(value))))
            except Exception:  # the agent rejects such an input itself, with its reasons
                continue
        conn.send(PHONES.take_computed())


class ParseAhead:
    """The worker's side of the helper process (see the module's description)."""

    def __init__(self, model_file: Path, schemas_dir: Path, cache: PhoneCache = PHONES) -> None:
        self._args = (model_file, schemas_dir)
        self._cache = cache  # where the answers go: the one the pipeline's standardizers use
        self._conn: Connection | None = None
        self._process: Any = None
        self._waiting: deque[tuple[str, list[bytes]]] = deque()
        self._in_flight = 0
        self._failed = False
        self.answers = 0
        """Answers received from the helper so far."""

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
            log.info("parsing phone numbers ahead in a helper process (pid %s)", process.pid)
        return True

    def submit(self, entity: str, values: Sequence[bytes]) -> None:
        """Queue a batch's candidate changes of ``entity`` (in the order the agent takes them)."""
        values = [value for value in values if len(value) <= MAX_INPUT_BYTES]
        if not values or not self.start():
            return
        for start in range(0, len(values), CHUNK):
            self._waiting.append((entity, values[start : start + CHUNK]))
        self._send()

    def collect(self) -> None:
        """Take the answers that arrived into the cache, and send more; never waits."""
        conn = self._conn
        if conn is None or not self._in_flight:
            return
        try:
            while self._in_flight and conn.poll():
                answers = conn.recv()
                self._in_flight -= 1
                self._cache.add(answers)
                self.answers += len(answers)
        except (EOFError, OSError) as exc:
            self._give_up(f"it stopped ({exc!r})")
            return
        self._send()

    def drop_waiting(self) -> None:
        """Forget the chunks not sent yet (the batch is done: the agent needs them no more)."""
        self._waiting.clear()

    def _send(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            while self._waiting and self._in_flight < IN_FLIGHT:
                conn.send(self._waiting.popleft())
                self._in_flight += 1
        except (OSError, ValueError) as exc:
            self._give_up(f"it stopped ({exc!r})")

    def _give_up(self, why: str) -> None:
        log.warning(
            "the helper process that parses phone numbers ahead is not used any more: %s; the "
            "worker parses them itself (slower, same results)",
            why,
        )
        self._failed = True
        self._waiting.clear()
        self._in_flight = 0
        self._shut()

    def close(self) -> None:
        """Stop the helper."""
        if self._process is not None:
            log.warning(
                "phone numbers parsed: %d ahead by the helper process, %d by the main thread",
                self.answers,
                self._cache.parsed,
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


def phone_entities(entities: Iterable[EntityModel]) -> list[str]:
    """Names of the entity types with a phone number standardizer (the helper's work)."""
    return [
        entity.name
        for entity in entities
        if any(Standardizer.PHONE_E164 in spec.standardizers for spec in entity.attributes.values())
    ]
