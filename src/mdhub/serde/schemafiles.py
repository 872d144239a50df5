"""Keep ``schemas/`` in step with the entity model: generate, archive old writers, and check."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema

from mdhub.domain.model import HubModel
from mdhub.serde.catalog import HISTORY_DIR, fingerprint_of
from mdhub.serde.generate import COMMON_TYPES, expected_schemas

__all__ = ["SchemaChange", "check_schemas", "generate_schemas"]


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """One schema file written by :func:`generate_schemas`."""

    fullname: str
    action: str  # "created", "updated" (old version archived) or "unchanged"
    archived: Path | None = None


def _dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2) + "\n"


def _canonical(path: Path) -> str:
    return str(fastavro.schema.to_parsing_canonical_form(fastavro.schema.load_schema(str(path))))


def _standalone(parsed: dict[str, Any]) -> dict[str, Any]:
    # A loaded schema defines each named type once and refers to it by name afterwards, so it is
    # self-contained; expand_schema would inline a type used twice (Attributes in before/after),
    # which no Avro parser accepts ("redefined named type").
    return {key: value for key, value in parsed.items() if not key.startswith("__")}


def generate_schemas(model: HubModel, schemas_dir: Path) -> list[SchemaChange]:
    """Write the schema files the model implies; archive every superseded writer schema.

    A changed schema's previous version is saved, fully expanded, as
    ``history/<fullname>@<fingerprint>.avsc`` so records written with it stay readable.
    """
    history = schemas_dir / HISTORY_DIR
    changes: list[SchemaChange] = []
    expected = expected_schemas(model)
    # Expand old versions before anything is rewritten: their references point at old siblings.
    old_expanded: dict[str, Any] = {}
    for name in expected:
        path = schemas_dir / f"{name}.avsc"
        if path.exists():
            old_expanded[name] = fastavro.schema.load_schema(str(path))
    rewritten: dict[str, bool] = {}
    for name, schema in expected.items():
        path = schemas_dir / f"{name}.avsc"
        text = _dump(schema)
        if not path.exists():
            path.write_text(text, encoding="utf-8")
            continue
        rewritten[name] = path.read_text(encoding="utf-8") != text
        if rewritten[name]:
            path.write_text(text, encoding="utf-8")
    # Compare expanded writers only once every file is written: a type whose own file is unchanged
    # (CandidateChange) still gets a new writer schema when a type it references (Attributes) does.
    for name in expected:
        path = schemas_dir / f"{name}.avsc"
        if name not in old_expanded:
            changes.append(SchemaChange(name, "created"))
            continue
        old = old_expanded[name]
        if _canonical(path) == fastavro.schema.to_parsing_canonical_form(old):
            # unchanged, or docs only: same writer schema
            changes.append(SchemaChange(name, "updated" if rewritten[name] else "unchanged"))
            continue
        history.mkdir(parents=True, exist_ok=True)
        archived = history / f"{name}@{fingerprint_of(old).hex()}.avsc"
        archived.write_text(json.dumps(_standalone(old), indent=2) + "\n", encoding="utf-8")
        changes.append(SchemaChange(name, "updated", archived))
    return changes


def check_schemas(model: HubModel, schemas_dir: Path) -> list[str]:
    """Return every inconsistency between the model and ``schemas/`` (empty when they agree)."""
    problems: list[str] = []
    if not schemas_dir.is_dir():
        return [f"{schemas_dir}: schema directory not found"]
    for name in COMMON_TYPES:
        if not (schemas_dir / f"{name}.avsc").exists():
            problems.append(f"{schemas_dir}/{name}.avsc: shared schema missing")
    expected = expected_schemas(model)
    for name, schema in expected.items():
        path = schemas_dir / f"{name}.avsc"
        if not path.exists():
            problems.append(f"{path}: missing; run `mdhub schemas generate`")
            continue
        try:
            on_disk = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            problems.append(f"{path}: not JSON: {exc}")
            continue
        if on_disk != schema:
            disk_fields = (
                {f["name"] for f in on_disk.get("fields", [])}
                if isinstance(on_disk, dict)
                else set()
            )
            want_fields = {f["name"] for f in schema["fields"]}
            detail = []
            if want_fields - disk_fields:
                detail.append("missing fields: " + ", ".join(sorted(want_fields - disk_fields)))
            if disk_fields - want_fields:
                detail.append(
                    "fields not in the model: " + ", ".join(sorted(disk_fields - want_fields))
                )
            problems.append(
                f"{path}: differs from the model ({'; '.join(detail) or 'types or docs differ'}); "
                "run `mdhub schemas generate`"
            )
    entity_prefixes = {f"mdhub.{entity}." for entity in model.entities}
    for path in sorted(schemas_dir.glob("*.avsc")):
        name = path.stem
        if name.startswith("mdhub.common."):
            continue
        if name not in expected:
            owner = next((p for p in entity_prefixes if name.startswith(p)), None)
            why = "the model has no such type" if owner else "the model has no such entity type"
            problems.append(f"{path}: {why}; remove it or add the entity to the model")
    for path in sorted(schemas_dir.glob("*.avsc")):
        try:
            fastavro.schema.load_schema(str(path))
        except Exception as exc:
            problems.append(f"{path}: not a valid Avro schema: {exc}")
    for path in sorted((schemas_dir / HISTORY_DIR).glob("*.avsc")):
        try:
            fastavro.parse_schema(json.loads(path.read_text(encoding="utf-8")))
        except Exception as exc:
            problems.append(f"{path}: not a valid archived schema: {exc}")
    return problems
