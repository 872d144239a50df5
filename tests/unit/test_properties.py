"""Domain invariants under generated input (hypothesis).

- validation and standardization never raise, whatever the attributes hold;
- the pipeline turns any bytes into a rejection that keeps the original bytes;
- candidate changes and golden records survive an Avro round trip;
- merging is idempotent, independent of arrival order across source records, and versions only
  ever move forward by one.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdhub.domain.merge import Applied, Outcome, Rejected, Unchanged, apply_change
from mdhub.domain.model import AttrType, EntityModel, HubModel, parse_model
from mdhub.domain.records import CandidateChange, GoldenRecord, Op, Value
from mdhub.domain.validation import ReasonCode, standardize, validate_change
from mdhub.modelfile import load_model
from mdhub.serde.catalog import MAGIC, SchemaCatalog
from mdhub.serde.mapping import change_from_avro, change_to_avro
from mdhub.stream.pipeline import EntityPipeline, Message
from mdhub.stream.pipeline import Outcome as StepOutcome

REPO = Path(__file__).resolve().parents[2]
HUB: HubModel = load_model(REPO / "config" / "model.yaml")
CATALOG: SchemaCatalog = SchemaCatalog.load(REPO / "schemas")
REASON_CODES = {value for name, value in vars(ReasonCode).items() if name.isupper()}

FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

# -- generators ---------------------------------------------------------------------------------------

UTC_MS = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
"""UTC datetimes of millisecond precision (Avro timestamp-millis)."""

ANY_VALUE: st.SearchStrategy[Value] = st.one_of(
    st.text(max_size=40),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.dates(),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.lists(st.text(max_size=10), max_size=5).map(tuple),
)


def attribute_keys(hub: HubModel) -> st.SearchStrategy[str]:
    names = sorted({n for e in hub.entities.values() for n in e.attributes})
    return st.sampled_from(names) | st.text(max_size=8)


def typed_value(kind: AttrType) -> st.SearchStrategy[Any]:
    """A value of the Avro type the schema generator gives ``kind``."""
    return {
        AttrType.STRING: st.text(max_size=30),
        AttrType.INTEGER: st.integers(-(2**63), 2**63 - 1),
        AttrType.NUMBER: st.floats(allow_nan=False),
        AttrType.BOOLEAN: st.booleans(),
        AttrType.DATE: st.dates(),
        AttrType.TIMESTAMP: UTC_MS,
        AttrType.STRING_LIST: st.lists(st.text(max_size=10), max_size=4).map(tuple),
    }[kind]


def typed_attributes(entity: EntityModel) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={name: typed_value(spec.type) for name, spec in entity.attributes.items()},
    )


@st.composite
def candidate_changes(draw: st.DrawFn, entity: EntityModel) -> CandidateChange:
    return CandidateChange(
        change_id=draw(st.text(max_size=20)),
        entity=entity.name,
        source=draw(st.sampled_from(sorted(entity.sources)) | st.text(max_size=8)),
        source_key=draw(st.text(max_size=20)),
        op=draw(st.sampled_from(Op)),
        source_version=draw(st.integers(-(2**63), 2**63 - 1)),
        occurred_at=draw(UTC_MS),
        attributes=draw(typed_attributes(entity)),
    )


# -- (a) validation never raises ----------------------------------------------------------------------


@FAST
@given(
    entity_name=st.sampled_from(sorted(HUB.entities)),
    source=st.sampled_from(["crm", "erp", "webshop"]) | st.text(max_size=6),
    op=st.sampled_from(Op),
    attributes=st.dictionaries(attribute_keys(HUB), ANY_VALUE, max_size=12),
)
def test_validation_and_standardization_never_raise(
    entity_name: str, source: str, op: Op, attributes: dict[str, Value]
) -> None:
    entity = HUB.entity(entity_name)
    raw = CandidateChange(
        "id", entity_name, source, "K", op, 1, dt.datetime(2026, 1, 1), attributes
    )

    cleaned = standardize(raw)
    reasons = validate_change(entity, cleaned)

    assert all(r.code in REASON_CODES for r in reasons)
    assert all(r.attribute is None or r.attribute in entity.attributes for r in reasons)
    assert (source not in entity.sources) == any(r.code == "UNKNOWN_SOURCE" for r in reasons)
    # standardized text has no outer or repeated whitespace, and no empty value survives
    for value in cleaned.attributes.values():
        if isinstance(value, str):
            assert value and value == value.strip() and "  " not in value
        if isinstance(value, tuple):
            assert value and all(item and item == item.strip() for item in value)
            assert len(set(value)) == len(value)
    assert standardize(cleaned) == cleaned
    assert validate_change(entity, cleaned) == reasons


@pytest.mark.parametrize("amount", [float("nan"), float("inf"), float("-inf")])
def test_a_number_that_is_not_finite_is_refused(amount: float) -> None:
    # NaN passes every range check (minimum: 0 here): it must be refused as no number at all
    customer = HUB.entity("customer")
    attributes: dict[str, Value] = {
        "first_name": "Ann",
        "last_name": "Lee",
        "lifetime_value": amount,
    }
    change = CandidateChange(
        "id",
        "customer",
        "crm",
        "K",
        Op.UPSERT,
        1,
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        attributes,
    )

    reasons = validate_change(customer, standardize(change))

    assert [(r.code, r.attribute) for r in reasons] == [(ReasonCode.TYPE, "lifetime_value")]
    assert "must be a finite number" in reasons[0].message


def test_validation_collects_every_violation() -> None:
    # the example behind the property: one change, several broken rules, all reported
    customer = HUB.entity("customer")
    change = CandidateChange(
        "id",
        "customer",
        "mainframe",
        "K",
        Op.UPSERT,
        1,
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        {"email": "not-an-email", "country": "Germany", "loyalty_tier": "diamond"},
    )

    codes = sorted((r.code, r.attribute) for r in validate_change(customer, standardize(change)))

    assert codes == sorted(
        [
            ("UNKNOWN_SOURCE", None),
            ("REQUIRED", "first_name"),
            ("REQUIRED", "last_name"),
            ("PATTERN", "email"),
            ("TOO_LONG", "country"),
            ("PATTERN", "country"),
            ("NOT_ALLOWED", "loyalty_tier"),
        ]
    )


# -- (b) the pipeline turns any bytes into a rejection ------------------------------------------------

PIPELINE = EntityPipeline(HUB.entity("customer"), CATALOG, "mdhub")
REJECTED_CODEC = CATALOG.codec("mdhub.common.RejectedRecord")
CHANGE_HEADER = CATALOG.codec("mdhub.customer.CandidateChange").header

message_values = st.one_of(
    st.none(),
    st.binary(max_size=200),
    st.binary(max_size=200).map(lambda body: MAGIC + body),
    # the right header with a random body: fastavro has to cope with corrupt Avro
    st.binary(max_size=200).map(lambda body: CHANGE_HEADER + body),
)


@FAST
@given(
    key=st.none() | st.binary(max_size=40),
    value=message_values,
    partition=st.integers(0, 1000),
    offset=st.integers(0, 2**62),
    timestamp_ms=st.none() | st.integers(1, 4_102_444_800_000),
)
def test_pipeline_rejects_arbitrary_bytes_keeping_them(
    key: bytes | None, value: bytes | None, partition: int, offset: int, timestamp_ms: int | None
) -> None:
    msg = Message(PIPELINE.source_topic, partition, offset, timestamp_ms, key, value)

    parsed = PIPELINE.parse(msg)
    result = PIPELINE.process(msg, lambda _key: None)

    for step in (parsed, result):
        assert not isinstance(step, CandidateChange)
        assert step.outcome is StepOutcome.REJECTED
        assert not step.writes
        assert step.reasons
        assert len(step.outputs) == 1
        out = step.outputs[0]
        assert out.topic == PIPELINE.rejected_topic == "mdhub.customer.rejected.v1"
        assert out.key == (key if key is not None else f"{msg.topic}/{partition}/{offset}".encode())
        assert out.value is not None
        envelope = REJECTED_CODEC.decode(out.value)
        assert envelope["value"] == value
        assert envelope["key"] == key
        assert (envelope["topic"], envelope["partition"], envelope["offset"]) == (
            msg.topic,
            partition,
            offset,
        )
        assert envelope["entity"] == "customer"
        assert [r["code"] for r in envelope["reasons"]] == [r.code for r in step.reasons]


# -- (c) Avro round trips -----------------------------------------------------------------------------


@FAST
@given(data=st.data(), entity_name=st.sampled_from(sorted(HUB.entities)))
def test_candidate_change_avro_round_trip(data: st.DataObject, entity_name: str) -> None:
    entity = HUB.entity(entity_name)
    codec = CATALOG.codec(f"mdhub.{entity_name}.CandidateChange")
    change = data.draw(candidate_changes(entity))

    encoded = codec.encode(change_to_avro(entity, change))

    assert encoded[:10] == codec.header
    decoded = change_from_avro(codec.decode(encoded))
    assert decoded == change
    assert decoded.occurred_at.utcoffset() == dt.timedelta(0)


# -- merge properties ---------------------------------------------------------------------------------

MERGE_ENTITY: EntityModel = parse_model(
    {
        "model_version": 1,
        "entities": {
            "thing": {
                "attributes": {
                    "name": {"type": "string"},
                    "low": {"type": "integer", "survivorship": "min"},
                    "high": {"type": "number", "survivorship": "max"},
                    "tier": {"type": "string", "enum": ["a", "b", "c"], "survivorship": "max"},
                    "tags": {"type": "string_list"},
                    "seen": {"type": "date", "survivorship": "min"},
                },
                "sources": {"crm": {"trust": 90}, "erp": {"trust": 70}, "shop": {"trust": 70}},
            }
        },
    }
).entity("thing")
ALL_RULES_ENTITY: EntityModel = parse_model(
    {
        "model_version": 1,
        "entities": {
            "thing": {
                "attributes": {
                    "name": {"type": "string"},
                    "recent": {"type": "string", "survivorship": "most_recent"},
                    "common": {"type": "string", "survivorship": "most_frequent"},
                    "long": {"type": "string", "survivorship": "longest"},
                },
                "sources": {"crm": {"trust": 90}, "erp": {"trust": 70}, "shop": {"trust": 70}},
            }
        },
    }
).entity("thing")

SMALL_TEXT = st.sampled_from(["", "a", "b", "ab", "ba", "abc"])
merge_attributes: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {},
    optional={
        "name": SMALL_TEXT,
        "low": st.integers(-3, 3),
        "high": st.sampled_from([-1.5, 0.0, 1.0, 2.5]),
        "tier": st.sampled_from(["a", "b", "c"]),
        "tags": st.lists(st.sampled_from(["x", "y", "z"]), max_size=3).map(tuple),
        "seen": st.dates(dt.date(2020, 1, 1), dt.date(2020, 1, 5)),
        "recent": SMALL_TEXT,
        "common": SMALL_TEXT,
        "long": SMALL_TEXT,
    },
)
REFS = [("crm", "1"), ("crm", "2"), ("erp", "1"), ("shop", "1")]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@st.composite
def merge_changes(draw: st.DrawFn, refs: list[tuple[str, str]] = REFS) -> CandidateChange:
    source, key = draw(st.sampled_from(refs))
    version = draw(st.integers(1, 4))
    return CandidateChange(
        change_id=f"{source}:{key}@{version}",
        entity="thing",
        source=source,
        source_key=key,
        op=draw(st.sampled_from([Op.UPSERT, Op.UPSERT, Op.DELETE])),
        source_version=version,
        occurred_at=T0 + dt.timedelta(minutes=draw(st.integers(0, 3))),
        attributes=draw(merge_attributes),
    )


def next_state(state: GoldenRecord | None, outcome: Outcome) -> GoldenRecord | None:
    if isinstance(outcome, Applied):
        return outcome.golden
    if isinstance(outcome, Unchanged):
        return outcome.state if outcome.state is not None else state
    return state


def run(entity: EntityModel, changes: list[CandidateChange]) -> GoldenRecord | None:
    state: GoldenRecord | None = None
    for change in changes:
        state = next_state(state, apply_change(entity, state, change, "g"))
    return state


# -- (d) idempotence --


@FAST
@given(history=st.lists(merge_changes(), max_size=6), change=merge_changes())
def test_applying_the_same_change_twice_changes_nothing_the_second_time(
    history: list[CandidateChange], change: CandidateChange
) -> None:
    state = run(MERGE_ENTITY, history)
    first = apply_change(MERGE_ENTITY, state, change, "g")
    after_first = next_state(state, first)

    second = apply_change(MERGE_ENTITY, after_first, change, "g")

    if isinstance(first, Rejected):
        assert second == first
    else:
        assert isinstance(second, Unchanged)
        assert second.state == after_first


# -- (e) order independence --


@st.composite
def distinct_record_changes(draw: st.DrawFn) -> list[CandidateChange]:
    refs = draw(st.lists(st.sampled_from(REFS), min_size=1, max_size=4, unique=True))
    return [
        CandidateChange(
            change_id=f"{source}:{key}",
            entity="thing",
            source=source,
            source_key=key,
            op=Op.UPSERT,
            source_version=draw(st.integers(1, 9)),
            occurred_at=T0 + dt.timedelta(minutes=draw(st.integers(0, 2))),
            attributes=draw(merge_attributes),
        )
        for source, key in refs
    ]


def golden_view(golden: GoldenRecord | None) -> Any:
    assert golden is not None
    return (
        golden.status,
        dict(golden.attributes),
        dict(golden.lineage),
        golden.sources,
        golden.content_hash,
    )


@pytest.mark.parametrize(
    "entity", [MERGE_ENTITY, ALL_RULES_ENTITY], ids=["priority-min-max-union", "other-rules"]
)
@FAST
@given(changes=distinct_record_changes())
def test_arrival_order_of_different_source_records_does_not_matter(
    entity: EntityModel, changes: list[CandidateChange]
) -> None:
    results = {
        repr(golden_view(run(entity, list(order)))) for order in itertools.permutations(changes)
    }

    assert len(results) == 1, results


# -- (f) versions only move forward --


@FAST
@given(changes=st.lists(merge_changes(), max_size=15))
def test_versions_increase_by_exactly_one_per_applied_change(
    changes: list[CandidateChange],
) -> None:
    state: GoldenRecord | None = None
    applied = 0
    for change in changes:
        before_version = state.version if state is not None else 0
        before_sources = {r.source_ref: r.source_version for r in state.sources} if state else {}
        outcome = apply_change(MERGE_ENTITY, state, change, "g")
        if isinstance(outcome, Applied):
            applied += 1
            assert outcome.golden.version == before_version + 1
            assert outcome.event.version == outcome.golden.version
            assert state is None or outcome.golden.content_hash != state.content_hash
        new = next_state(state, outcome)
        if not isinstance(outcome, Applied):
            assert (new.version if new is not None else 0) == before_version
        if isinstance(outcome, Rejected):
            assert new is state
        # a source record's applied version never goes back
        after_sources = {r.source_ref: r.source_version for r in new.sources} if new else {}
        for ref, version in before_sources.items():
            assert after_sources[ref] >= version
        state = new
    assert (state.version if state is not None else 0) == applied


# -- golden records survive the state store's encoding ------------------------------------------------


@FAST
@given(changes=st.lists(merge_changes(), min_size=1, max_size=8))
def test_golden_state_round_trips_through_avro(changes: list[CandidateChange]) -> None:
    customer = HUB.entity("customer")
    pipeline = EntityPipeline(customer, CATALOG, "mdhub")
    to_customer: Callable[[CandidateChange], CandidateChange] = lambda c: CandidateChange(  # noqa: E731
        c.change_id,
        "customer",
        {"crm": "crm", "erp": "erp", "shop": "webshop"}[c.source],
        c.source_key,
        c.op,
        c.source_version,
        c.occurred_at,
        {
            "first_name": c.attributes.get("name", "x") or "x",
            "last_name": "y",
            **({"tags": c.attributes["tags"]} if "tags" in c.attributes else {}),
            **({"birth_date": c.attributes["seen"]} if "seen" in c.attributes else {}),
            **({"lifetime_value": c.attributes["high"]} if "high" in c.attributes else {}),
        },
    )
    state = run(customer, [to_customer(c) for c in changes])
    if state is None:
        return

    assert pipeline.decode_state(pipeline.encode_golden(state)) == state
