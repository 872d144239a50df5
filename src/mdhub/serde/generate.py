"""Generate each entity type's Avro schemas from the entity model.

Shared types (``mdhub.common.*``) are hand-written files in ``schemas/``; the per-entity types
(``mdhub.<entity>.*``) follow from the model, so adding an entity type is a model entry plus
``mdhub schemas generate``.
"""

from __future__ import annotations

from typing import Any

from mdhub.domain.model import AttrType, EntityModel, HubModel

__all__ = ["COMMON_TYPES", "entity_schemas", "expected_schemas", "fullname"]

COMMON_TYPES = (
    "mdhub.common.Op",
    "mdhub.common.GoldenStatus",
    "mdhub.common.Reason",
    "mdhub.common.Lineage",
    "mdhub.common.Cause",
    "mdhub.common.RejectedRecord",
    "mdhub.common.Override",
    "mdhub.common.StewardCommand",
    "mdhub.common.LinkContribution",
    "mdhub.common.Link",
    "mdhub.common.PotentialMatch",
    "mdhub.common.RoutedInput",
    "mdhub.common.InputBundle",
)

_TIMESTAMP: dict[str, str] = {"type": "long", "logicalType": "timestamp-millis"}

_AVRO_TYPES: dict[AttrType, Any] = {
    AttrType.STRING: "string",
    AttrType.INTEGER: "long",
    AttrType.NUMBER: "double",
    AttrType.BOOLEAN: "boolean",
    AttrType.DATE: {"type": "int", "logicalType": "date"},
    AttrType.TIMESTAMP: _TIMESTAMP,
    AttrType.STRING_LIST: {"type": "array", "items": "string"},
}


def fullname(entity: str, name: str) -> str:
    """Return the Avro full name of an entity's type, e.g. ``mdhub.customer.GoldenRecord``."""
    return f"mdhub.{entity}.{name}"


def _attributes(entity: EntityModel) -> dict[str, Any]:
    fields = []
    for spec in entity.attributes.values():
        field: dict[str, Any] = {
            "name": spec.name,
            "type": ["null", _AVRO_TYPES[spec.type]],
            "default": None,
        }
        if spec.description:
            field["doc"] = spec.description
        fields.append(field)
    return {
        "type": "record",
        "name": "Attributes",
        "namespace": f"mdhub.{entity.name}",
        "doc": f"Attributes of a {entity.name}; every attribute is optional on the wire (null = absent).",
        "fields": fields,
    }


def _source_record(entity: EntityModel) -> dict[str, Any]:
    ns = f"mdhub.{entity.name}"
    return {
        "type": "record",
        "name": "SourceRecord",
        "namespace": ns,
        "doc": "The latest accepted state of one source record contributing to a golden record.",
        "fields": [
            {"name": "source", "type": "string"},
            {"name": "source_key", "type": "string"},
            {"name": "source_version", "type": "long"},
            {"name": "occurred_at", "type": _TIMESTAMP},
            {"name": "change_id", "type": "string"},
            {"name": "deleted", "type": "boolean", "default": False},
            {"name": "attributes", "type": f"{ns}.Attributes"},
        ],
    }


def _candidate_change(entity: EntityModel) -> dict[str, Any]:
    ns = f"mdhub.{entity.name}"
    return {
        "type": "record",
        "name": "CandidateChange",
        "namespace": ns,
        "doc": f"A source system's proposed change of a {entity.name}. Kafka key: '<source>:<source_key>'.",
        "fields": [
            {
                "name": "change_id",
                "type": "string",
                "doc": "unique per change; used for lineage and audit",
            },
            {"name": "entity", "type": "string"},
            {"name": "source", "type": "string"},
            {"name": "source_key", "type": "string"},
            {"name": "op", "type": "mdhub.common.Op"},
            {
                "name": "source_version",
                "type": "long",
                "doc": "increases with every change of the source record",
            },
            {"name": "occurred_at", "type": _TIMESTAMP},
            {"name": "attributes", "type": f"{ns}.Attributes"},
        ],
    }


def _golden_record(entity: EntityModel) -> dict[str, Any]:
    ns = f"mdhub.{entity.name}"
    return {
        "type": "record",
        "name": "GoldenRecord",
        "namespace": ns,
        "doc": f"The golden {entity.name}: latest accepted version. Kafka key: golden id.",
        "fields": [
            {"name": "golden_id", "type": "string"},
            {"name": "entity", "type": "string"},
            {"name": "version", "type": "long"},
            {"name": "status", "type": "mdhub.common.GoldenStatus"},
            {"name": "merged_into", "type": ["null", "string"], "default": None},
            {"name": "attributes", "type": f"{ns}.Attributes"},
            {"name": "lineage", "type": {"type": "map", "values": "mdhub.common.Lineage"}},
            {"name": "sources", "type": {"type": "array", "items": f"{ns}.SourceRecord"}},
            {
                "name": "overrides",
                "type": {"type": "array", "items": "mdhub.common.Override"},
                "default": [],
                "doc": "values pinned by data stewards",
            },
            {
                "name": "links",
                "type": {"type": "array", "items": "mdhub.common.Link"},
                "default": [],
                "doc": "why each source record belongs to this golden record",
            },
            {"name": "created_at", "type": _TIMESTAMP},
            {"name": "updated_at", "type": _TIMESTAMP},
            {"name": "content_hash", "type": "string"},
        ],
    }


def _change_event(entity: EntityModel) -> dict[str, Any]:
    ns = f"mdhub.{entity.name}"
    return {
        "type": "record",
        "name": "ChangeEvent",
        "namespace": ns,
        "doc": f"One accepted version of a golden {entity.name}, with before/after of what changed.",
        "fields": [
            {"name": "golden_id", "type": "string"},
            {"name": "entity", "type": "string"},
            {"name": "version", "type": "long"},
            {"name": "status", "type": "mdhub.common.GoldenStatus"},
            {"name": "changed", "type": {"type": "array", "items": "string"}},
            {"name": "before", "type": f"{ns}.Attributes"},
            {"name": "after", "type": f"{ns}.Attributes"},
            {"name": "cause", "type": "mdhub.common.Cause"},
            {"name": "occurred_at", "type": _TIMESTAMP},
        ],
    }


def entity_schemas(entity: EntityModel) -> dict[str, dict[str, Any]]:
    """Return the generated schemas of one entity type, by full name."""
    builders = (_attributes, _source_record, _candidate_change, _golden_record, _change_event)
    schemas = [build(entity) for build in builders]
    return {f"{s['namespace']}.{s['name']}": s for s in schemas}


def expected_schemas(model: HubModel) -> dict[str, dict[str, Any]]:
    """Return every generated schema the model implies, by full name."""
    out: dict[str, dict[str, Any]] = {}
    for entity in model.entities.values():
        out.update(entity_schemas(entity))
    return out
