"""Read candidate changes from JSON-lines or CSV files, checking every line before anything is sent.

Each line holds a record's attributes plus optional envelope fields: ``source_key`` (required),
``op`` (``upsert``/``delete``), ``source_version``, ``occurred_at`` (ISO 8601) and ``change_id``.
Missing versions and times are filled from the publishing moment, so re-publishing a file sends
newer versions of the same values, which make no new golden version.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdhub.domain.model import AttrType, EntityModel
from mdhub.domain.records import CandidateChange, Op, Value
from mdhub.serde.catalog import AvroCodec
from mdhub.serde.mapping import change_to_avro

__all__ = ["LineError", "ParsedFile", "convert_value", "parse_records", "read_file"]

ENVELOPE = ("source_key", "op", "source_version", "occurred_at", "change_id")


@dataclass(frozen=True, slots=True)
class LineError:
    """A problem with one input line."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """The encodable changes of a file (with their line numbers) and every line's problems."""

    changes: list[tuple[int, CandidateChange, bytes]]
    errors: list[LineError]


def read_file(path: Path, fmt: str | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, row)`` from a ``.jsonl``/``.json`` or ``.csv`` file.

    Rows that are not JSON objects are yielded as they are, for the caller to report.
    """
    kind = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # -sig: spreadsheets start UTF-8 CSV files with a BOM
    except UnicodeDecodeError as exc:
        yield (
            data.count(b"\n", 0, exc.start) + 1,
            ValueError(f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8"),
        )
        return
    with io.StringIO(text, newline="") as handle:
        if kind == "csv":
            reader = csv.DictReader(handle)
            for row in reader:
                extra = row.get(None)
                if extra:
                    # values beyond the header have no column name: report them, never drop them
                    yield (
                        reader.line_num,
                        ValueError(
                            f"{len(extra)} value(s) more than the header's "
                            f"{len(reader.fieldnames or ())} columns: {extra!r}"
                        ),
                    )
                    continue
                yield (
                    reader.line_num,
                    {k: v for k, v in row.items() if k is not None and v not in ("", None)},
                )
            return
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, ValueError(f"not valid JSON: {exc.msg} (column {exc.colno})")


def convert_value(spec_type: AttrType, value: Any) -> Value:
    if spec_type is AttrType.STRING:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ValueError("expected text")
    if spec_type is AttrType.INTEGER:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            return int(value.strip())
        raise ValueError("expected an integer")
    if spec_type is AttrType.NUMBER:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        if isinstance(value, int | float):
            return float(value)
        return float(str(value).strip())
    if spec_type is AttrType.BOOLEAN:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "y"):
            return True
        if text in ("false", "0", "no", "n"):
            return False
        raise ValueError("expected true or false")
    if spec_type is AttrType.DATE:
        return dt.date.fromisoformat(str(value).strip())
    if spec_type is AttrType.TIMESTAMP:
        return _timestamp(value)
    if spec_type is AttrType.STRING_LIST:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split("|") if part.strip())
        raise ValueError("expected a list of strings (or 'a|b|c' in CSV)")
    raise ValueError(f"unsupported type {spec_type}")  # pragma: no cover


def _timestamp(value: Any) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("timestamps need a time zone, e.g. 2026-01-31T12:00:00Z")
    return parsed.astimezone(dt.UTC)


def _build(
    entity: EntityModel,
    source: str,
    row: Mapping[str, Any],
    now: dt.datetime,
    line: int,
    base_version: int,
) -> tuple[CandidateChange | None, list[str]]:
    problems: list[str] = []
    unknown = [k for k in row if k not in entity.attributes and k not in ENVELOPE]
    if unknown:
        problems.append(
            f"unknown field(s) {', '.join(map(str, unknown))}; {entity.name} attributes are: "
            + ", ".join(entity.attributes)
        )
    key = row.get("source_key")
    if key in (None, ""):
        problems.append("source_key is missing")
    attributes: dict[str, Value] = {}
    for name, spec in entity.attributes.items():
        if row.get(name) is None:
            continue
        try:
            attributes[name] = convert_value(spec.type, row[name])
        except (ValueError, TypeError) as exc:
            problems.append(f"{name}={row[name]!r}: {exc}")
    try:
        op = Op(str(row.get("op", "upsert")).lower())
    except ValueError:
        problems.append(f"op={row.get('op')!r}: expected upsert or delete")
        op = Op.UPSERT
    occurred = now
    if row.get("occurred_at") is not None:
        try:
            occurred = _timestamp(row["occurred_at"])
        except ValueError as exc:
            problems.append(f"occurred_at={row['occurred_at']!r}: {exc}")
    version = base_version + line
    if row.get("source_version") is not None:
        try:
            version = int(row["source_version"])
        except (ValueError, TypeError):
            problems.append(f"source_version={row['source_version']!r}: expected an integer")
    if problems:
        return None, problems
    return (
        CandidateChange(
            change_id=str(row.get("change_id") or uuid.uuid4()),
            entity=entity.name,
            source=source,
            source_key=str(key),
            op=op,
            source_version=version,
            occurred_at=occurred,
            attributes=attributes,
        ),
        [],
    )


def parse_records(
    entity: EntityModel,
    source: str,
    rows: Iterator[tuple[int, Any]],
    codec: AvroCodec,
    now: dt.datetime | None = None,
) -> ParsedFile:
    """Check and encode every row; collect every problem with its line number."""
    when = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    # Without a source_version column, versions are the publish time in ms, times 1000, plus the
    # line: later lines and later publishes of a file are always newer.
    base_version = int(time.time() * 1000) * 1000
    changes: list[tuple[int, CandidateChange, bytes]] = []
    errors: list[LineError] = []
    if source not in entity.sources:
        errors.append(
            LineError(
                0,
                f"source {source!r} may not publish {entity.name}; known: {', '.join(entity.sources)}",
            )
        )
    for line, row in rows:
        if isinstance(row, Exception):
            errors.append(LineError(line, str(row)))
            continue
        if not isinstance(row, Mapping):
            errors.append(LineError(line, "expected a JSON object"))
            continue
        change, problems = _build(entity, source, row, when, line, base_version)
        if change is None:
            errors.extend(LineError(line, p) for p in problems)
            continue
        record = change_to_avro(entity, change)
        schema_problems = codec.problems(record)
        if schema_problems:
            errors.extend(
                LineError(line, f"does not fit {codec.fullname}: {p}") for p in schema_problems
            )
            continue
        changes.append((line, change, codec.encode(record)))
    return ParsedFile(changes, errors)
