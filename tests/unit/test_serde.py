"""The Avro contract: single-object framing, decode errors, schema evolution and schema files."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import shutil
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema
import pytest
import yaml

from mdhub.domain.merge import Applied, apply_change
from mdhub.domain.model import HubModel, parse_model
from mdhub.domain.records import CandidateChange, GoldenRecord, Op
from mdhub.errors import DecodeError, SchemaError, UnknownFingerprintError
from mdhub.modelfile import load_model
from mdhub.serde.catalog import MAGIC, SchemaCatalog
from mdhub.serde.mapping import (
    change_from_avro,
    change_to_avro,
    golden_from_avro,
    golden_to_avro,
)
from mdhub.serde.schemafiles import check_schemas, generate_schemas

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
MODEL_FILE = REPO / "config" / "model.yaml"
T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.load(SCHEMAS)


@pytest.fixture(scope="module")
def hub() -> HubModel:
    return load_model(MODEL_FILE)


@pytest.fixture
def schemas_copy(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, target, ignore=shutil.ignore_patterns("history"))
    return target


def customer_change(**attributes: Any) -> CandidateChange:
    return CandidateChange(
        change_id="chg-1",
        entity="customer",
        source="crm",
        source_key="C-1",
        op=Op.UPSERT,
        source_version=3,
        occurred_at=T0,
        attributes=attributes or {"first_name": "Grace", "last_name": "Hopper"},
    )


def model_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MODEL_FILE.read_text(encoding="utf-8"))
    return data


# -- single-object encoding ----------------------------------------------------------------------------

_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_avro(data: bytes) -> bytes:
    """CRC-64-AVRO as the Avro specification defines it, little-endian as on the wire."""
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")


def test_crc64_helper_matches_the_spec_test_vector() -> None:
    # guards the oracle used below: the fingerprint of the primitive schema "int"
    assert _crc64_avro(b'"int"').hex() == "8f5c393f1ad57572"


def test_every_schema_is_framed_with_c3_01_and_its_crc64_fingerprint(
    catalog: SchemaCatalog,
) -> None:
    assert len(catalog.names) >= 16
    for name in catalog.names:
        codec = catalog.codec(name)
        canonical = fastavro.schema.to_parsing_canonical_form(
            fastavro.schema.load_schema(str(SCHEMAS / f"{name}.avsc"))
        )
        expected = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))

        assert codec.header == MAGIC + expected == b"\xc3\x01" + expected, name
        assert codec.fingerprint == _crc64_avro(canonical.encode()), name


def test_encoded_change_is_readable_by_plain_fastavro_with_schemas_dir(
    catalog: SchemaCatalog, hub: HubModel
) -> None:
    codec = catalog.codec("mdhub.customer.CandidateChange")
    change = customer_change(first_name="Grace", last_name="Hopper", tags=("vip",))

    data = codec.encode(change_to_avro(hub.entity("customer"), change))

    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == codec.fingerprint
    schema = fastavro.schema.load_schema(str(SCHEMAS / "mdhub.customer.CandidateChange.avsc"))
    record = fastavro.schemaless_reader(io.BytesIO(data[10:]), schema, None)
    assert isinstance(record, dict)
    assert record["source_key"] == "C-1"
    assert record["attributes"]["tags"] == ["vip"]
    assert record["attributes"]["email"] is None
    assert change_from_avro(codec.decode(data)) == change


def test_unknown_fingerprint_is_unknown_schema(catalog: SchemaCatalog) -> None:
    codec = catalog.codec("mdhub.customer.CandidateChange")
    good = codec.encode(
        change_to_avro(load_model(MODEL_FILE).entity("customer"), customer_change())
    )
    forged = MAGIC + bytes(8) + good[10:]

    with pytest.raises(UnknownFingerprintError) as info:
        codec.decode(forged)

    assert info.value.code == "UNKNOWN_SCHEMA"
    assert "0000000000000000" in str(info.value)
    assert isinstance(info.value, DecodeError)


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\xc3\x01",
        b"hello, this is not avro at all",
        b"\xc3\x02" + bytes(20),
        b'{"change_id": "json is not avro"}',
    ],
    ids=["empty", "marker-only", "text", "wrong-marker", "json"],
)
def test_garbage_is_undecodable(catalog: SchemaCatalog, garbage: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        catalog.codec("mdhub.customer.CandidateChange").decode(garbage)

    assert info.value.code == "UNDECODABLE"
    assert not isinstance(info.value, UnknownFingerprintError)


def test_right_header_with_a_corrupt_body_is_undecodable(catalog: SchemaCatalog) -> None:
    codec = catalog.codec("mdhub.customer.CandidateChange")

    with pytest.raises(DecodeError) as info:
        codec.decode(codec.header + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")

    assert info.value.code == "UNDECODABLE"


def test_a_record_of_another_type_is_undecodable_naming_both(
    catalog: SchemaCatalog, hub: HubModel
) -> None:
    product = CandidateChange(
        "p-1", "product", "erp", "SKU-1", Op.UPSERT, 1, T0, {"sku": "SKU-1", "name": "Lamp"}
    )
    data = catalog.codec("mdhub.product.CandidateChange").encode(
        change_to_avro(hub.entity("product"), product)
    )

    with pytest.raises(DecodeError) as info:
        catalog.codec("mdhub.customer.CandidateChange").decode(data)

    assert info.value.code == "UNDECODABLE"
    assert not isinstance(info.value, UnknownFingerprintError)
    assert "mdhub.product.CandidateChange" in str(info.value)
    assert "mdhub.customer.CandidateChange" in str(info.value)


def test_codec_of_an_unknown_type_is_a_schema_error(catalog: SchemaCatalog) -> None:
    with pytest.raises(SchemaError, match=r"mdhub\.supplier\.CandidateChange.*schemas generate"):
        catalog.codec("mdhub.supplier.CandidateChange")


def test_loading_a_missing_directory_is_a_schema_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"schema directory not found.*MDHUB_SCHEMAS_DIR"):
        SchemaCatalog.load(tmp_path / "nowhere")


def test_loading_a_broken_schema_file_names_it(schemas_copy: Path) -> None:
    broken = schemas_copy / "mdhub.customer.Attributes.avsc"
    broken.write_text('{"type": "record", "name": "Attributes"', encoding="utf-8")

    with pytest.raises(SchemaError, match=r"mdhub\.customer\.Attributes\.avsc: not a valid"):
        SchemaCatalog.load(schemas_copy)


def test_problems_names_what_does_not_fit(catalog: SchemaCatalog, hub: HubModel) -> None:
    codec = catalog.codec("mdhub.customer.CandidateChange")
    record = change_to_avro(hub.entity("customer"), customer_change())

    assert codec.problems(record) == []
    record["source_version"] = "three"
    assert any("source_version" in p for p in codec.problems(record))


# -- schema evolution: old writer, new reader ----------------------------------------------------------


def _old_and_new(dropped: str) -> tuple[HubModel, HubModel]:
    new = model_data()
    old = copy.deepcopy(new)
    del old["entities"]["customer"]["attributes"][dropped]
    old["entities"]["customer"].pop("match", None)  # it may name the dropped attribute
    return parse_model(old, "old.yaml"), parse_model(new, "new.yaml")


def test_old_writer_change_is_read_by_the_new_reader(schemas_copy: Path) -> None:
    old_model, new_model = _old_and_new("phone")
    generate_schemas(old_model, schemas_copy)
    old_codec = SchemaCatalog.load(schemas_copy).codec("mdhub.customer.CandidateChange")
    change = customer_change(first_name="Grace", last_name="Hopper", email="g@navy.example")
    old_bytes = old_codec.encode(change_to_avro(old_model.entity("customer"), change))

    changes = {c.fullname: c for c in generate_schemas(new_model, schemas_copy)}

    # the old CandidateChange writer (not only Attributes) is archived
    archived = changes["mdhub.customer.CandidateChange"].archived
    assert archived is not None
    assert archived.parent == schemas_copy / "history"
    assert archived.name == f"mdhub.customer.CandidateChange@{old_codec.fingerprint.hex()}.avsc"
    new_codec = SchemaCatalog.load(schemas_copy).codec("mdhub.customer.CandidateChange")
    assert new_codec.fingerprint != old_codec.fingerprint
    raw = new_codec.decode(old_bytes)
    assert raw["attributes"]["phone"] is None
    decoded = change_from_avro(raw)
    assert decoded == change
    assert "phone" not in decoded.attributes
    assert check_schemas(new_model, schemas_copy) == []


def test_old_writer_golden_state_is_read_after_a_model_change(schemas_copy: Path) -> None:
    # the worker's state store holds golden records written before the schema change
    old_model, new_model = _old_and_new("city")
    generate_schemas(old_model, schemas_copy)
    old_entity = old_model.entity("customer")
    outcome = apply_change(old_entity, None, customer_change(), "gid-1")
    assert isinstance(outcome, Applied)
    golden: GoldenRecord = outcome.golden
    old_bytes = (
        SchemaCatalog.load(schemas_copy)
        .codec("mdhub.customer.GoldenRecord")
        .encode(golden_to_avro(old_entity, golden))
    )

    generate_schemas(new_model, schemas_copy)
    catalog = SchemaCatalog.load(schemas_copy)

    assert (
        golden_from_avro(catalog.codec("mdhub.customer.GoldenRecord").decode(old_bytes)) == golden
    )


def test_a_record_written_with_a_since_removed_field_drops_it(schemas_copy: Path) -> None:
    # new writer with an extra field, then the field is removed from the model
    new_model, old_model = _old_and_new("phone")  # "old" here has phone, "new" does not
    generate_schemas(old_model, schemas_copy)
    writer = SchemaCatalog.load(schemas_copy).codec("mdhub.customer.CandidateChange")
    change = customer_change(first_name="Alan", last_name="Turing", phone="+44 1234")
    data = writer.encode(change_to_avro(old_model.entity("customer"), change))

    generate_schemas(new_model, schemas_copy)
    decoded = change_from_avro(
        SchemaCatalog.load(schemas_copy).codec("mdhub.customer.CandidateChange").decode(data)
    )

    assert decoded.attributes == {"first_name": "Alan", "last_name": "Turing"}


# -- schema files and the model ------------------------------------------------------------------------


def test_the_shipped_schemas_agree_with_the_shipped_model(hub: HubModel) -> None:
    assert check_schemas(hub, SCHEMAS) == []


def test_generate_is_idempotent(schemas_copy: Path, hub: HubModel) -> None:
    for path in schemas_copy.glob("mdhub.customer.*.avsc"):
        path.unlink()

    first = generate_schemas(hub, schemas_copy)
    second = generate_schemas(hub, schemas_copy)

    assert {c.fullname: c.action for c in first if c.fullname.startswith("mdhub.customer.")} == {
        f"mdhub.customer.{t}": "created"
        for t in ("Attributes", "SourceRecord", "CandidateChange", "GoldenRecord", "ChangeEvent")
    }
    assert len(second) == 10
    assert {c.action for c in second} == {"unchanged"}
    assert all(c.archived is None for c in second)
    assert not (schemas_copy / "history").exists()
    assert check_schemas(hub, schemas_copy) == []


def test_check_reports_a_file_that_differs_from_the_model(
    schemas_copy: Path, hub: HubModel
) -> None:
    path = schemas_copy / "mdhub.customer.Attributes.avsc"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "phone"]
    schema["fields"].append({"name": "fax", "type": ["null", "string"], "default": None})
    path.write_text(json.dumps(schema), encoding="utf-8")

    problems = check_schemas(hub, schemas_copy)

    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: differs from the model")
    assert "missing fields: phone" in problems[0]
    assert "fields not in the model: fax" in problems[0]
    assert "mdhub schemas generate" in problems[0]


def test_check_reports_missing_and_extra_files(schemas_copy: Path, hub: HubModel) -> None:
    (schemas_copy / "mdhub.product.ChangeEvent.avsc").unlink()
    (schemas_copy / "mdhub.common.Reason.avsc").unlink()
    supplier = {"type": "record", "name": "Attributes", "namespace": "mdhub.supplier", "fields": []}
    (schemas_copy / "mdhub.supplier.Attributes.avsc").write_text(json.dumps(supplier))
    stray = {"type": "record", "name": "Note", "namespace": "mdhub.customer", "fields": []}
    (schemas_copy / "mdhub.customer.Note.avsc").write_text(json.dumps(stray))

    problems = "\n".join(check_schemas(hub, schemas_copy))

    assert f"{schemas_copy}/mdhub.product.ChangeEvent.avsc: missing" in problems
    assert f"{schemas_copy}/mdhub.common.Reason.avsc: shared schema missing" in problems
    assert (
        f"{schemas_copy}/mdhub.supplier.Attributes.avsc: the model has no such entity type"
        in problems
    )
    assert f"{schemas_copy}/mdhub.customer.Note.avsc: the model has no such type" in problems


def test_check_of_a_missing_directory(tmp_path: Path, hub: HubModel) -> None:
    assert check_schemas(hub, tmp_path / "none") == [
        f"{tmp_path / 'none'}: schema directory not found"
    ]


def test_invalid_utf8_in_a_string_field_has_its_own_reason_code() -> None:
    import datetime as dt

    catalog = SchemaCatalog.load(SCHEMAS)
    codec = catalog.codec("mdhub.customer.CandidateChange")
    good = codec.encode(
        {
            "change_id": "c1",
            "entity": "customer",
            "source": "crm",
            "source_key": "KEY\u00e9",
            "op": "upsert",
            "source_version": 1,
            "occurred_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            "attributes": {},
        }
    )
    broken = good.replace("KEY\u00e9".encode(), b"KEY\xff\xfe")  # same length, not UTF-8
    with pytest.raises(DecodeError) as err:
        codec.decode(broken)
    assert err.value.code == "INVALID_UTF8"
