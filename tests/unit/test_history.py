"""The history view's pure parts: change events as JSON, history entries, and the fold.

The fold rebuilds a golden record at a version from its change events; the property test checks it
against the real merge: at every version it gives exactly the attributes of that golden version.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdhub.cache import HistoryEntry, event_to_json, fold_history, history_entry
from mdhub.cache.projector import _Decoder, history_entry_of
from mdhub.domain.merge import Applied, apply_change
from mdhub.domain.records import (
    CandidateChange,
    Cause,
    CauseKind,
    ChangeEvent,
    GoldenRecord,
    GoldenStatus,
    Op,
)
from mdhub.errors import MdhubError
from mdhub.modelfile import load_model
from mdhub.serde.catalog import SchemaCatalog
from mdhub.serde.mapping import change_event_to_avro, golden_to_avro, golden_to_json
from mdhub.settings import Settings
from mdhub.testing import FakeKafkaMessage

REPO = Path(__file__).resolve().parents[2]
HUB = load_model(REPO / "config" / "model.yaml")
CATALOG = SchemaCatalog.load(REPO / "schemas")
CUSTOMER = HUB.entity("customer")
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def event(
    version: int,
    after: dict[str, Any],
    before: dict[str, Any] | None = None,
    status: str = "active",
    gid: str = "g1",
) -> dict[str, Any]:
    """A history entry document: ``after`` names the changed attributes (None: removed)."""
    return {
        "golden_id": gid,
        "entity": "customer",
        "version": version,
        "status": status,
        "changed": list(after),
        "before": before or dict.fromkeys(after),
        "after": after,
        "cause": {"kind": "source_change", "id": f"c{version}", "source": "crm", "source_key": "1"},
        "occurred_at": f"2026-01-0{version}T00:00:00Z",
    }


HISTORY = [
    event(1, {"first_name": "Ann", "city": "Oslo", "phone": "+4711111111"}),
    event(2, {"city": "Bergen"}, {"city": "Oslo"}),
    event(3, {"phone": None}, {"phone": "+4711111111"}),
    event(4, {"phone": "+4722222222", "tags": ["a", "b"]}, {"phone": None, "tags": None}),
]


@pytest.mark.parametrize(
    ("version", "attributes"),
    [
        (1, {"city": "Oslo", "first_name": "Ann", "phone": "+4711111111"}),
        (2, {"city": "Bergen", "first_name": "Ann", "phone": "+4711111111"}),
        (3, {"city": "Bergen", "first_name": "Ann"}),  # removed at 3...
        (4, {"city": "Bergen", "first_name": "Ann", "phone": "+4722222222", "tags": ["a", "b"]}),
    ],
)
def test_fold_rebuilds_each_version(version: int, attributes: dict[str, Any]) -> None:
    assert fold_history(HISTORY, version) == {
        "golden_id": "g1",
        "entity": "customer",
        "version": version,
        "status": "active",
        "occurred_at": f"2026-01-0{version}T00:00:00Z",
        "attributes": attributes,
    }


def test_fold_of_an_unknown_version_is_none() -> None:
    assert fold_history(HISTORY, 5) is None
    assert fold_history([], 1) is None
    assert fold_history(HISTORY[:2], 3) is None  # not (yet) in the history


def test_fold_takes_the_status_of_the_version() -> None:
    retired = [
        *HISTORY[:2],
        event(3, dict.fromkeys(("first_name", "city", "phone")), {}, "retired"),
    ]
    past = fold_history(retired, 3)
    assert past is not None
    assert (past["status"], past["attributes"]) == ("retired", {})
    assert fold_history(retired, 2)["status"] == "active"  # type: ignore[index]


def test_fold_refuses_a_history_with_a_gap() -> None:
    with pytest.raises(MdhubError, match="mdhub cache rebuild"):
        fold_history([HISTORY[0], HISTORY[2]], 3)
    with pytest.raises(MdhubError, match="version 2 where 1"):
        fold_history(HISTORY[1:], 2)


def test_history_entry_checks_its_event() -> None:
    assert HistoryEntry("g1", 2, HISTORY[1]).version == 2
    with pytest.raises(ValueError, match="not of 'g1' v3"):
        HistoryEntry("g1", 3, HISTORY[1])
    with pytest.raises(ValueError, match="not of 'g2'"):
        HistoryEntry("g2", 2, HISTORY[1])
    with pytest.raises(ValueError, match="version must be >= 1"):
        HistoryEntry("g1", 0, {**HISTORY[0], "version": 0})
    with pytest.raises(ValueError, match="changed"):
        HistoryEntry("g1", 1, {**HISTORY[0], "changed": "city"})
    with pytest.raises(ValueError, match="after"):
        HistoryEntry("g1", 1, {**HISTORY[0], "after": None})
    with pytest.raises(ValueError, match="golden_id"):
        HistoryEntry("", 1, HISTORY[0])


def test_event_to_json() -> None:
    domain_event = ChangeEvent(
        golden_id="g1",
        entity="customer",
        version=2,
        status=GoldenStatus.ACTIVE,
        changed=("phone", "birth_date", "tags"),
        before={"phone": "+4711111111"},
        after={"birth_date": dt.date(1980, 2, 29), "tags": ("a", "b")},
        cause=Cause(CauseKind.SOURCE_CHANGE, "c2", "crm", "C-1"),
        occurred_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    )
    assert event_to_json(domain_event) == {
        "golden_id": "g1",
        "entity": "customer",
        "version": 2,
        "status": "active",
        "changed": ["phone", "birth_date", "tags"],
        "before": {"phone": "+4711111111", "birth_date": None, "tags": None},
        "after": {"phone": None, "birth_date": "1980-02-29", "tags": ["a", "b"]},
        "cause": {"kind": "source_change", "id": "c2", "source": "crm", "source_key": "C-1"},
        "occurred_at": "2026-01-02T01:04:05Z",
    }
    entry = history_entry(domain_event)
    assert (entry.golden_id, entry.version) == ("g1", 2)


# -- against the real merge ----------------------------------------------------------------------

VALUES = {
    "first_name": st.sampled_from(["Ann", "Bob"]),
    "last_name": st.sampled_from(["Lee", "Ng"]),
    "city": st.sampled_from(["Oslo", "Bergen"]),
    "phone": st.sampled_from(["+4711111111", "+4722222222"]),
    "birth_date": st.dates(dt.date(1950, 1, 1), dt.date(2000, 1, 1)),
    "tags": st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=2, unique=True).map(
        tuple
    ),
}
SOURCE_CHANGES = st.lists(
    st.tuples(
        st.sampled_from(["crm", "erp"]),
        st.booleans(),  # delete?
        st.fixed_dictionaries(
            {"first_name": VALUES["first_name"], "last_name": VALUES["last_name"]},
            optional={k: v for k, v in VALUES.items() if k not in ("first_name", "last_name")},
        ),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(SOURCE_CHANGES)
def test_fold_equals_every_golden_version_of_the_merge(
    changes: list[tuple[str, bool, dict[str, Any]]],
) -> None:
    state: GoldenRecord | None = None
    goldens: list[GoldenRecord] = []
    entries: list[dict[str, Any]] = []
    versions = {"crm": 0, "erp": 0}
    for i, (source, delete, attributes) in enumerate(changes):
        versions[source] += 1
        change = CandidateChange(
            change_id=str(uuid.UUID(int=i)),
            entity="customer",
            source=source,
            source_key="K-1",
            op=Op.DELETE if delete else Op.UPSERT,
            source_version=versions[source],
            occurred_at=T0 + dt.timedelta(minutes=i),
            attributes=attributes,
        )
        outcome = apply_change(CUSTOMER, state, change, "g1")
        if isinstance(outcome, Applied):
            state = outcome.golden
            goldens.append(outcome.golden)
            # through Avro, as the projector sees it
            codec = CATALOG.codec("mdhub.customer.ChangeEvent")
            encoded = codec.encode(change_event_to_avro(CUSTOMER, outcome.event))
            entries.append(dict(history_entry_of(codec, encoded).event))
        elif getattr(outcome, "state", None) is not None:
            state = outcome.state  # type: ignore[union-attr]
    for golden in goldens:
        past = fold_history(entries, golden.version)
        assert past is not None
        assert past["attributes"] == golden_to_json(golden)["attributes"]
        assert past["status"] == golden.status.value
        assert past["version"] == golden.version


# -- the projector's decoding --------------------------------------------------------------------


def test_the_projector_decodes_golden_and_changes_topics() -> None:
    change = CandidateChange(
        str(uuid.UUID(int=1)), "customer", "crm", "C-1", Op.UPSERT, 1, T0,
        {"first_name": "Ann", "last_name": "Lee"},
    )  # fmt: skip
    outcome = apply_change(CUSTOMER, None, change, "g1")
    assert isinstance(outcome, Applied)
    golden = CATALOG.codec("mdhub.customer.GoldenRecord").encode(
        golden_to_avro(CUSTOMER, outcome.golden)
    )
    changes = CATALOG.codec("mdhub.customer.ChangeEvent").encode(
        change_event_to_avro(CUSTOMER, outcome.event)
    )
    decoder = _Decoder(Settings(namespace="mdhub"), list(HUB.entities.values()), CATALOG)
    assert set(decoder.entity_of) == {
        f"mdhub.{e}.{stage}.v1" for e in HUB.entities for stage in ("golden", "changes", "review")
    }
    batch = decoder.group(
        [
            FakeKafkaMessage("mdhub.customer.golden.v1", golden),
            FakeKafkaMessage("mdhub.customer.changes.v1", changes),
            FakeKafkaMessage("mdhub.customer.changes.v1", b"garbage", 1),  # skipped, logged
            FakeKafkaMessage("mdhub.customer.golden.v1", None, 2),  # tombstone
        ]  # type: ignore[list-item]
    )
    assert [v.golden_id for v in batch.views["customer"]] == ["g1"]
    [entry] = batch.history["customer"]
    assert (entry.golden_id, entry.version) == ("g1", 1)
    assert entry.event["after"] == {"first_name": "Ann", "last_name": "Lee"}
    assert entry.event["occurred_at"] == "2026-01-01T00:00:00Z"
