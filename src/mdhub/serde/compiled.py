"""Avro binary writers compiled from a schema into one Python function per type.

fastavro walks the schema for every record it writes: per field it looks up the field's type,
dispatches on its name and, for every union, validates the value against each branch. The hub
writes the same few types (golden records, change events) thousands of times a second, and that
walk is most of the cost. :func:`compile_writer` does the walk once and generates straight-line
code: one statement per field, unions of ``null`` and one other type decided by ``is None``.

The output is byte-for-byte what fastavro writes (``tests/unit/test_compiled_writer.py`` checks
it on every schema of ``schemas/``). Only the subset of Avro the hub's schemas use is compiled;
for any other schema :func:`compile_writer` returns ``None`` and the caller keeps fastavro. A
value the compiled code does not accept raises, and :class:`~mdhub.serde.catalog.AvroCodec` then
lets fastavro write the record, so odd input still gets fastavro's answer or its error.
"""

from __future__ import annotations

import datetime as dt
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Unsupported", "compile_reader", "compile_writer"]

Writer = Callable[[Mapping[str, Any]], bytes]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAYS_SHIFT = dt.date(1970, 1, 1).toordinal()
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_COMPLEX = frozenset({"record", "enum", "array", "map", "fixed"})  # the hooks' names
_NO_DEFAULT = object()


class Unsupported(Exception):
    """The schema uses a part of Avro that the compiler leaves to fastavro."""


class _Fallback(Exception):
    """A value the compiled code does not handle: fastavro decides."""


def _zigzag(n: int) -> bytes:
    """The Avro ``long`` encoding of ``n`` (zig-zag, then base-128 varint)."""
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:
        return _SMALL[n]
    if n >> 64:  # outside Avro's 64-bit long: fastavro refuses it
        raise _Fallback("long out of range")
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = tuple(bytes([i]) for i in range(0x80))
# zig-zag of 0..63 is a single byte: lengths and small counts are looked up, not computed
_LEN = tuple(bytes([2 * i]) for i in range(64))


def _int(n: int) -> bytes:
    if not _INT_MIN <= n <= _INT_MAX:
        raise _Fallback("int out of range")
    return _zigzag(n)


