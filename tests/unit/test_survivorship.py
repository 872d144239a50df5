"""Survivorship: each rule picks the right golden value and names the winning source in the lineage."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from mdhub.domain.model import EntityModel, parse_model
from mdhub.domain.records import Lineage, SourceRecord, Value
from mdhub.domain.survivorship import survive

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def hours(n: int) -> dt.datetime:
    return T0 + dt.timedelta(hours=n)


ENTITY: EntityModel = parse_model(
    {
        "model_version": 1,
        "entities": {
            "person": {
                "attributes": {
                    "name": {"type": "string"},  # the default rule: source_priority
                    "email": {"type": "string", "survivorship": "most_recent"},
                    "city": {"type": "string", "survivorship": "most_frequent"},
                    "street": {"type": "string", "survivorship": "longest"},
                    "low": {"type": "number", "survivorship": "min"},
                    "high": {"type": "integer", "survivorship": "max"},
                    "since": {"type": "date", "survivorship": "min"},
                    "tier": {
                        "type": "string",
                        "enum": ["bronze", "silver", "gold", "platinum"],
                        "survivorship": "max",
                    },
                    "tags": {"type": "string_list"},  # string_list defaults to union
                },
                "sources": {
                    "crm": {"trust": 90},
                    "erp": {"trust": 70},
                    "shop": {"trust": 40},
                    "web": {"trust": 40},
                },
            }
        },
    }
).entity("person")


def rec(
    source: str, key: str = "K", at: dt.datetime = T0, version: int = 1, **attributes: Value
) -> SourceRecord:
    return SourceRecord(
        source=source,
        source_key=key,
        source_version=version,
        occurred_at=at,
        change_id=f"{source}-{key}-{version}",
        attributes=attributes,
    )


def winner(attribute: str, *records: SourceRecord) -> tuple[Value, Lineage]:
    """The value and lineage of ``attribute``, checked to be the same for every input order."""
    results = set()
    for order in itertools.permutations(records):
        attributes, lineage = survive(ENTITY, order)
        results.add((attributes[attribute], lineage[attribute]))
    assert len(results) == 1, f"survivorship depends on the input order: {results}"
    return results.pop()


# -- source_priority ---------------------------------------------------------------------------------


def test_source_priority_picks_the_most_trusted_source_even_when_older() -> None:
    crm = rec("crm", "C1", at=hours(0), name="Grace Hopper")
    shop = rec("shop", "S1", at=hours(5), name="G. Hopper")

    value, lineage = winner("name", crm, shop)

    assert value == "Grace Hopper"
    assert lineage == Lineage("crm", "C1", "source_priority", hours(0))


def test_source_priority_skips_sources_without_the_attribute() -> None:
    crm = rec("crm", "C1", email="x@example.com")
    erp = rec("erp", "E1", at=hours(1), name="Hopper, Grace")

    value, lineage = winner("name", crm, erp)

    assert value == "Hopper, Grace"
    assert lineage == Lineage("erp", "E1", "source_priority", hours(1))


def test_source_priority_tie_on_trust_goes_to_the_most_recent() -> None:
    shop = rec("shop", "S1", at=hours(2), name="newer")
    web = rec("web", "W1", at=hours(1), name="older")

    value, lineage = winner("name", shop, web)

    assert value == "newer"
    assert (lineage.source, lineage.source_key) == ("shop", "S1")


def test_source_priority_tie_on_trust_and_time_goes_to_the_higher_source_version() -> None:
    shop = rec("shop", "S1", version=3, name="v3")
    web = rec("web", "W1", version=7, name="v7")

    value, lineage = winner("name", shop, web)

    assert value == "v7"
    assert lineage.source == "web"


def test_source_priority_full_tie_is_broken_by_the_source_reference() -> None:
    a = rec("shop", "A", name="from A")
    b = rec("shop", "B", name="from B")

    value, lineage = winner("name", a, b)

    # deterministic: the greater '<source>:<source_key>' wins
    assert value == "from B"
    assert lineage.source_key == "B"


# -- most_recent -------------------------------------------------------------------------------------


def test_most_recent_picks_the_newest_value_even_from_a_less_trusted_source() -> None:
    crm = rec("crm", "C1", at=hours(1), email="old@example.com")
    shop = rec("shop", "S1", at=hours(3), email="new@example.com")
    erp = rec("erp", "E1", at=hours(2), email="mid@example.com")

    value, lineage = winner("email", crm, shop, erp)

    assert value == "new@example.com"
    assert lineage == Lineage("shop", "S1", "most_recent", hours(3))


def test_most_recent_tie_on_time_goes_to_the_higher_version_then_trust() -> None:
    crm = rec("crm", "C1", at=hours(1), version=1, email="crm@example.com")
    shop = rec("shop", "S1", at=hours(1), version=2, email="shop@example.com")
    erp = rec("erp", "E1", at=hours(1), version=2, email="erp@example.com")

    value, lineage = winner("email", crm, shop, erp)

    assert value == "erp@example.com"  # same time, same version: erp trusts more than shop
    assert lineage == Lineage("erp", "E1", "most_recent", hours(1))


# -- most_frequent -----------------------------------------------------------------------------------


def test_most_frequent_value_beats_a_single_trusted_one() -> None:
    crm = rec("crm", "C1", city="Berlin")
    shop = rec("shop", "S1", at=hours(1), city="Hamburg")
    web = rec("web", "W1", at=hours(2), city="Hamburg")

    value, lineage = winner("city", crm, shop, web)

    assert value == "Hamburg"
    # among the sources holding it, the most trusted (here: the more recent of equal trust)
    assert lineage == Lineage("web", "W1", "most_frequent", hours(2))


def test_most_frequent_tie_goes_to_trust() -> None:
    crm = rec("crm", "C1", city="Berlin")
    shop = rec("shop", "S1", city="Hamburg")

    value, lineage = winner("city", crm, shop)

    assert value == "Berlin"
    assert lineage == Lineage("crm", "C1", "most_frequent", T0)


# -- longest -----------------------------------------------------------------------------------------


def test_longest_picks_the_most_complete_value() -> None:
    crm = rec("crm", "C1", street="1 Main St")
    shop = rec("shop", "S1", at=hours(4), street="1 Main Street, Building B")

    value, lineage = winner("street", crm, shop)

    assert value == "1 Main Street, Building B"
    assert lineage == Lineage("shop", "S1", "longest", hours(4))


def test_longest_tie_goes_to_trust() -> None:
    crm = rec("crm", "C1", street="abcd")
    shop = rec("shop", "S1", street="wxyz")

    value, lineage = winner("street", crm, shop)

    assert value == "abcd"
    assert lineage.source == "crm"


# -- min / max ---------------------------------------------------------------------------------------


def test_min_picks_the_smallest_number() -> None:
    crm = rec("crm", "C1", low=10.5)
    erp = rec("erp", "E1", at=hours(1), low=-2.0)
    shop = rec("shop", "S1", low=3.0)

    value, lineage = winner("low", crm, erp, shop)

    assert value == -2.0
    assert lineage == Lineage("erp", "E1", "min", hours(1))


def test_min_tie_names_the_most_trusted_holder() -> None:
    crm = rec("crm", "C1", low=1.0)
    shop = rec("shop", "S1", low=1.0)
    erp = rec("erp", "E1", low=5.0)

    value, lineage = winner("low", crm, shop, erp)

    assert value == 1.0
    assert lineage.source == "crm"


def test_min_on_dates_picks_the_earliest() -> None:
    crm = rec("crm", "C1", since=dt.date(2020, 5, 1))
    shop = rec("shop", "S1", since=dt.date(2019, 12, 31))

    value, lineage = winner("since", crm, shop)

    assert value == dt.date(2019, 12, 31)
    assert lineage == Lineage("shop", "S1", "min", T0)


def test_max_picks_the_largest_integer() -> None:
    crm = rec("crm", "C1", high=5)
    shop = rec("shop", "S1", high=500)
    erp = rec("erp", "E1", high=-7)

    value, lineage = winner("high", crm, shop, erp)

    assert value == 500
    assert lineage == Lineage("shop", "S1", "max", T0)


def test_max_tie_names_the_most_trusted_holder() -> None:
    crm = rec("crm", "C1", high=9)
    shop = rec("shop", "S1", high=9)

    value, lineage = winner("high", crm, shop)

    assert value == 9
    assert lineage.source == "crm"


@pytest.mark.parametrize(
    ("crm_tier", "shop_tier", "maximum"),
    [
        ("gold", "silver", "gold"),
        ("silver", "platinum", "platinum"),
        ("bronze", "gold", "gold"),
        ("platinum", "silver", "platinum"),
    ],
)
def test_max_on_an_enum_follows_the_declared_order(
    crm_tier: str, shop_tier: str, maximum: str
) -> None:
    # the alphabet would rank silver above gold and platinum
    crm = rec("crm", "C1", tier=crm_tier)
    shop = rec("shop", "S1", tier=shop_tier)

    value, lineage = winner("tier", crm, shop)

    assert value == maximum
    assert lineage.source == ("crm" if maximum == crm_tier else "shop")


# -- union -------------------------------------------------------------------------------------------


def test_union_merges_every_source_list_sorted_without_duplicates() -> None:
    crm = rec("crm", "C1", at=hours(1), tags=("vip", "newsletter"))
    shop = rec("shop", "S1", tags=("newsletter", "app"))
    erp = rec("erp", "E1", email="no tags here")

    value, lineage = winner("tags", crm, shop, erp)

    assert value == ("app", "newsletter", "vip")
    assert lineage == Lineage("crm", "C1", "union", hours(1))


# -- the whole record --------------------------------------------------------------------------------


def test_survive_returns_only_attributes_with_a_value_in_model_order() -> None:
    crm = rec("crm", "C1", tags=("b",), name="N", high=1)
    shop = rec("shop", "S1", email="e@example.com")

    attributes, lineage = survive(ENTITY, [crm, shop])

    assert list(attributes) == ["name", "email", "high", "tags"]
    assert set(lineage) == set(attributes)
    assert {name: ln.rule for name, ln in lineage.items()} == {
        "name": "source_priority",
        "email": "most_recent",
        "high": "max",
        "tags": "union",
    }


def test_survive_of_no_sources_is_empty() -> None:
    assert survive(ENTITY, []) == ({}, {})


def test_unknown_source_counts_as_least_trusted() -> None:
    ghost = rec("ghost", "G1", at=hours(9), name="from an unknown source")
    shop = rec("shop", "S1", name="from the shop")

    value, lineage = winner("name", ghost, shop)

    assert value == "from the shop"
    assert lineage.source == "shop"


def test_a_lone_record_gives_what_every_rule_gives_with_other_records_holding_nothing() -> None:
    # one record (most golden records) takes a shorter path than several: the result is the same
    lone = rec(
        "shop",
        "S1",
        at=hours(3),
        name="Ada",
        email="ada@example.com",
        city="London",
        street="12 Long Road",
        low=1.5,
        high=7,
        since=dt.date(2020, 5, 1),
        tier="gold",
        tags=("vip", "app", "vip"),
    )
    empty = rec("crm", "C1", at=hours(1))

    attributes, lineage = survive(ENTITY, [lone])

    assert (attributes, lineage) == survive(ENTITY, [lone, empty])
    assert attributes["tags"] == ("app", "vip")
    assert list(attributes) == list(ENTITY.attributes)
    assert {(ln.source, ln.source_key) for ln in lineage.values()} == {("shop", "S1")}
    assert lineage["tier"] == Lineage("shop", "S1", "max", hours(3))
    assert lineage["tier"] is lineage["high"]  # one lineage per rule, shared
