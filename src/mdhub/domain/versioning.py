"""Content hashing: a golden version is only created when the merge result really changed."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping

from mdhub.domain.records import GoldenStatus, Lineage, SourceRecord, Value

__all__ = ["content_hash", "json_value"]


def json_value(value: Value) -> object:
    """Return a JSON-able form of an attribute value (ISO 8601 for dates and times)."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def content_hash(
    status: GoldenStatus,
    attributes: Mapping[str, Value],
    lineage: Mapping[str, Lineage],
    sources: tuple[SourceRecord, ...],
    merged_into: str | None = None,
) -> str:
    """Hash what a golden version is: status, values, where each value came from, and members.

    Source versions and timestamps are left out on purpose: a source re-sending the same values
    with a newer version changes nothing a consumer could see, so it makes no new golden version.
    """
    # repr() of str, int, float, bool, date, datetime and tuples is deterministic, and cheaper
    # than a JSON rendering on the worker's hot path.
    body = (
        status.value,
        sorted(attributes.items()),
        sorted((name, ln.source, ln.source_key, ln.rule) for name, ln in lineage.items()),
        sorted(record.source_ref for record in sources if not record.deleted),
        merged_into,
    )
    return hashlib.blake2b(repr(body).encode(), digest_size=12).hexdigest()