def _timestamp_millis(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # fastavro reads naive times as local time: leave it to fastavro
            raise _Fallback("naive datetime")
        delta = value - _EPOCH
        return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000
    return value


_last_timestamp: tuple[Any, bytes] = (None, b"")


def _timestamp_bytes(value: Any) -> bytes:
    """The encoded ``timestamp-millis`` of ``value``; a record's many lineage entries usually
    carry the same datetime object, so the last one is remembered (by identity)."""
    global _last_timestamp
    last = _last_timestamp
    if value is last[0] and value is not None:
        return last[1]
    encoded = _zigzag(_timestamp_millis(value))
    if isinstance(value, dt.datetime):
        _last_timestamp = (value, encoded)
    return encoded


def _date(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.toordinal() - _DAYS_SHIFT
    if isinstance(value, str):
        return dt.date.fromisoformat(value).toordinal() - _DAYS_SHIFT
    return value


def _is_scalar(schema: Any) -> bool:
    """A primitive (or a logical type on one): its writer refuses a tuple by itself."""
    if isinstance(schema, str):
        return schema in _PRIMITIVES
    if isinstance(schema, dict):
        kind = schema.get("type")
        return isinstance(kind, str) and kind in _PRIMITIVES
    return False


def _not_sequence(value: Any) -> None:
    raise _Fallback(f"not an array: {type(value).__name__}")


class _Compiler(ABC):
    """Generates the source of one function: :meth:`visit` walks the schema once and calls, per
    type, the hook the writer or the reader implements (``union``, ``record``, ``enum``,
    ``array``, ``map``, ``fixed``, ``primitive``, and ``timestamp_millis`` and ``date`` for the
    two logical types taken), each taking the schema where it needs one, the Python expression
    (the value written, or the target read into) and the indent."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = dict(named)
        self.lines: list[str] = []
        self.consts: list[Any] = []
        self.counter = 0
        self.expanding: set[str] = set()

    def var(self) -> str:
        self.counter += 1
        return f"v{self.counter}"

    def const(self, value: Any) -> str:
        self.consts.append(value)
        return f"K[{len(self.consts) - 1}]"

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def build(self, function: str, schema: Any, namespace: dict[str, Any]) -> Any:
        """Compile the emitted code, with ``namespace`` as its globals; return ``function``."""
        namespace.update(K=self.consts, F=_Fallback)
        source = "\n".join(self.lines)
        exec(compile(source, f"<avro {function} {schema_name(schema)}>", "exec"), namespace)
        return namespace[function]

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            if schema not in self.named:
                raise Unsupported(f"unknown named type {schema!r}")
            return self.named[schema]
        return schema

    def expand_named(
        self, schema: Any, emit: Callable[[Any, str, int], None], target: str, indent: int
    ) -> bool:
        """If ``schema`` names a type, emit (with ``emit``) the code for its definition; return
        whether it did. Recursive types are refused."""
        if not isinstance(schema, str) or schema in _PRIMITIVES:
            return False
        if schema in self.expanding:
            raise Unsupported(f"recursive type {schema!r}")
        self.expanding.add(schema)
        try:
            emit(self.resolve(schema), target, indent)
        finally:
            self.expanding.discard(schema)
        return True

    @staticmethod
    def null_union(branches: list[Any]) -> tuple[int, Any]:
        """The index of ``null`` in a union of null and one other type, and that type."""
        kinds = [b if isinstance(b, str) else b.get("type") for b in branches]
        if len(branches) != 2 or kinds.count("null") != 1:
            raise Unsupported("unions other than null and one type")
        null_index = kinds.index("null")
        return null_index, branches[1 - null_index]

    def visit(self, schema: Any, expr: str, indent: int) -> None:
        """Emit the code for a value of ``schema`` (named types expanded where used)."""
        if self.expand_named(schema, self.visit, expr, indent):
            return
        if isinstance(schema, list):
            self.union(schema, expr, indent)
            return
        if not isinstance(schema, dict):
            self.primitive(schema, expr, indent)
            return
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical is not None:
            if logical == "timestamp-millis" and kind == "long":
                self.timestamp_millis(expr, indent)
            elif logical == "date" and kind == "int":
                self.date(expr, indent)
            else:
                raise Unsupported(f"logical type {logical!r} on {kind!r}")
        elif isinstance(kind, str) and kind in _COMPLEX:
            getattr(self, kind)(schema, expr, indent)
        elif isinstance(kind, str | list | dict):
            self.visit(kind, expr, indent)
        else:  # pragma: no cover - fastavro's parser refuses these first
            raise Unsupported(f"type {kind!r}")

    @abstractmethod
    def union(self, branches: list[Any], expr: str, indent: int) -> None: ...

    @abstractmethod
    def timestamp_millis(self, expr: str, indent: int) -> None: ...

    @abstractmethod
    def date(self, expr: str, indent: int) -> None: ...

    @abstractmethod
    def primitive(self, kind: str, expr: str, indent: int) -> None: ...


class _WriterCompiler(_Compiler):
    """Generates the source of one writer function (``out += ...`` for each value)."""

    def enum(self, schema: dict[str, Any], value: str, indent: int) -> None:
        index = {symbol: i for i, symbol in enumerate(schema["symbols"])}
        self.emit(indent, f"out += Z({self.const(index)}[{value}])")

    def fixed(self, schema: dict[str, Any], value: str, indent: int) -> None:
        self.emit(indent, f"if len({value}) != {int(schema['size'])}: raise F('size')")
        self.emit(indent, f"out += {value}")

    def primitive(self, kind: str, value: str, indent: int) -> None:
        if kind == "null":
            self.emit(indent, f"if {value} is not None: raise F('not null')")
        elif kind == "boolean":
            self.emit(indent, f"if {value} is True: out += b'\\x01'")
            self.emit(indent, f"elif {value} is False: out += b'\\x00'")
            self.emit(indent, "else: raise F('not a boolean')")
        elif kind == "int":
            self.emit(indent, f"out += I({value})")
        elif kind == "long":
            self.emit(indent, f"out += Z({value})")
        elif kind == "float":
            self.emit(indent, f"out += PF({value})")
        elif kind == "double":
            self.emit(indent, f"out += PD({value})")
        elif kind in ("string", "bytes"):
            data = self.var()
            size = self.var()
            if kind == "string":
                self.emit(indent, f"{data} = {value}.encode()")
            else:
                self.emit(indent, f"{data} = {value}")
                self.emit(indent, f"if not isinstance({data}, BYTES): raise F('not bytes')")
            self.emit(indent, f"{size} = len({data})")
            self.emit(indent, f"out += L[{size}] if {size} < 64 else Z({size})")
            self.emit(indent, f"out += {data}")
        else:  # pragma: no cover - every primitive is listed
            raise Unsupported(f"primitive {kind!r}")

    def timestamp_millis(self, value: str, indent: int) -> None:
        self.emit(indent, f"out += TSB({value})")

    def date(self, value: str, indent: int) -> None:
        prepared = self.var()
        self.emit(indent, f"{prepared} = DATE({value})")
        self.emit(indent, f"out += I({prepared})")

    def union(self, branches: list[Any], value: str, indent: int) -> None:
        null_index, other = self.null_union(branches)
        self.emit(indent, f"if {value} is None:")
        self.emit(indent + 1, f"out += {bytes([2 * null_index])!r}")
        self.emit(indent, "else:")
        resolved = self.resolve(other)
        if not _is_scalar(resolved):
            # fastavro reads a tuple in a union as (branch name, value): leave that to it (a
            # scalar's writer refuses a tuple anyway)
            self.emit(indent + 1, f"if isinstance({value}, tuple): raise F('tuple in union')")
        self.emit(indent + 1, f"out += {bytes([2 * (1 - null_index)])!r}")
        self.visit(other, value, indent + 1)

    def record(self, schema: dict[str, Any], value: str, indent: int) -> None:
        get = self.var()
        self.emit(indent, f"{get} = {value}.get")
        for field in schema["fields"]:
            field_type = field["type"]
            default = field.get("default", _NO_DEFAULT)
            nullable = isinstance(field_type, list) and "null" in field_type
            v = self.var()
            name = repr(field["name"])
            if default is not _NO_DEFAULT and default is not None:
                self.emit(indent, f"{v} = {get}({name}, {self.const(default)})")
            elif nullable or default is None:
                self.emit(indent, f"{v} = {get}({name})")
            else:
                self.emit(indent, f"{v} = {value}[{name}]")
            self.visit(field_type, v, indent)

    def array(self, schema: dict[str, Any], value: str, indent: int) -> None:
        item = self.var()
        self.emit(indent, f"if not isinstance({value}, SEQ): NOTSEQ({value})")
        self.emit(indent, f"if {value}:")
        self.emit(indent + 1, f"out += Z(len({value}))")
        self.emit(indent + 1, f"for {item} in {value}:")
        self.visit(schema["items"], item, indent + 2)
        self.emit(indent, "out += b'\\x00'")

    def map(self, schema: dict[str, Any], value: str, indent: int) -> None:
        key, item, data = self.var(), self.var(), self.var()
        self.emit(indent, f"if {value}:")
        self.emit(indent + 1, f"out += Z(len({value}))")
        self.emit(indent + 1, f"for {key}, {item} in {value}.items():")
        self.emit(indent + 2, f"{data} = {key}.encode()")
        self.emit(indent + 2, f"out += Z(len({data}))")
        self.emit(indent + 2, f"out += {data}")
        self.visit(schema["values"], item, indent + 2)
        self.emit(indent, "out += b'\\x00'")


def compile_writer(
    schema: Any, named: Mapping[str, Any] | None = None, prefix: bytes = b""
) -> Writer:
    """Compile a writer of ``schema`` (as parsed by ``fastavro.parse_schema``).

    Args:
        schema: the parsed schema; named types it refers to by name are looked up in ``named``
            (default: the schema's own ``__named_schemas``).
        named: full name -> parsed schema of every named type.
        prefix: bytes every output starts with (e.g. the single-object encoding header).

    Returns:
        A function from a record (mapping) to ``prefix`` + its Avro binary encoding. It raises on
        values it does not handle; the caller then uses fastavro.

    Raises:
        Unsupported: the schema needs something the compiler does not do (unions other than
            null and one type, logical types other than ``timestamp-millis`` and ``date``,
            recursive types).
    """
    compiler = _WriterCompiler(_named_of(schema, named))
    compiler.emit(0, "def write(d):")
    compiler.emit(1, "out = bytearray(PREFIX)")
    compiler.visit(schema, "d", 1)
    compiler.emit(1, "return bytes(out)")
    namespace: dict[str, Any] = {
        "PREFIX": prefix,
        "Z": _zigzag,
        "I": _int,
        "L": _LEN,
        "PF": struct.Struct("<f").pack,
        "PD": struct.Struct("<d").pack,
        "TSB": _timestamp_bytes,
        "DATE": _date,
        "SEQ": (list, tuple),
        "NOTSEQ": _not_sequence,
        "BYTES": (bytes, bytearray),
    }
    writer: Writer = compiler.build("write", schema, namespace)
    return writer


def _named_of(schema: Any, named: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if named is not None:
        return named
    return schema.get("__named_schemas", {}) if isinstance(schema, dict) else {}


def schema_name(schema: Any) -> str:
    """The full name of a named schema, else its type."""
    if isinstance(schema, dict):
        return str(schema.get("name") or schema.get("type"))
    return str(schema)


# -- readers ----------------------------------------------------------------------------------

Reader = Callable[[bytes, int], dict[str, Any]]


def _read_long(data: bytes, p: int) -> tuple[int, int]:
    """Decode the Avro ``long`` at ``data[p]``; return it and the position after it."""
    b = data[p]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), p + 1
    n = b & 0x7F
    shift = 7
    p += 1
    while True:
        b = data[p]
        p += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise _Fallback("varint longer than 64 bits")
    if n >> 64:
        raise _Fallback("varint longer than 64 bits")
    return (n >> 1) ^ -(n & 1), p


_last_read_timestamp: tuple[int | None, Any] = (None, None)


def _timestamp_from_millis(millis: int) -> dt.datetime:
    """fastavro's datetime of a ``timestamp-millis``; equal neighbours share one object."""
    global _last_read_timestamp
    last = _last_read_timestamp
    if last[0] == millis:
        result: dt.datetime = last[1]
        return result
    value = _EPOCH + dt.timedelta(microseconds=millis * 1000)
    _last_read_timestamp = (millis, value)
    return value


class _ReaderCompiler(_Compiler):
    """Generates the source of one reader function (same-schema reads, no resolution)."""

    def long(self, target: str, indent: int) -> None:
        """Read a ``long`` into ``target``: a one-byte value (lengths, counts, small numbers: most
        of them) inline, any other through :func:`_read_long` (a call costs more than the read)."""
        self.emit(indent, f"{target} = data[p]")
        self.emit(indent, f"if {target} < 128:")
        self.emit(indent + 1, "p += 1")
        self.emit(indent + 1, f"{target} = ({target} >> 1) ^ -({target} & 1)")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"{target}, p = RL(data, p)")

    def timestamp_millis(self, target: str, indent: int) -> None:
        self.long(target, indent)
        self.emit(indent, f"{target} = TSR({target})")

    def date(self, target: str, indent: int) -> None:
        self.long(target, indent)
        self.emit(indent, f"{target} = DATEFROM({target} + DAYS)")

    def record(self, schema: dict[str, Any], target: str, indent: int) -> None:
        fields = []
        for field in schema["fields"]:
            v = self.var()
            self.visit(field["type"], v, indent)
            fields.append(f"{field['name']!r}: {v}")
        self.emit(indent, f"{target} = {{{', '.join(fields)}}}")

    def enum(self, schema: dict[str, Any], target: str, indent: int) -> None:
        symbols = self.const(tuple(schema["symbols"]))
        index = self.var()
        self.long(index, indent)
        self.emit(indent, f"if not 0 <= {index} < {len(schema['symbols'])}: raise F('enum')")
        self.emit(indent, f"{target} = {symbols}[{index}]")

    def fixed(self, schema: dict[str, Any], target: str, indent: int) -> None:
        size = int(schema["size"])
        self.emit(indent, f"if p + {size} > end: raise F('eof')")
        self.emit(indent, f"{target} = data[p:p + {size}]")
        self.emit(indent, f"p += {size}")

    def array(self, schema: dict[str, Any], target: str, indent: int) -> None:
        self.blocks(schema, target, indent)

    def map(self, schema: dict[str, Any], target: str, indent: int) -> None:
        self.blocks(schema, target, indent)

    def primitive(self, kind: str, target: str, indent: int) -> None:
        if kind == "null":
            self.emit(indent, f"{target} = None")
        elif kind == "boolean":
            self.emit(indent, f"{target} = data[p]")
            self.emit(indent, "p += 1")
            self.emit(indent, f"if {target} > 1: raise F('boolean')")
            self.emit(indent, f"{target} = {target} == 1")
        elif kind in ("int", "long"):
            self.long(target, indent)
        elif kind in ("float", "double"):
            width, unpack = (4, "UF") if kind == "float" else (8, "UD")
            self.emit(indent, f"{target} = {unpack}(data, p)[0]")
            self.emit(indent, f"p += {width}")
        elif kind in ("string", "bytes"):
            size, stop = self.var(), self.var()
            self.long(size, indent)
            self.emit(indent, f"{stop} = p + {size}")
            self.emit(indent, f"if {size} < 0 or {stop} > end: raise F('eof')")
            decode = ".decode()" if kind == "string" else ""
            self.emit(indent, f"{target} = data[p:{stop}]{decode}")
            self.emit(indent, f"p = {stop}")
        else:  # pragma: no cover - every primitive is listed
            raise Unsupported(f"primitive {kind!r}")

    def union(self, branches: list[Any], target: str, indent: int) -> None:
        null_index, other = self.null_union(branches)
        index = self.var()
        # a branch index of 0 or 1 is the single byte 0 or 2 (zig-zag): any other byte is
        # out of range (or an odd long encoding of one) and goes to fastavro
        self.emit(indent, f"{index} = data[p]")
        self.emit(indent, "p += 1")
        self.emit(indent, f"if {index} == {2 * null_index}:")
        self.emit(indent + 1, f"{target} = None")
        self.emit(indent, f"elif {index} == {2 * (1 - null_index)}:")
        self.visit(other, target, indent + 1)
        self.emit(indent, "else:")
        self.emit(indent + 1, "raise F('union index')")

    def blocks(self, schema: dict[str, Any], target: str, indent: int) -> None:
        count, item = self.var(), self.var()
        is_map = schema["type"] == "map"
        self.emit(indent, f"{target} = {{}}" if is_map else f"{target} = []")
        self.long(count, indent)
        self.emit(indent, f"while {count}:")
        # negative counts (blocks with byte sizes) are rare: fastavro reads those
        self.emit(indent + 1, f"if {count} < 0: raise F('sized block')")
        self.emit(indent + 1, f"for _ in range({count}):")
        if is_map:
            key = self.var()
            self.primitive("string", key, indent + 2)
            self.visit(schema["values"], item, indent + 2)
            self.emit(indent + 2, f"{target}[{key}] = {item}")
        else:
            self.visit(schema["items"], item, indent + 2)
            self.emit(indent + 2, f"{target}.append({item})")
        self.long(count, indent + 1)


def compile_reader(schema: Any, named: Mapping[str, Any] | None = None) -> Reader:
    """Compile a reader of data written with ``schema`` itself (no schema resolution).

    The returned function takes ``(data, start)`` and returns what
    ``fastavro.schemaless_reader(io.BytesIO(data[start:]), schema, None)`` returns for a
    record schema. It raises on anything unusual (truncated data, a union index or enum index
    out of range, blocks with byte sizes, a boolean byte other than 0 or 1); the caller then lets
    fastavro decide.

    Raises:
        Unsupported: as :func:`compile_writer`.
    """
    compiler = _ReaderCompiler(_named_of(schema, named))
    compiler.emit(0, "def read(data, p):")
    compiler.emit(1, "end = len(data)")
    compiler.visit(schema, "result", 1)
    compiler.emit(1, "return result")
    namespace: dict[str, Any] = {
        "RL": _read_long,
        "UF": struct.Struct("<f").unpack_from,
        "UD": struct.Struct("<d").unpack_from,
        "TSR": _timestamp_from_millis,
        "DATEFROM": dt.date.fromordinal,
        "DAYS": _DAYS_SHIFT,
    }
    reader: Reader = compiler.build("read", schema, namespace)
    return reader
