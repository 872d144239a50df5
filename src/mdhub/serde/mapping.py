"""Map domain values to the dicts fastavro reads and writes, and golden records to JSON documents."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from mdhub.domain.commands import Action, StewardCommand
from mdhub.domain.model import AttrType, EntityModel
from mdhub.domain.records import (
    Attributes,
    CandidateChange,
    Cause,
    CauseKind,
    ChangeEvent,
    GoldenRecord,
    GoldenStatus,
    Lineage,
    Link,
    LinkContribution,
    LinkMethod,
    Op,
    Override,
    Reason,
    SourceRecord,
    Value,
)
from mdhub.domain.resolve import PotentialMatch
from mdhub.domain.versioning import json_value

__all__ = [
    "attributes_from_avro",
    "attributes_to_avro",
    "change_event_to_avro",
    "change_from_avro",
    "change_to_avro",
    "golden_from_avro",
    "golden_to_avro",
    "golden_to_json",
    "json_time",
    "link_to_json",
    "potential_match_from_avro",
    "potential_match_to_avro",
    "potential_match_to_json",
    "rejected_to_avro",
]


def _contribution_to_avro(c: LinkContribution) -> dict[str, Any]:
    return {
        "attribute": c.attribute,
        "method": c.method,
        "similarity": c.similarity,
        "weight": c.weight,
        "detail": c.detail,
    }


def _contribution_from_avro(c: Mapping[str, Any]) -> LinkContribution:
    return LinkContribution(
        c["attribute"], c["method"], c.get("similarity"), c["weight"], c.get("detail", "")
    )


def _link_to_avro(link: Link) -> dict[str, Any]:
    return {
        "source": link.source,
        "source_key": link.source_key,
        "method": link.method.value,
        "decided_at": link.decided_at,
        "score": link.score,
        "matched_ref": link.matched_ref,
        "blocking_key": link.blocking_key,
        "rule": link.rule,
        "contributions": [_contribution_to_avro(c) for c in link.contributions],
        "command_id": link.command_id,
        "merged_from": link.merged_from,
    }


def _link_from_avro(data: Mapping[str, Any]) -> Link:
    return Link(
        source=data["source"],
        source_key=data["source_key"],
        method=LinkMethod(data["method"]),
        decided_at=data["decided_at"],
        score=data.get("score"),
        matched_ref=data.get("matched_ref"),
        blocking_key=data.get("blocking_key"),
        rule=data.get("rule"),
        contributions=tuple(_contribution_from_avro(c) for c in data.get("contributions") or ()),
        command_id=data.get("command_id"),
        merged_from=data.get("merged_from"),
    )


def link_to_json(link: Link) -> dict[str, Any]:
    """A link as a JSON document (explanations)."""
    return {**_link_to_avro(link), "decided_at": json_time(link.decided_at)}


def attributes_to_avro(entity: EntityModel, attributes: Attributes) -> dict[str, Any]:
    """Every model attribute, ``None`` where absent; tuples become lists."""
    out: dict[str, Any] = {}
    for name in entity.attributes:
        value = attributes.get(name)
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def attributes_from_avro(data: Mapping[str, Any] | None) -> dict[str, Value]:
    """Attributes with a value (``None`` means absent); lists become tuples."""
    out: dict[str, Value] = {}
    for name, value in (data or {}).items():
        if value is None:
            continue
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


def change_to_avro(entity: EntityModel, change: CandidateChange) -> dict[str, Any]:
    """Candidate change -> Avro dict."""
    return {
        "change_id": change.change_id,
        "entity": change.entity,
        "source": change.source,
        "source_key": change.source_key,
        "op": change.op.value,
        "source_version": change.source_version,
        "occurred_at": change.occurred_at,
        "attributes": attributes_to_avro(entity, change.attributes),
    }


def change_from_avro(data: Mapping[str, Any]) -> CandidateChange:
    """Avro dict -> candidate change."""
    return CandidateChange(
        change_id=data["change_id"],
        entity=data["entity"],
        source=data["source"],
        source_key=data["source_key"],
        op=Op(data["op"]),
        source_version=data["source_version"],
        occurred_at=data["occurred_at"],
        attributes=attributes_from_avro(data["attributes"]),
    )


def _source_to_avro(entity: EntityModel, record: SourceRecord) -> dict[str, Any]:
    return {
        "source": record.source,
        "source_key": record.source_key,
        "source_version": record.source_version,
        "occurred_at": record.occurred_at,
        "change_id": record.change_id,
        "deleted": record.deleted,
        "attributes": attributes_to_avro(entity, record.attributes),
    }


def golden_to_avro(entity: EntityModel, golden: GoldenRecord) -> dict[str, Any]:
    """Golden record -> Avro dict."""
    return {
        "golden_id": golden.golden_id,
        "entity": golden.entity,
        "version": golden.version,
        "status": golden.status.value,
        "merged_into": golden.merged_into,
        "attributes": attributes_to_avro(entity, golden.attributes),
        "lineage": {
            name: {
                "source": ln.source,
                "source_key": ln.source_key,
                "rule": ln.rule,
                "occurred_at": ln.occurred_at,
            }
            for name, ln in golden.lineage.items()
        },
        "sources": [_source_to_avro(entity, record) for record in golden.sources],
        "created_at": golden.created_at,
        "updated_at": golden.updated_at,
        "content_hash": golden.content_hash,
        "overrides": [
            {
                "attribute": o.attribute,
                "value_json": value_to_json(o.value),
                "command_id": o.command_id,
                "issued_at": o.issued_at,
            }
            for o in golden.overrides
        ],
        "links": [_link_to_avro(k) for k in golden.links],
    }


def value_to_json(value: Value) -> str:
    """An attribute value as JSON text (dates and times as ISO 8601)."""
    return json.dumps(json_value(value))


def value_from_json(entity: EntityModel | None, attribute: str, text: str) -> Value:
    """Parse an attribute value from JSON text, typed by the model when it is known.

    A value that does not parse as its type is returned as it is, for validation to report.
    """
    raw = json.loads(text)
    spec = entity.attributes.get(attribute) if entity is not None else None
    if isinstance(raw, list):
        return tuple(str(v) for v in raw)
    if spec is not None and isinstance(raw, str):
        try:
            if spec.type is AttrType.DATE:
                return dt.date.fromisoformat(raw)
            if spec.type is AttrType.TIMESTAMP:
                return dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return raw
    if (
        spec is not None
        and spec.type is AttrType.NUMBER
        and isinstance(raw, int)
        and not isinstance(raw, bool)
    ):
        return float(raw)
    if isinstance(raw, str | int | float | bool):
        return raw
    return str(raw)


def golden_from_avro(data: Mapping[str, Any], entity: EntityModel | None = None) -> GoldenRecord:
    """Avro dict -> golden record (``entity`` types the steward overrides' values)."""
    return GoldenRecord(
        golden_id=data["golden_id"],
        entity=data["entity"],
        version=data["version"],
        status=GoldenStatus(data["status"]),
        attributes=attributes_from_avro(data["attributes"]),
        lineage={
            name: Lineage(ln["source"], ln["source_key"], ln["rule"], ln["occurred_at"])
            for name, ln in data["lineage"].items()
        },
        sources=tuple(
            SourceRecord(
                source=s["source"],
                source_key=s["source_key"],
                source_version=s["source_version"],
                occurred_at=s["occurred_at"],
                change_id=s["change_id"],
                attributes=attributes_from_avro(s["attributes"]),
                deleted=s.get("deleted", False),
            )
            for s in data["sources"]
        ),
        created_at=data["created_at"],
        updated_at=data["updated_at"],
        content_hash=data["content_hash"],
        merged_into=data.get("merged_into"),
        overrides=tuple(
            Override(
                o["attribute"],
                value_from_json(entity, o["attribute"], o["value_json"]),
                o["command_id"],
                o["issued_at"],
            )
            for o in data.get("overrides") or ()
        ),
        links=tuple(_link_from_avro(k) for k in data.get("links") or ()),
    )


def change_event_to_avro(entity: EntityModel, event: ChangeEvent) -> dict[str, Any]:
    """Change event -> Avro dict."""
    return {
        "golden_id": event.golden_id,
        "entity": event.entity,
        "version": event.version,
        "status": event.status.value,
        "changed": list(event.changed),
        "before": attributes_to_avro(entity, event.before),
        "after": attributes_to_avro(entity, event.after),
        "cause": {
            "kind": event.cause.kind.value,
            "id": event.cause.id,
            "source": event.cause.source,
            "source_key": event.cause.source_key,
        },
        "occurred_at": event.occurred_at,
    }


def change_event_from_avro(data: Mapping[str, Any]) -> ChangeEvent:
    """Avro dict -> change event."""
    cause = data["cause"]
    return ChangeEvent(
        golden_id=data["golden_id"],
        entity=data["entity"],
        version=data["version"],
        status=GoldenStatus(data["status"]),
        changed=tuple(data["changed"]),
        before=attributes_from_avro(data["before"]),
        after=attributes_from_avro(data["after"]),
        cause=Cause(
            CauseKind(cause["kind"]), cause["id"], cause.get("source"), cause.get("source_key")
        ),
        occurred_at=data["occurred_at"],
    )


def rejected_to_avro(
    *,
    entity: str,
    stage: str,
    topic: str,
    partition: int,
    offset: int,
    timestamp: dt.datetime | None,
    key: bytes | None,
    value: bytes | None,
    reasons: tuple[Reason, ...] | list[Reason],
    change: CandidateChange | None = None,
) -> dict[str, Any]:
    """Build the rejected-record envelope around the original bytes."""
    when = timestamp or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return {
        "entity": entity,
        "stage": stage,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": timestamp,
        "key": key,
        "value": value,
        "change_id": change.change_id if change else None,
        "source": change.source if change else None,
        "source_key": change.source_key if change else None,
        "reasons": [
            {"code": r.code, "message": r.message, "attribute": r.attribute} for r in reasons
        ],
        "rejected_at": when,
    }


@lru_cache(maxsize=16_384)
def json_time(value: dt.datetime) -> str:
    """A timestamp as JSON text: ISO 8601 in UTC with a ``Z``.

    Cached: a golden document holds a timestamp per attribute's lineage and per source, mostly
    the same few, and the projector renders one document per golden version.
    """
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def golden_to_json(golden: GoldenRecord) -> dict[str, Any]:
    """The golden record as a JSON document (read views, API, ``mdhub tail``)."""
    return {
        "golden_id": golden.golden_id,
        "entity": golden.entity,
        "version": golden.version,
        "status": golden.status.value,
        "merged_into": golden.merged_into,
        "attributes": {name: json_value(value) for name, value in golden.attributes.items()},
        "lineage": {
            name: {
                "source": ln.source,
                "source_key": ln.source_key,
                "rule": ln.rule,
                "occurred_at": json_time(ln.occurred_at),
            }
            for name, ln in golden.lineage.items()
        },
        "sources": [
            {
                "source": s.source,
                "source_key": s.source_key,
                "source_version": s.source_version,
                "occurred_at": json_time(s.occurred_at),
                "change_id": s.change_id,
                "deleted": s.deleted,
            }
            for s in golden.sources
        ],
        "created_at": json_time(golden.created_at),
        "updated_at": json_time(golden.updated_at),
        "content_hash": golden.content_hash,
        "overrides": [
            {
                "attribute": o.attribute,
                "value": json_value(o.value),
                "command_id": o.command_id,
                "issued_at": json_time(o.issued_at),
            }
            for o in golden.overrides
        ],
        "links": [link_to_json(k) for k in golden.links],
    }


def command_to_avro(command: StewardCommand) -> dict[str, Any]:
    """Steward command -> Avro dict."""
    return {
        "command_id": command.command_id,
        "entity": command.entity,
        "golden_id": command.golden_id,
        "action": command.action.value,
        "attribute": command.attribute,
        "value_json": None if command.value is None else value_to_json(command.value),
        "issued_at": command.issued_at,
        "issued_by": command.issued_by,
        "reason": command.reason,
        "source_ref": command.source_ref,
        "other_ref": command.other_ref,
        "other_golden_id": command.other_golden_id,
        "pair_id": command.pair_id,
    }


def command_from_avro(data: Mapping[str, Any], entity: EntityModel) -> StewardCommand:
    """Avro dict -> steward command (raises ValueError for an unknown action)."""
    attribute = data.get("attribute")
    value_json = data.get("value_json")
    value = None
    if value_json is not None and attribute is not None:
        value = value_from_json(entity, attribute, value_json)
    return StewardCommand(
        command_id=data["command_id"],
        entity=data["entity"],
        golden_id=data["golden_id"],
        action=Action(data["action"]),
        issued_at=data["issued_at"],
        attribute=attribute,
        value=value,
        issued_by=data.get("issued_by"),
        reason=data.get("reason"),
        source_ref=data.get("source_ref"),
        other_ref=data.get("other_ref"),
        other_golden_id=data.get("other_golden_id"),
        pair_id=data.get("pair_id"),
    )


def potential_match_to_avro(entity: str, match: PotentialMatch) -> dict[str, Any]:
    """Potential match -> Avro dict (the review topic)."""
    return {
        "pair_id": match.pair_id,
        "entity": entity,
        "status": match.status,
        "ref": match.ref,
        "golden_id": match.golden_id,
        "candidate_ref": match.candidate_ref,
        "candidate_golden_id": match.candidate_golden_id,
        "score": match.score,
        "blocking_key": match.blocking_key,
        "contributions": [_contribution_to_avro(c) for c in match.contributions],
        "detected_at": match.detected_at,
        "decided_by": match.decided_by,
    }


def potential_match_to_json(entity: str, match: PotentialMatch) -> dict[str, Any]:
    """Potential match -> JSON document (the review-queue view, the API)."""
    return {
        **potential_match_to_avro(entity, match),
        "detected_at": json_time(match.detected_at),
    }


def potential_match_from_avro(data: Mapping[str, Any]) -> PotentialMatch:
    """Avro dict -> potential match."""
    return PotentialMatch(
        pair_id=data["pair_id"],
        status=data["status"],
        ref=data["ref"],
        golden_id=data["golden_id"],
        candidate_ref=data["candidate_ref"],
        candidate_golden_id=data["candidate_golden_id"],
        score=data["score"],
        blocking_key=data.get("blocking_key"),
        contributions=tuple(_contribution_from_avro(c) for c in data.get("contributions") or ()),
        detected_at=data["detected_at"],
        decided_by=data.get("decided_by"),
    )
