"""The schema catalog: every ``.avsc`` in ``schemas/`` plus archived writer schemas, by fingerprint.

Records are framed with Avro *single-object encoding*: ``C3 01``, the 8-byte little-endian
CRC-64-AVRO fingerprint of the writer schema's canonical form, then the Avro binary body. Any Avro
library holding ``schemas/`` can read them. Old writer schemas live in ``schemas/history/`` so a
record written before a schema change is still read, resolved to the current (reader) schema.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema
import fastavro.validation

from mdhub.domain.validation import ReasonCode
from mdhub.errors import DecodeError, SchemaError, UnknownFingerprintError
from mdhub.serde.compiled import Unsupported, compile_reader, compile_writer

__all__ = ["MAGIC", "AvroCodec", "SchemaCatalog", "fingerprint_of"]

MAGIC = b"\xc3\x01"
HISTORY_DIR = "history"


def fingerprint_of(schema: Any) -> bytes:
    """Return the 8-byte CRC-64-AVRO fingerprint (little-endian, as on the wire) of ``schema``."""
    canonical = fastavro.schema.to_parsing_canonical_form(schema)
    return bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))


@dataclass(frozen=True, slots=True)
class _Writer:
    fullname: str
    schema: Any


class AvroCodec:
    """Encode and decode one named type with single-object framing."""

    __slots__ = ("_catalog", "_compiled", "_reader", "fingerprint", "fullname", "header", "schema")

    def __init__(self, catalog: SchemaCatalog, fullname: str, schema: Any) -> None:
        self._catalog = catalog
        self.fullname = fullname
        self.schema = schema
        self.fingerprint = fingerprint_of(schema)
        self.header = MAGIC + self.fingerprint
        try:
            self._compiled: Callable[[Mapping[str, Any]], bytes] | None = compile_writer(
                schema, prefix=self.header
            )
        except Unsupported:
            self._compiled = None
        try:
            self._reader: Callable[[bytes, int], dict[str, Any]] | None = compile_reader(schema)
        except Unsupported:
            self._reader = None

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Return the single-object encoding of ``record`` (raises on a record the schema refuses).

        A writer compiled from the schema (:mod:`mdhub.serde.compiled`) writes it; a value that
        writer does not take is written (or refused) by fastavro, with the same bytes.
        """
        compiled = self._compiled
        if compiled is not None:
            try:
                return compiled(record)
            except Exception:  # fastavro below writes it, or raises its error
                pass
        buf = io.BytesIO()
        buf.write(self.header)
        fastavro.schemaless_writer(buf, self.schema, record)
        return buf.getvalue()

    def problems(self, record: Mapping[str, Any]) -> list[str]:
        """Return why ``record`` does not fit the schema (empty when it does)."""
        try:
            fastavro.validation.validate(record, self.schema, raise_errors=True)
        except fastavro.validation.ValidationError as exc:
            return [str(err) for err in exc.errors] or [str(exc)]
        except (TypeError, ValueError, AttributeError) as exc:
            return [str(exc)]
        return []

    def decode(self, data: bytes) -> dict[str, Any]:
        """Decode a single-object-encoded record written with this or an archived schema.

        Raises:
            DecodeError: code ``UNDECODABLE`` for bytes that are not a record of this type.
            UnknownFingerprintError: code ``UNKNOWN_SCHEMA`` for an unknown writer fingerprint.
        """
        if len(data) < 10 or data[:2] != MAGIC:
            raise DecodeError(
                ReasonCode.UNDECODABLE,
                "not Avro single-object encoding (expected the C3 01 marker and a schema fingerprint)",
            )
        fp = data[2:10]
        if fp == self.fingerprint:
            compiled = self._reader
            if compiled is not None:
                try:
                    fast = compiled(data, 10)
                except Exception:  # fastavro below gives the answer, or the error
                    pass
                else:
                    if isinstance(fast, dict):
                        return fast
            writer, reader = self.schema, None
        else:
            found = self._catalog.writer(fp)
            if found is None:
                raise UnknownFingerprintError(
                    ReasonCode.UNKNOWN_SCHEMA,
                    f"writer schema fingerprint {fp.hex()} is not in the catalog; "
                    f"publish with a schema from schemas/ ({self.fullname})",
                )
            if found.fullname != self.fullname:
                raise DecodeError(
                    ReasonCode.UNDECODABLE,
                    f"record is a {found.fullname}, expected a {self.fullname}",
                )
            writer, reader = found.schema, self.schema
        try:
            record = fastavro.schemaless_reader(io.BytesIO(data[10:]), writer, reader)
        except UnicodeDecodeError as exc:
            raise DecodeError(
                ReasonCode.INVALID_UTF8,
                f"a string field is not valid UTF-8 ({exc.reason} at byte {exc.start})",
            ) from exc
        except Exception as exc:  # fastavro raises many kinds on corrupt input
            raise DecodeError(ReasonCode.UNDECODABLE, f"corrupt Avro body: {exc}") from exc
        if not isinstance(record, dict):
            raise DecodeError(ReasonCode.UNDECODABLE, "Avro body is not a record")
        return record


class SchemaCatalog:
    """All schemas of ``schemas/`` (current) and ``schemas/history/`` (archived writers)."""

    def __init__(self, current: Mapping[str, Any], archived: Mapping[bytes, _Writer]) -> None:
        self._current = dict(current)
        self._by_fp: dict[bytes, _Writer] = dict(archived)
        for name, schema in self._current.items():
            self._by_fp[fingerprint_of(schema)] = _Writer(name, schema)
        self._codecs: dict[str, AvroCodec] = {}

    @classmethod
    def load(cls, schemas_dir: Path) -> SchemaCatalog:
        """Load every schema file.

        Raises:
            SchemaError: the directory is missing or a file is not a valid schema (named).
        """
        if not schemas_dir.is_dir():
            raise SchemaError(f"{schemas_dir}: schema directory not found; set MDHUB_SCHEMAS_DIR")
        current: dict[str, Any] = {}
        for path in sorted(schemas_dir.glob("*.avsc")):
            try:
                current[path.stem] = fastavro.schema.load_schema(str(path))
            except Exception as exc:
                raise SchemaError(f"{path}: not a valid Avro schema: {exc}") from exc
        archived: dict[bytes, _Writer] = {}
        for path in sorted((schemas_dir / HISTORY_DIR).glob("*.avsc")):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                schema = fastavro.parse_schema(raw, _force=True)
            except Exception as exc:
                raise SchemaError(f"{path}: not a valid archived Avro schema: {exc}") from exc
            archived[fingerprint_of(schema)] = _Writer(path.name.split("@", 1)[0], schema)
        return cls(current, archived)

    @property
    def names(self) -> list[str]:
        """Full names of the current schemas."""
        return sorted(self._current)

    @property
    def fingerprints(self) -> list[bytes]:
        """Fingerprints of every schema it reads (current and archived), sorted."""
        return sorted(self._by_fp)

    def writer(self, fingerprint: bytes) -> _Writer | None:
        """Return the (current or archived) writer schema with this fingerprint."""
        return self._by_fp.get(fingerprint)

    def codec(self, fullname: str) -> AvroCodec:
        """Return the codec of a current named type.

        Raises:
            SchemaError: no schema file defines ``fullname``.
        """
        codec = self._codecs.get(fullname)
        if codec is None:
            try:
                schema = self._current[fullname]
            except KeyError:
                raise SchemaError(
                    f"no schema {fullname} in the catalog; run `mdhub schemas generate`"
                ) from None
            codec = self._codecs[fullname] = AvroCodec(self, fullname, schema)
        return codec
