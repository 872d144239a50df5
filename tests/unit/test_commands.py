"""Steward commands in the pure domain: pin, clear, erase; idempotent, checked against the model."""

from __future__ import annotations

import datetime as dt

from mdhub.domain.commands import Action, StewardCommand, apply_command
from mdhub.domain.merge import Applied, Rejected, Unchanged, apply_change
from mdhub.domain.model import parse_model
from mdhub.domain.records import CandidateChange, CauseKind, GoldenRecord, GoldenStatus, Op

ENTITY = parse_model(
    {
        "model_version": 1,
        "entities": {
            "customer": {
                "attributes": {
                    "name": {"type": "string", "required": True},
                    "tier": {"type": "string", "enum": ["gold", "silver"]},
                    "born": {"type": "date"},
                },
                "sources": {"crm": {"trust": 90}},
            }
        },
    }
).entity("customer")
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def golden(name: str = "Ann", version: int = 1) -> GoldenRecord:
    state = None
    for v in range(1, version + 1):
        change = CandidateChange(
            f"c{v}",
            "customer",
            "crm",
            "1",
            Op.UPSERT,
            v,
            T0 + dt.timedelta(hours=v),
            {"name": f"{name}{'' if v == version else v}", "tier": "silver"},
        )
        outcome = apply_change(ENTITY, state, change, "g1")
        assert isinstance(outcome, Applied)
        state = outcome.golden
    assert state is not None
    return state


def command(
    action: Action, attribute: str | None = None, value: object = None, cid: str = "k1"
) -> StewardCommand:
    return StewardCommand(
        cid, "customer", "g1", action, T0 + dt.timedelta(days=1), attribute, value
    )  # type: ignore[arg-type]


def test_override_pins_a_value_with_steward_lineage_and_survives_source_updates() -> None:
    state = golden()
    outcome = apply_command(ENTITY, state, command(Action.OVERRIDE, "tier", "gold"))
    assert isinstance(outcome, Applied)
    pinned = outcome.golden
    assert pinned.version == 2 and pinned.attributes["tier"] == "gold"
    assert (
        pinned.lineage["tier"].source == "steward"
        and pinned.lineage["tier"].rule == "steward_override"
    )
    assert (
        outcome.event.changed == ("tier",) and outcome.event.cause.kind is CauseKind.STEWARD_COMMAND
    )
    later = CandidateChange(
        "c9",
        "customer",
        "crm",
        "1",
        Op.UPSERT,
        9,
        T0 + dt.timedelta(days=2),
        {"name": "Anna", "tier": "silver"},
    )
    updated = apply_change(ENTITY, pinned, later, "g1")
    assert isinstance(updated, Applied)
    assert updated.golden.attributes == {"name": "Anna", "tier": "gold"}  # the pin holds
    assert apply_command(
        ENTITY, pinned, command(Action.OVERRIDE, "tier", "gold", "k2")
    ) == Unchanged(pinned, "the same value is already pinned")


def test_clear_override_lets_the_sources_decide_again() -> None:
    pinned = apply_command(ENTITY, golden(), command(Action.OVERRIDE, "tier", "gold"))
    assert isinstance(pinned, Applied)
    cleared = apply_command(ENTITY, pinned.golden, command(Action.CLEAR_OVERRIDE, "tier", cid="k2"))
    assert isinstance(cleared, Applied)
    assert cleared.golden.attributes["tier"] == "silver" and cleared.golden.version == 3
    assert cleared.golden.overrides == ()
    assert isinstance(
        apply_command(ENTITY, cleared.golden, command(Action.CLEAR_OVERRIDE, "tier", cid="k3")),
        Unchanged,
    )


def test_bad_commands_are_rejected_with_reasons() -> None:
    state = golden()
    cases = {
        "UNKNOWN_ATTRIBUTE": command(Action.OVERRIDE, "shoe_size", "42"),
        "NOT_ALLOWED": command(Action.OVERRIDE, "tier", "diamond"),
        "TYPE": command(Action.OVERRIDE, "born", "yesterday"),
        "MISSING_VALUE": command(Action.OVERRIDE, "tier", None),
    }
    for code, cmd in cases.items():
        outcome = apply_command(ENTITY, state, cmd)
        assert isinstance(outcome, Rejected), code
        assert [r.code for r in outcome.reasons] == [code]
    unknown = apply_command(ENTITY, None, command(Action.ERASE))
    assert isinstance(unknown, Rejected) and unknown.reasons[0].code == "UNKNOWN_GOLDEN"


def test_erase_keeps_only_the_fact_of_erasure_and_is_idempotent() -> None:
    state = golden(version=3)
    outcome = apply_command(ENTITY, state, command(Action.ERASE))
    assert isinstance(outcome, Applied)
    erased = outcome.golden
    assert erased.status is GoldenStatus.ERASED and erased.version == 4
    assert (
        erased.attributes == {}
        and erased.sources == ()
        and erased.lineage == {}
        and erased.overrides == ()
    )
    assert outcome.event.before == {} and outcome.event.after == {} and outcome.event.changed == ()
    assert isinstance(apply_command(ENTITY, erased, command(Action.ERASE, cid="k2")), Unchanged)
    pin = apply_command(ENTITY, erased, command(Action.OVERRIDE, "tier", "gold", "k3"))
    assert isinstance(pin, Rejected) and pin.reasons[0].code == "NOT_ACTIVE"
