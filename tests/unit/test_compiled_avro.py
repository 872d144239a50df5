"""The compiled Avro writers and readers do exactly what fastavro does, and leave odd input to it."""

from __future__ import annotations

import datetime as dt
import io
import math
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdhub.serde.catalog import AvroCodec, SchemaCatalog
from mdhub.serde.compiled import Unsupported, _Fallback, compile_reader, compile_writer

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
CATALOG = SchemaCatalog.load(SCHEMAS)
NAMES = CATALOG.names


def fastavro_bytes(schema: Any, record: Any, prefix: bytes = b"") -> bytes:
    buf = io.BytesIO()
    buf.write(prefix)
    fastavro.schemaless_writer(buf, schema, record)
    return buf.getvalue()


def same_values(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (flipped bytes of a double can read as NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_values(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_values(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and type(a) is type(b)


def values_of(schema: Any, named: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values fastavro accepts for ``schema`` (the corners included: empty, huge, negative)."""
    if isinstance(schema, str):
        if schema in named:
            return values_of(named[schema], named, depth)
        return {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": st.integers(-(2**31), 2**31 - 1),
            "long": st.integers(-(2**63), 2**63 - 1),
            "float": st.floats(width=32, allow_nan=False),
            "double": st.floats(allow_nan=False) | st.integers(-(2**53), 2**53),
            "string": st.text(max_size=80),
            "bytes": st.binary(max_size=80),
        }[schema]
    if isinstance(schema, list):
        return st.one_of(*(values_of(branch, named, depth) for branch in schema))
    logical = schema.get("logicalType")
    if logical == "timestamp-millis":
        aware = st.datetimes(
            min_value=dt.datetime(1900, 1, 1),
            max_value=dt.datetime(2200, 1, 1),
            timezones=st.just(dt.UTC),
        )
        return aware | st.integers(-(2**50), 2**50)
    if logical == "date":
        return st.dates() | st.integers(-(2**20), 2**20)
    kind = schema["type"]
    if kind == "record":
        return st.fixed_dictionaries(
            {f["name"]: values_of(f["type"], named, depth + 1) for f in schema["fields"]}
        )
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(
            values_of(schema["items"], named, depth + 1), max_size=4 if depth < 3 else 1
        )
    if kind == "map":
        return st.dictionaries(
            st.text(max_size=20), values_of(schema["values"], named, depth + 1), max_size=4
        )
    return values_of(kind, named, depth)


def fastavro_read(schema: Any, data: bytes) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(data), schema, None)


# drawing whole golden records is slow for hypothesis' health check; no deadline either
SLOW_DRAWS: dict[str, Any] = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}


def draw_record(codec: AvroCodec, data: st.DataObject) -> Any:
    """A value of the codec's schema (named types resolved)."""
    return data.draw(values_of(codec.schema, codec.schema.get("__named_schemas", {})))


@pytest.mark.parametrize("fullname", NAMES)
def test_every_schema_of_the_hub_compiles(fullname: str) -> None:
    codec = CATALOG.codec(fullname)
    assert codec._compiled is not None
    assert codec._reader is not None


@pytest.mark.parametrize("fullname", NAMES)
@settings(max_examples=60, **SLOW_DRAWS)
@given(data=st.data())
def test_compiled_bytes_equal_fastavro_bytes(fullname: str, data: st.DataObject) -> None:
    codec = CATALOG.codec(fullname)
    record = draw_record(codec, data)
    expected = fastavro_bytes(codec.schema, record, codec.header)
    assert codec._compiled is not None
    assert codec._compiled(record) == expected  # the compiled path itself, no fallback
    assert codec.encode(record) == expected


@pytest.mark.parametrize("fullname", NAMES)
@settings(max_examples=60, **SLOW_DRAWS)
@given(data=st.data())
def test_compiled_reads_equal_fastavro_reads(fullname: str, data: st.DataObject) -> None:
    codec = CATALOG.codec(fullname)
    record = draw_record(codec, data)
    body = fastavro_bytes(codec.schema, record)
    reader = compile_reader(codec.schema)
    try:
        expected = fastavro_read(codec.schema, body)
    except (OverflowError, ValueError) as exc:  # a time or date beyond Python's: refused by both
        with pytest.raises(type(exc)):
            reader(codec.header + body, 10)
        return
    assert reader(codec.header + body, 10) == expected
    if isinstance(record, dict):
        assert codec.decode(codec.header + body) == expected


@pytest.mark.parametrize(
    "fullname",
    ["mdhub.customer.GoldenRecord", "mdhub.customer.CandidateChange", "mdhub.common.Link"],
)
@settings(max_examples=150, **SLOW_DRAWS)
@given(data=st.data())
def test_corrupt_bytes_are_read_as_fastavro_reads_them_or_refused(
    fullname: str, data: st.DataObject
) -> None:
    codec = CATALOG.codec(fullname)
    body = bytearray(fastavro_bytes(codec.schema, draw_record(codec, data)))
    cut = data.draw(st.integers(0, len(body)))
    for _ in range(data.draw(st.integers(0, 3))):  # flip a few bytes, then maybe cut the tail
        if body:
            body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    corrupt = bytes(body[:cut] if data.draw(st.booleans()) else body)
    reader = compile_reader(codec.schema)
    try:
        expected = fastavro_read(codec.schema, corrupt)
    except Exception:
        with pytest.raises(Exception):  # noqa: B017 - the compiled reader refuses it too
            reader(corrupt, 0)
        return
    try:
        got = reader(corrupt, 0)
    except Exception:
        return  # refused: AvroCodec lets fastavro read it
    assert same_values(got, expected), (got, expected)


def test_truncated_and_unusual_encodings_go_to_fastavro() -> None:
    codec = CATALOG.codec("mdhub.customer.CandidateChange")
    good = codec.encode(_change())
    with pytest.raises(Exception):  # noqa: B017
        compile_reader(codec.schema)(good[:-3], 10)
    array = fastavro.parse_schema({"type": "array", "items": "long"})
    sized_block = bytes([5, 6, 2, 4, 6, 0])  # count -3, then its size (3 bytes): 1, 2, 3
    assert fastavro_read(array, sized_block) == [1, 2, 3]
    with pytest.raises(Exception):  # noqa: B017
        compile_reader(array)(sized_block, 0)


def test_golden_record_of_the_pipeline_is_written_by_the_compiled_writer() -> None:
    codec = CATALOG.codec("mdhub.customer.GoldenRecord")
    when = dt.datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
    lineage = {"source": "crm", "source_key": "C-1", "rule": "source_priority", "occurred_at": when}
    record = {
        "golden_id": "g-1",
        "entity": "customer",
        "version": 3,
        "status": "active",
        "merged_into": None,
        "attributes": {
            "first_name": "Ada",
            "birth_date": dt.date(1815, 12, 10),
            "tags": ["a", "b"],
        },
        "lineage": {"first_name": lineage, "birth_date": lineage, "tags": lineage},
        "sources": [
            {
                "source": "crm",
                "source_key": "C-1",
                "source_version": 7,
                "change_id": "c-1",
                "occurred_at": dt.datetime(1960, 5, 5, 0, 0, 0, 999, tzinfo=dt.UTC),
                "deleted": False,
                "attributes": {"first_name": "Ada", "lifetime_value": -12.5},
            }
        ],
        "overrides": [],
        "links": [],
        "created_at": when,
        "updated_at": when,
        "content_hash": "abc",
    }
    expected = fastavro_bytes(codec.schema, record, codec.header)
    assert codec._compiled is not None and codec._compiled(record) == expected
    assert codec._reader is not None
    decoded = codec._reader(expected, 10)
    assert decoded == fastavro_read(codec.schema, expected[10:])
    assert decoded["attributes"]["birth_date"] == dt.date(1815, 12, 10)
    assert decoded["sources"][0]["occurred_at"] == dt.datetime(1960, 5, 5, 0, 0, 0, tzinfo=dt.UTC)


def _golden(**fields: Any) -> dict[str, Any]:
    return {
        "golden_id": "g-1",
        "entity": "customer",
        "version": 1,
        "status": "active",
        "attributes": {"tags": ["x", "y"]},
        "lineage": {},
        "sources": [],
        "overrides": [],
        "links": [],
        "created_at": 0,
        "updated_at": 0,
        "content_hash": "h",
        **fields,
    }


def test_input_the_compiled_writer_declines_gets_fastavro_bytes() -> None:
    codec = CATALOG.codec("mdhub.customer.GoldenRecord")
    # naive: fastavro reads it as local time, the compiled writer leaves that to it
    record = _golden(created_at=dt.datetime(2025, 1, 1, 8, 0), version=True)
    assert codec._compiled is not None
    with pytest.raises(_Fallback, match="naive datetime"):
        codec._compiled(record)
    assert codec.encode(record) == fastavro_bytes(codec.schema, record, codec.header)


def test_a_tuple_in_a_union_is_refused_as_fastavro_refuses_it() -> None:
    codec = CATALOG.codec("mdhub.customer.GoldenRecord")
    record = _golden(attributes={"tags": ("x", "y", "z")})  # fastavro: (branch name, value)?
    assert codec._compiled is not None
    with pytest.raises(_Fallback, match="tuple in union"):
        codec._compiled(record)
    with pytest.raises(ValueError, match="too many values to unpack"):
        fastavro_bytes(codec.schema, record)
    with pytest.raises(ValueError, match="too many values to unpack"):
        codec.encode(record)


def test_records_fastavro_refuses_still_raise_its_errors() -> None:
    codec = CATALOG.codec("mdhub.customer.CandidateChange")
    with pytest.raises(ValueError, match="no value and no default"):
        codec.encode({"change_id": "c"})
    with pytest.raises((TypeError, ValueError)):
        codec.encode({**_change(), "source_version": "seven"})


@pytest.mark.parametrize("version", [2**63, -(2**63) - 1, 2**70])
def test_longs_outside_64_bits_are_refused_as_fastavro_refuses_them(version: int) -> None:
    codec = CATALOG.codec("mdhub.customer.CandidateChange")
    record = {**_change(), "source_version": version}
    with pytest.raises(Exception) as expected:
        fastavro_bytes(codec.schema, record)
    with pytest.raises(expected.type):
        codec.encode(record)
    for edge in (2**63 - 1, -(2**63)):
        record = {**_change(), "source_version": edge}
        assert codec._compiled is not None
        assert codec._compiled(record) == fastavro_bytes(codec.schema, record, codec.header)


def test_nan_and_infinities_are_written_like_fastavro() -> None:
    codec = CATALOG.codec("mdhub.customer.Attributes")
    for value in (math.nan, math.inf, -math.inf, -0.0):
        record = {"lifetime_value": value}
        assert codec.encode(record) == fastavro_bytes(codec.schema, record, codec.header)


def test_unsupported_schemas_are_refused_so_fastavro_keeps_them() -> None:
    union3 = fastavro.parse_schema(
        {
            "type": "record",
            "name": "U",
            "fields": [{"name": "x", "type": ["null", "int", "string"]}],
        }
    )
    with pytest.raises(Unsupported, match="unions"):
        compile_writer(union3)
    decimal = fastavro.parse_schema(
        {
            "type": "record",
            "name": "D",
            "fields": [
                {
                    "name": "x",
                    "type": {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2},
                }
            ],
        }
    )
    with pytest.raises(Unsupported, match="decimal"):
        compile_writer(decimal)


def _change() -> dict[str, Any]:
    return {
        "change_id": "c-1",
        "source": "crm",
        "source_key": "C-1",
        "entity": "customer",
        "op": "upsert",
        "source_version": 1,
        "occurred_at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        "attributes": {},
    }
