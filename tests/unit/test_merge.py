"""Applying candidate changes: versions, stale and conflicting input, deletes and retirement."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from mdhub.domain.merge import (
    CONFLICTING_SOURCE_VERSION,
    STALE_SOURCE_VERSION,
    Applied,
    Outcome,
    Rejected,
    Unchanged,
    apply_change,
)
from mdhub.domain.model import EntityModel, parse_model
from mdhub.domain.records import (
    CandidateChange,
    Cause,
    CauseKind,
    GoldenRecord,
    GoldenStatus,
    Lineage,
    Op,
    Value,
)

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
GID = "golden-1"

ENTITY: EntityModel = parse_model(
    {
        "model_version": 1,
        "entities": {
            "customer": {
                "attributes": {
                    "name": {"type": "string"},
                    "email": {"type": "string", "survivorship": "most_recent"},
                    "tags": {"type": "string_list"},
                },
                "sources": {"crm": {"trust": 90}, "shop": {"trust": 40}},
            }
        },
    }
).entity("customer")


def change(
    version: int,
    *,
    source: str = "crm",
    key: str = "C1",
    op: Op = Op.UPSERT,
    at: dt.datetime | None = None,
    **attributes: Value,
) -> CandidateChange:
    return CandidateChange(
        change_id=f"{source}:{key}@{version}:{op.value}",
        entity="customer",
        source=source,
        source_key=key,
        op=op,
        source_version=version,
        occurred_at=at or T0 + dt.timedelta(minutes=version),
        attributes=attributes,
    )


def applied(outcome: Outcome) -> Applied:
    assert isinstance(outcome, Applied), outcome
    return outcome


def apply(state: GoldenRecord | None, candidate: CandidateChange) -> Outcome:
    return apply_change(ENTITY, state, candidate, GID)


# -- new and updated records -------------------------------------------------------------------------


def test_a_new_source_record_creates_version_1() -> None:
    first = change(1, name="Grace", email="g@example.com")

    out = applied(apply(None, first))

    golden = out.golden
    assert golden.golden_id == GID
    assert golden.entity == "customer"
    assert golden.version == 1
    assert golden.status is GoldenStatus.ACTIVE
    assert golden.attributes == {"name": "Grace", "email": "g@example.com"}
    assert golden.lineage["name"] == Lineage("crm", "C1", "source_priority", first.occurred_at)
    assert golden.created_at == golden.updated_at == first.occurred_at
    assert [(s.source_ref, s.source_version) for s in golden.sources] == [("crm:C1", 1)]
    event = out.event
    assert event.version == 1
    assert event.changed == ("name", "email")
    assert event.before == {}
    assert event.after == {"name": "Grace", "email": "g@example.com"}
    assert event.cause == Cause(CauseKind.SOURCE_CHANGE, first.change_id, "crm", "C1")
    assert event.occurred_at == first.occurred_at


def test_an_update_makes_version_2_with_what_changed() -> None:
    v1 = applied(apply(None, change(1, name="Grace", email="g@example.com"))).golden

    out = applied(apply(v1, change(2, name="Grace", email="grace@example.com", tags=("vip",))))

    assert out.golden.version == 2
    assert out.golden.created_at == v1.created_at
    assert out.golden.updated_at == T0 + dt.timedelta(minutes=2)
    assert out.event.version == 2
    assert out.event.changed == ("email", "tags")
    assert out.event.before == {"email": "g@example.com"}
    assert out.event.after == {"email": "grace@example.com", "tags": ("vip",)}


def test_a_removed_attribute_is_reported_as_changed_with_no_after_value() -> None:
    v1 = applied(apply(None, change(1, name="Grace", email="g@example.com"))).golden

    out = applied(apply(v1, change(2, name="Grace")))

    assert out.golden.attributes == {"name": "Grace"}
    assert out.event.changed == ("email",)
    assert out.event.before == {"email": "g@example.com"}
    assert out.event.after == {}


def test_a_second_source_joins_and_trust_decides() -> None:
    v1 = applied(apply(None, change(1, source="shop", key="S1", name="G. H."))).golden

    out = applied(apply(v1, change(1, name="Grace Hopper")))

    assert out.golden.version == 2
    assert out.golden.attributes["name"] == "Grace Hopper"
    assert out.golden.lineage["name"].source == "crm"
    assert [s.source_ref for s in out.golden.sources] == ["crm:C1", "shop:S1"]


# -- duplicates, replays and stale input -------------------------------------------------------------


def test_an_identical_duplicate_is_unchanged_and_keeps_the_state() -> None:
    first = change(1, name="Grace")
    v1 = applied(apply(None, first)).golden

    out = apply(v1, first)

    assert isinstance(out, Unchanged)
    assert out.state is v1


def test_same_values_with_a_newer_source_version_is_unchanged_but_remembers_the_version() -> None:
    v1 = applied(apply(None, change(1, name="Grace"))).golden

    out = apply(v1, change(5, name="Grace"))

    assert isinstance(out, Unchanged)
    assert out.state is not None
    assert out.state.version == 1
    assert out.state.attributes == v1.attributes
    assert out.state.content_hash == v1.content_hash
    record = out.state.source("crm", "C1")
    assert record is not None
    assert record.source_version == 5
    # so the previous version is now stale
    stale = apply(out.state, change(3, name="Other"))
    assert isinstance(stale, Rejected)
    assert [r.code for r in stale.reasons] == [STALE_SOURCE_VERSION]


def test_an_older_source_version_is_rejected_as_stale() -> None:
    v1 = applied(apply(None, change(1, name="Grace"))).golden
    v2 = applied(apply(v1, change(4, name="Grace Hopper"))).golden

    out = apply(v2, change(2, name="Grace B. Hopper"))

    assert isinstance(out, Rejected)
    assert [r.code for r in out.reasons] == [STALE_SOURCE_VERSION]
    assert re.search(r"\b2\b.*crm:C1.*\b4\b", out.reasons[0].message), out.reasons[0].message


def test_same_source_version_with_different_content_is_rejected_as_conflicting() -> None:
    v1 = applied(apply(None, change(1, name="Grace"))).golden

    out = apply(v1, change(1, name="Ada"))

    assert isinstance(out, Rejected)
    assert [r.code for r in out.reasons] == [CONFLICTING_SOURCE_VERSION]
    assert "crm:C1" in out.reasons[0].message


def test_a_change_of_another_source_record_is_never_stale_against_this_one() -> None:
    v1 = applied(apply(None, change(9, name="Grace"))).golden

    out = apply(v1, change(1, source="shop", key="S1", email="s@example.com"))

    assert applied(out).golden.version == 2


# -- deletes -----------------------------------------------------------------------------------------


def test_delete_of_the_only_source_retires_the_golden_record_with_a_change_event() -> None:
    v1 = applied(apply(None, change(1, name="Grace", email="g@example.com"))).golden
    delete = change(2, op=Op.DELETE)

    out = applied(apply(v1, delete))

    assert out.golden.version == 2
    assert out.golden.status is GoldenStatus.RETIRED
    assert out.golden.attributes == {}
    assert out.golden.lineage == {}
    assert out.golden.active_sources == ()
    assert out.event.status is GoldenStatus.RETIRED
    assert out.event.version == 2
    assert out.event.changed == ("name", "email")
    assert out.event.before == {"name": "Grace", "email": "g@example.com"}
    assert out.event.after == {}
    assert out.event.cause.id == delete.change_id


def test_delete_of_one_of_two_sources_keeps_the_record_active_with_the_other() -> None:
    v1 = applied(apply(None, change(1, name="Grace"))).golden
    v2 = applied(apply(v1, change(1, source="shop", key="S1", name="G."))).golden

    out = applied(apply(v2, change(2, op=Op.DELETE)))

    assert out.golden.status is GoldenStatus.ACTIVE
    assert out.golden.attributes == {"name": "G."}
    assert out.golden.lineage["name"].source == "shop"
    assert [s.source_ref for s in out.golden.active_sources] == ["shop:S1"]


def test_a_duplicate_delete_is_unchanged() -> None:
    v1 = applied(apply(None, change(1, name="Grace"))).golden
    retired = applied(apply(v1, change(2, op=Op.DELETE))).golden

    out = apply(retired, change(2, op=Op.DELETE))

    assert isinstance(out, Unchanged)
    assert out.state is retired


def test_delete_of_an_unknown_record_publishes_nothing_but_is_remembered() -> None:
    out = apply(None, change(2, op=Op.DELETE))

    assert isinstance(out, Unchanged)
    assert out.state is not None
    assert out.state.version == 0  # nothing was published
    assert out.state.status is GoldenStatus.RETIRED
    # an older upsert of the same source record, arriving after its delete, is stale
    late = apply(out.state, change(1, name="Grace"))
    assert isinstance(late, Rejected)
    assert late.reasons[0].code == "STALE_SOURCE_VERSION"
    # a newer one creates the golden record, as version 1 created at its own time
    newer = applied(apply(out.state, change(3, name="Grace")))
    assert newer.golden.version == 1
    assert newer.golden.status is GoldenStatus.ACTIVE
    assert newer.golden.created_at == newer.event.occurred_at


def test_delete_then_a_newer_upsert_reactivates_with_the_next_version() -> None:
    v1 = applied(apply(None, change(1, name="Grace"))).golden
    retired = applied(apply(v1, change(2, op=Op.DELETE))).golden

    out = applied(apply(retired, change(3, name="Grace")))

    assert out.golden.status is GoldenStatus.ACTIVE
    assert out.golden.version == 3
    assert out.golden.attributes == {"name": "Grace"}
    assert out.event.changed == ("name",)
    assert out.event.before == {}
    assert out.event.after == {"name": "Grace"}


def test_replaying_an_old_upsert_after_the_delete_is_rejected_as_stale() -> None:
    first = change(1, name="Grace")
    v1 = applied(apply(None, first)).golden
    retired = applied(apply(v1, change(2, op=Op.DELETE))).golden

    out = apply(retired, first)

    assert isinstance(out, Rejected)
    assert [r.code for r in out.reasons] == [STALE_SOURCE_VERSION]


def test_an_upsert_with_the_delete_version_conflicts() -> None:
    v1 = applied(apply(None, change(1, name="Grace"))).golden
    retired = applied(apply(v1, change(2, op=Op.DELETE))).golden

    out = apply(retired, change(2, name="Grace"))

    assert isinstance(out, Rejected)
    assert [r.code for r in out.reasons] == [CONFLICTING_SOURCE_VERSION]


# -- time comes from the events ----------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [-30, 30])
def test_updated_at_never_moves_backwards(minutes: int) -> None:
    v1 = applied(apply(None, change(1, name="Grace", at=T0))).golden

    out = applied(apply(v1, change(2, name="Ada", at=T0 + dt.timedelta(minutes=minutes))))

    assert out.golden.updated_at == max(T0, T0 + dt.timedelta(minutes=minutes))
    assert out.golden.created_at == T0
    assert out.event.occurred_at == T0 + dt.timedelta(minutes=minutes)


def test_the_same_changes_give_the_same_golden_record() -> None:
    def run() -> GoldenRecord:
        state = applied(apply(None, change(1, name="Grace"))).golden
        state = applied(apply(state, change(1, source="shop", key="S1", email="a@b.c"))).golden
        return applied(apply(state, change(2, name="Grace H."))).golden

    assert run() == run()
