"""Golden ids are derived, never random, so a replay from offset 0 yields the same ids."""

from __future__ import annotations

import uuid

__all__ = ["GOLDEN_NAMESPACE", "golden_id_for"]

GOLDEN_NAMESPACE = uuid.UUID("6f1c1f8e-1d7b-5b7e-9a53-6d64687562a1")


def golden_id_for(entity: str, source: str, source_key: str) -> str:
    """Return the golden id of the entity first created by ``source:source_key``.

    Args:
        entity: the entity type, e.g. ``customer``.
        source: the source system that created the golden record.
        source_key: the record's key in that source.
    """
    return str(uuid.uuid5(GOLDEN_NAMESPACE, f"{entity}/{source}:{source_key}"))
