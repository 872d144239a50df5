"""The history view of golden records: one entry per accepted version, from the changes topic.

An entry is the version's change event as a JSON document::

    {"golden_id": "...", "entity": "customer", "version": 3, "status": "active",
     "changed": ["phone"], "before": {"phone": "+441614960000"}, "after": {"phone": null},
     "cause": {"kind": "source_change", "id": "...", "source": "crm", "source_key": "C-1"},
     "occurred_at": "2026-01-01T03:00:00Z"}

``before`` and ``after`` hold exactly the ``changed`` attributes, ``null`` where the attribute had
(or has) no value; values are rendered as in the golden documents (dates ISO 8601, lists JSON
arrays). ``occurred_at`` is ISO 8601 in UTC with ``Z``.

:func:`fold_history` rebuilds a golden record's attributes as they were at a version from the
entries up to it; both cache implementations share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mdhub.domain.records import ChangeEvent, Value
from mdhub.domain.versioning import json_value
from mdhub.errors import MdhubError
from mdhub.serde.mapping import json_time

__all__ = ["HistoryEntry", "event_to_json", "fold_history", "history_entry"]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One version of a golden record in its history view.

    Attributes:
        golden_id: the golden record's id.
        version: the version the event made; a version already in the history is never rewritten.
        event: the change event as a JSON-able mapping (see the module docstring); its
            ``golden_id`` and ``version`` must equal the entry's.
    """

    golden_id: str
    version: int
    event: Mapping[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.golden_id, str) or not self.golden_id:
            raise ValueError(f"golden_id must be a non-empty string, got {self.golden_id!r}")
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise ValueError(f"version must be an int, got {self.version!r}")
        if self.version < 1:
            raise ValueError(f"version must be >= 1, got {self.version}")
        if not isinstance(self.event, Mapping):
            raise ValueError(f"event must be a mapping, got {type(self.event).__name__}")
        if self.event.get("golden_id") != self.golden_id or self.event.get("version") != (
            self.version
        ):
            raise ValueError(
                f"event is of {self.event.get('golden_id')!r} v{self.event.get('version')!r}, "
                f"not of {self.golden_id!r} v{self.version}"
            )
        changed = self.event.get("changed")
        if not isinstance(changed, list | tuple) or not all(isinstance(n, str) for n in changed):
            raise ValueError("event['changed'] must be a list of attribute names")
        if not isinstance(self.event.get("after"), Mapping):
            raise ValueError("event['after'] must be a mapping of attribute values")


def _json_value(value: Value | None) -> Any:
    # the same rendering as the golden documents, so that a record rebuilt at its latest version
    # has exactly the attributes of the current golden record
    return None if value is None else json_value(value)


def event_to_json(event: ChangeEvent) -> dict[str, Any]:
    """Return the change event as the JSON document the history view stores and the API serves."""
    return {
        "golden_id": event.golden_id,
        "entity": event.entity,
        "version": event.version,
        "status": event.status.value,
        "changed": list(event.changed),
        "before": {name: _json_value(event.before.get(name)) for name in event.changed},
        "after": {name: _json_value(event.after.get(name)) for name in event.changed},
        "cause": {
            "kind": event.cause.kind.value,
            "id": event.cause.id,
            "source": event.cause.source,
            "source_key": event.cause.source_key,
        },
        "occurred_at": json_time(event.occurred_at),
    }


def history_entry(event: ChangeEvent) -> HistoryEntry:
    """Return the history entry of a change event."""
    return HistoryEntry(event.golden_id, event.version, event_to_json(event))


def fold_history(events: Iterable[Mapping[str, Any]], version: int) -> dict[str, Any] | None:
    """Rebuild a golden record as it was at ``version`` from its history entries.

    Starting from no attributes, each event from version 1 to ``version`` sets ``after[name]`` for
    every name in ``changed``, or removes the name when that value is ``null``.

    Args:
        events: history entries (event documents) in ascending version order; entries after
            ``version`` are ignored.
        version: the version wanted.

    Returns:
        ``golden_id``, ``entity``, ``version``, ``status`` and ``occurred_at`` of that version
        with the ``attributes`` as they were then; ``None`` when the history has no such version.

    Raises:
        MdhubError: the history misses a version before ``version``, so the record cannot be
            rebuilt (the view is incomplete; ``mdhub cache rebuild`` restores it).
    """
    attributes: dict[str, Any] = {}
    last: Mapping[str, Any] | None = None
    expected = 1
    for event in events:
        at = int(event["version"])
        if at > version:
            break
        if at != expected:
            raise MdhubError(
                f"the history of golden record {event['golden_id']!r} has version {at} where "
                f"{expected} was expected; rebuild the views with `mdhub cache rebuild`"
            )
        after: Mapping[str, Any] = event["after"]
        for name in event["changed"]:
            value = after.get(name)
            if value is None:
                attributes.pop(name, None)
            else:
                attributes[name] = value
        last = event
        expected += 1
    if last is None or int(last["version"]) != version:
        return None
    return {
        "golden_id": last["golden_id"],
        "entity": last.get("entity"),
        "version": version,
        "status": last["status"],
        "occurred_at": last["occurred_at"],
        "attributes": {name: attributes[name] for name in sorted(attributes)},
    }
