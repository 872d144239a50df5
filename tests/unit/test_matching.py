"""Identity matching: the model's match section, features, blocking keys, comparators and verdicts."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdhub.domain.matching import (
    NICKNAME_GROUPS,
    ComparatorSpec,
    Contribution,
    Features,
    MatchingSpec,
    MatchScore,
    Method,
    Verdict,
    blocking_keys,
    combine,
    compare,
    features,
)
from mdhub.domain.model import parse_model
from mdhub.domain.records import Value
from mdhub.errors import ModelError
from mdhub.modelfile import load_model

REPO = Path(__file__).resolve().parents[2]

ATTRIBUTES = {
    "first_name": "string",
    "last_name": "string",
    "email": "string",
    "phone": "string",
    "street": "string",
    "postal_code": "string",
    "city": "string",
    "country": "string",
    "birth_date": "date",
    "income": "number",
    "children": "integer",
    "tags": "string_list",
}


def good_match() -> dict[str, Any]:
    """A valid match section, as loaded from YAML."""
    return {
        "match_threshold": 12,
        "review_threshold": 6,
        "blocking": [
            {"name": "email", "parts": ["email"]},
            {
                "name": "name_year",
                "parts": [
                    {"attribute": "last_name", "transform": "soundex"},
                    {"attribute": "birth_date", "transform": "year"},
                ],
            },
        ],
        "comparators": [
            {
                "attribute": "first_name",
                "method": "jaro_winkler",
                "m": 0.9,
                "u": 0.02,
                "nicknames": True,
                "swap_with": "last_name",
            },
            {
                "attribute": "last_name",
                "method": "jaro_winkler",
                "m": 0.9,
                "u": 0.01,
                "swap_with": "first_name",
            },
            {"attribute": "email", "method": "exact", "m": 0.8, "u": 0.001},
            {
                "attribute": "birth_date",
                "method": "date",
                "m": 0.95,
                "u": 0.001,
                "swapped_day_month": True,
            },
        ],
        "rules": [
            {
                "name": "different_birth_date",
                "attribute": "birth_date",
                "when": "different",
                "then": "no_match",
            }
        ],
    }


def model_with(match: Any) -> dict[str, Any]:
    return {
        "model_version": 1,
        "entities": {
            "person": {
                "attributes": dict(ATTRIBUTES),
                "sources": {"crm": {"trust": 90}},
                "match": match,
            }
        },
    }


def spec_of(match: dict[str, Any]) -> MatchingSpec:
    spec = parse_model(model_with(match)).entity("person").matching
    assert spec is not None
    return spec


def problems_of(match: Any) -> list[str]:
    with pytest.raises(ModelError) as info:
        parse_model(model_with(match), origin="m.yaml")
    return str(info.value).splitlines()[1:]


def one_comparator(comparator: dict[str, Any], **section: Any) -> MatchingSpec:
    """A spec with one comparator (m=0.9, u=0.1 unless given) and thresholds 0 / -100."""
    attribute = comparator["attribute"]
    return spec_of(
        {
            "match_threshold": 0,
            "review_threshold": -100,
            "blocking": [{"name": "k", "parts": [attribute]}],
            "comparators": [{"m": 0.9, "u": 0.1, **comparator}],
            **section,
        }
    )


def pair(spec: MatchingSpec, a: Mapping[str, Value], b: Mapping[str, Value]) -> MatchScore:
    return compare(spec, features(spec, a), features(spec, b))


def only(score: MatchScore) -> Contribution:
    (contribution,) = score.contributions
    return contribution


AGREE = math.log2(0.9 / 0.1)
DISAGREE = math.log2(0.1 / 0.9)

# -- the model section -----------------------------------------------------------------------------


def test_shipped_customer_model_has_a_matching_spec_and_product_none() -> None:
    model = load_model(REPO / "config" / "model.yaml")

    spec = model.entity("customer").matching
    assert spec is not None
    assert model.entity("product").matching is None
    assert {"email", "first_name", "last_name", "birth_date", "phone"} <= spec.attributes
    assert spec.attributes <= set(model.entity("customer").attributes)
    assert [rule.name for rule in spec.rules] == ["different_birth_date", "different_first_name"]
    assert spec.review_threshold < spec.match_threshold
    assert spec.max_block_size == 200


def test_shipped_customer_spec_matches_a_typical_duplicate() -> None:
    spec = load_model(REPO / "config" / "model.yaml").entity("customer").matching
    assert spec is not None
    crm: dict[str, Value] = {
        "first_name": "Robert",
        "last_name": "Smith",
        "email": "bob.smith@example.com",
        "birth_date": dt.date(1980, 3, 4),
        "postal_code": "10115",
    }
    shop: dict[str, Value] = {
        "first_name": "Bob",
        "last_name": "Smith",
        "email": "bob.smith@example.com",
        "birth_date": dt.date(1980, 4, 3),
    }

    score = pair(spec, crm, shop)

    assert score.verdict is Verdict.MATCH
    assert set(blocking_keys(spec, features(spec, crm))) & set(
        blocking_keys(spec, features(spec, shop))
    )
    # a namesake without any other evidence is for a steward to decide, not linked
    assert (
        pair(spec, {"first_name": "Robert", "last_name": "Smith"}, shop).verdict is Verdict.REVIEW
    )


def test_a_good_section_parses_with_defaults() -> None:
    spec = spec_of(good_match())

    assert spec.match_threshold == 12.0
    assert spec.review_threshold == 6.0
    assert spec.max_block_size == 200
    assert [key.name for key in spec.blocking] == ["email", "name_year"]
    first = spec.comparators[0]
    assert first.method is Method.JARO_WINKLER
    assert (first.agree_level, first.disagree_level) == (0.92, 0.75)
    assert first.nicknames is True
    assert first.swap_with == "last_name"
    assert (spec.comparators[2].agree_level, spec.comparators[2].disagree_level) == (1.0, 0.0)
    assert spec.comparators[2].agreement_weight == pytest.approx(math.log2(800))
    assert spec.comparators[2].disagreement_weight == pytest.approx(math.log2(0.2 / 0.999))
    assert spec.attributes == {"email", "last_name", "birth_date", "first_name"}


def test_max_block_size_is_read() -> None:
    assert spec_of({**good_match(), "max_block_size": 50}).max_block_size == 50


def test_ambiguity_margin_is_read_and_off_by_default() -> None:
    assert spec_of(good_match()).ambiguity_margin == 0.0
    assert spec_of({**good_match(), "ambiguity_margin": 2.5}).ambiguity_margin == 2.5


def test_an_entity_without_a_match_section_has_no_matching() -> None:
    data = model_with(None)
    del data["entities"]["person"]["match"]

    assert parse_model(data).entity("person").matching is None


M = "entities.person.match"


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(section: dict[str, Any]) -> None:
        target: Any = section
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return mutate


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda section: section.pop(key)


BAD_SECTIONS: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    (
        "unknown section key",
        _set(("colour",), 1),
        f"{M}.colour",
        "unknown key; accepted keys: match_threshold, review_threshold, max_block_size, "
        "ambiguity_margin, blocking, comparators, rules",
    ),
    (
        "unknown comparator key",
        _set(("comparators", 2, "weight"), 3),
        f"{M}.comparators[2].weight",
        "unknown key; accepted keys: attribute, method, m, u, agree, disagree, nicknames",
    ),
    (
        "unknown comparator attribute",
        _set(("comparators", 0, "attribute"), "nickname"),
        f"{M}.comparators[0].attribute",
        "'nickname' names no attribute of the entity; accepted: first_name, last_name, email",
    ),
    (
        "unknown method",
        _set(("comparators", 0, "method"), "soundalike"),
        f"{M}.comparators[0].method",
        "'soundalike' is not a comparator method; accepted: exact, jaro_winkler, levenshtein, "
        "token_set, phonetic, date, numeric",
    ),
    (
        "m above 1",
        _set(("comparators", 1, "m"), 1.5),
        f"{M}.comparators[1].m",
        "must be between 0 and 1 (exclusive), got 1.5",
    ),
    (
        "u of 0",
        _set(("comparators", 1, "u"), 0),
        f"{M}.comparators[1].u",
        "must be between 0 and 1 (exclusive), got 0",
    ),
    (
        "m not a number",
        _set(("comparators", 1, "m"), "high"),
        f"{M}.comparators[1].m",
        "must be a number, got 'high'",
    ),
    (
        "m not above u",
        _set(("comparators", 2, "m"), 0.001),
        f"{M}.comparators[2].m",
        "must be greater than u (0.001)",
    ),
    (
        "disagree not below agree",
        _set(("comparators", 0, "disagree"), 0.95),
        f"{M}.comparators[0].disagree",
        "must be below agree",
    ),
    (
        "agree out of range",
        _set(("comparators", 0, "agree"), 2),
        f"{M}.comparators[0].agree",
        "must be from 0 to 1, got 2",
    ),
    (
        "review above match threshold",
        _set(("review_threshold",), 15),
        f"{M}.review_threshold",
        "must be at most match_threshold (12), got 15",
    ),
    (
        "missing match threshold",
        _drop("match_threshold"),
        f"{M}.match_threshold",
        "must be a number, got None",
    ),
    (
        "bad max block size",
        _set(("max_block_size",), 0),
        f"{M}.max_block_size",
        "must be a positive integer, got 0",
    ),
    (
        "unknown blocking transform",
        _set(("blocking", 1, "parts", 0, "transform"), "reverse"),
        f"{M}.blocking[1].parts[0].transform",
        "'reverse' is not a transform; accepted: value, soundex, metaphone, year, prefix, "
        "digits, initial",
    ),
    (
        "blocking part names no attribute",
        _set(("blocking", 0, "parts"), ["mail"]),
        f"{M}.blocking[0].parts[0].attribute",
        "'mail' names no attribute of the entity",
    ),
    (
        "year of a string",
        _set(("blocking", 1, "parts", 1, "attribute"), "city"),
        f"{M}.blocking[1].parts[1].attribute",
        "attribute 'city' is of type string; this needs type date or timestamp",
    ),
    (
        "length without prefix",
        _set(("blocking", 1, "parts", 0, "length"), 3),
        f"{M}.blocking[1].parts[0].length",
        "applies to transform prefix only",
    ),
    (
        "duplicate blocking key name",
        _set(("blocking", 1, "name"), "email"),
        f"{M}.blocking[1].name",
        "'email' is declared twice",
    ),
    (
        "no blocking keys",
        _set(("blocking",), []),
        f"{M}.blocking",
        "declare at least one blocking key",
    ),
    (
        "no comparators",
        _drop("comparators"),
        f"{M}.comparators",
        "declare at least one comparator",
    ),
    (
        "method does not fit the attribute type",
        _set(("comparators", 0, "method"), "date"),
        f"{M}.comparators[0].attribute",
        "attribute 'first_name' is of type string; this needs type date or timestamp",
    ),
    (
        "option of another method",
        _set(("comparators", 3, "nicknames"), True),
        f"{M}.comparators[3].nicknames",
        "applies to method exact, jaro_winkler, levenshtein, token_set, phonetic only",
    ),
    (
        "option of the wrong type",
        _set(("comparators", 0, "nicknames"), "yes"),
        f"{M}.comparators[0].nicknames",
        "must be true or false, got 'yes'",
    ),
    (
        "swap_with itself",
        _set(("comparators", 1, "swap_with"), "last_name"),
        f"{M}.comparators[1].swap_with",
        "must name another attribute than the comparator's",
    ),
    (
        "swap_with unknown",
        _set(("comparators", 1, "swap_with"), "given_name"),
        f"{M}.comparators[1].swap_with",
        "'given_name' names no attribute of the entity",
    ),
    (
        "unknown phonetic algorithm",
        _set(
            ("comparators", 1),
            {
                "attribute": "last_name",
                "method": "phonetic",
                "m": 0.9,
                "u": 0.1,
                "algorithm": "nysiis",
            },
        ),
        f"{M}.comparators[1].algorithm",
        "'nysiis' is not a phonetic algorithm; accepted: metaphone, soundex",
    ),
    (
        "negative date tolerance",
        _set(("comparators", 3, "tolerance_days"), -1),
        f"{M}.comparators[3].tolerance_days",
        "must be a non-negative integer, got -1",
    ),
    (
        "negative numeric tolerance",
        _set(
            ("comparators", 3),
            {"attribute": "income", "method": "numeric", "m": 0.9, "u": 0.1, "tolerance": -5},
        ),
        f"{M}.comparators[3].tolerance",
        "must be at least 0, got -5",
    ),
    (
        "negative ambiguity margin",
        _set(("ambiguity_margin",), -1),
        f"{M}.ambiguity_margin",
        "must be at least 0, got -1",
    ),
    (
        "unknown rule condition",
        _set(("rules", 0, "when"), "similar"),
        f"{M}.rules[0].when",
        "'similar' is not a rule condition; accepted: same, different",
    ),
    (
        "unknown rule outcome",
        _set(("rules", 0, "then"), "review"),
        f"{M}.rules[0].then",
        "'review' is not a rule outcome; accepted: match, no_match",
    ),
    (
        "rule names no attribute",
        _set(("rules", 0, "attribute"), "dob"),
        f"{M}.rules[0].attribute",
        "'dob' names no attribute of the entity",
    ),
    (
        "bad rule name",
        _set(("rules", 0, "name"), "Different Birth Date"),
        f"{M}.rules[0].name",
        "must be a name matching",
    ),
    (
        "unknown rule key",
        _set(("rules", 0, "priority"), 1),
        f"{M}.rules[0].priority",
        "unknown key; accepted keys: name, attribute, when, then",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [case[1:] for case in BAD_SECTIONS],
    ids=[case[0] for case in BAD_SECTIONS],
)
def test_each_problem_names_its_key_path(
    mutate: Callable[[dict[str, Any]], None], path: str, message: str
) -> None:
    section = good_match()
    mutate(section)

    problems = problems_of(section)

    assert any(p.startswith(f"m.yaml: {path}: {message}") for p in problems), problems


def test_a_section_that_is_not_a_mapping() -> None:
    assert problems_of(["email"]) == [f"m.yaml: {M}: must be a mapping, got list"]


def test_every_problem_of_the_section_is_reported_at_once() -> None:
    section = good_match()
    section["comparators"][0]["method"] = "fuzzy"
    section["comparators"][1]["m"] = 2
    section["rules"][0]["then"] = "maybe"
    section["review_threshold"] = 20

    problems = problems_of(section)

    assert len(problems) == 4, problems


def test_an_attribute_with_a_bad_type_is_not_reported_again_by_the_section() -> None:
    data = model_with(good_match())
    data["entities"]["person"]["attributes"]["birth_date"] = "datetime"

    with pytest.raises(ModelError) as info:
        parse_model(data)

    problems = str(info.value).splitlines()[1:]
    assert len(problems) == 1
    assert "attributes.birth_date.type" in problems[0]


def test_comparator_spec_refuses_impossible_probabilities() -> None:
    with pytest.raises(ValueError, match="0 < u < m < 1"):
        ComparatorSpec("email", Method.EXACT, m=0.1, u=0.5)


# -- features ----------------------------------------------------------------------------------------

SPEC = spec_of(
    {
        **good_match(),
        "blocking": [
            {"name": "email", "parts": ["email"]},
            {
                "name": "name_year",
                "parts": [
                    {"attribute": "last_name", "transform": "soundex"},
                    {"attribute": "birth_date", "transform": "year"},
                ],
            },
            {"name": "phone", "parts": [{"attribute": "phone", "transform": "digits"}]},
            {
                "name": "address",
                "parts": [
                    "postal_code",
                    {"attribute": "street", "transform": "prefix", "length": 4},
                ],
            },
            {
                "name": "initials",
                "parts": [
                    {"attribute": "first_name", "transform": "initial"},
                    {"attribute": "last_name", "transform": "metaphone"},
                ],
            },
        ],
    }
)

HERNANDEZ: dict[str, Value] = {
    "first_name": "  José   María ",
    "last_name": "HERNÁNDEZ",
    "email": "jose@example.com",
    "phone": "+34 912-345-678",
    "street": "Calle Mayor 5",
    "postal_code": "28013",
    "birth_date": dt.date(1906, 12, 9),
    "city": "Madrid",  # not used by the spec: left out
}


def test_features_normalise_strings_and_precompute_codes() -> None:
    feats = features(SPEC, HERNANDEZ)

    assert feats["first_name"] == "jose maria"
    assert feats["last_name"] == "hernandez"
    assert feats["last_name:soundex"] == "H655"
    assert feats["last_name:metaphone"] == "HRNNTS"
    assert feats["birth_date"] == "1906-12-09"
    assert feats["birth_date:date"] == [dt.date(1906, 12, 9).toordinal(), 1906, 12, 9]
    assert "city" not in feats


def test_features_leave_out_missing_and_empty_values() -> None:
    feats = features(SPEC, {"first_name": "   ", "last_name": "", "email": "a@b.c"})

    assert feats == {"email": "a@b.c"}


def test_features_keep_nickname_groups() -> None:
    assert features(SPEC, {"first_name": "Bob"})["first_name:nick"] == ["robert"]
    assert features(SPEC, {"first_name": "Chris"})["first_name:nick"] == [
        "christine",
        "christopher",
    ]
    assert "first_name:nick" not in features(SPEC, {"first_name": "Zebedee"})


def test_features_survive_a_json_round_trip() -> None:
    a = features(SPEC, HERNANDEZ)
    b = features(SPEC, {**HERNANDEZ, "first_name": "Pepe", "birth_date": dt.date(1906, 9, 12)})
    a_json: Features = json.loads(json.dumps(a))
    b_json: Features = json.loads(json.dumps(b))

    assert a_json == a
    assert compare(SPEC, a_json, b_json) == compare(SPEC, a, b)


# -- blocking keys -----------------------------------------------------------------------------------


def test_blocking_keys_name_the_key_and_join_parts() -> None:
    keys = blocking_keys(SPEC, features(SPEC, HERNANDEZ))

    assert keys == [
        "email=jose@example.com",
        "name_year=H655|1906",
        "phone=34912345678",
        "address=28013|call",
        "initials=j|HRNNTS",
    ]


def test_a_blocking_key_with_a_missing_part_is_left_out() -> None:
    keys = blocking_keys(SPEC, features(SPEC, {"last_name": "Hernández", "street": "Calle 5"}))

    assert keys == []


def test_blocking_keys_have_no_duplicates_and_a_stable_order() -> None:
    spec = spec_of(
        {
            **good_match(),
            "blocking": [
                {"name": "b", "parts": ["email"]},
                {"name": "a", "parts": [{"attribute": "email", "transform": "value"}]},
            ],
        }
    )
    feats = features(spec, {"email": "x@y.z"})

    assert blocking_keys(spec, feats) == ["b=x@y.z", "a=x@y.z"]
    assert blocking_keys(spec, feats) == blocking_keys(spec, json.loads(json.dumps(feats)))


def test_an_unordered_blocking_key_is_shared_by_swapped_first_and_last_names() -> None:
    spec = spec_of(
        {
            **good_match(),
            "blocking": [
                {
                    "name": "names",
                    "parts": [
                        {"attribute": "first_name", "transform": "soundex"},
                        {"attribute": "last_name", "transform": "soundex"},
                    ],
                    "unordered": True,
                },
                {
                    "name": "ordered",
                    "parts": [
                        {"attribute": "first_name", "transform": "soundex"},
                        {"attribute": "last_name", "transform": "soundex"},
                    ],
                },
            ],
        }
    )
    straight = blocking_keys(spec, features(spec, {"first_name": "Robert", "last_name": "Smith"}))
    swapped = blocking_keys(spec, features(spec, {"first_name": "Smith", "last_name": "Robert"}))

    assert straight[0] == swapped[0] == "names=R163|S530"
    assert straight[1] != swapped[1]  # an ordered key tells them apart


def test_unordered_must_be_a_flag() -> None:
    problems = problems_of(
        {**good_match(), "blocking": [{"name": "n", "parts": ["email"], "unordered": "yes"}]}
    )

    assert any("blocking[0].unordered" in p and "true or false" in p for p in problems)


def test_similar_spellings_share_a_phonetic_blocking_key() -> None:
    a = blocking_keys(SPEC, features(SPEC, {"last_name": "Hernandes", "birth_date": "1906-01-02"}))
    b = blocking_keys(SPEC, features(SPEC, {"last_name": "Hernández", "birth_date": "1906-07-30"}))

    assert a == b == ["name_year=H655|1906"]


# -- comparators -------------------------------------------------------------------------------------


def test_exact_agreement_and_disagreement_weights() -> None:
    spec = one_comparator({"attribute": "email", "method": "exact"})

    same = only(pair(spec, {"email": "A@x.com "}, {"email": "a@x.com"}))
    other = only(pair(spec, {"email": "a@x.com"}, {"email": "b@x.com"}))

    assert same.similarity == 1.0
    assert same.weight == pytest.approx(AGREE)
    assert other.similarity == 0.0
    assert other.weight == pytest.approx(DISAGREE)


def test_missing_values_contribute_nothing() -> None:
    spec = one_comparator({"attribute": "email", "method": "exact"})

    for a, b in [({}, {"email": "a@x.com"}), ({"email": "a@x.com"}, {}), ({}, {})]:
        score = pair(spec, a, b)
        assert only(score) == Contribution("email", "exact", None, 0.0)
        assert score.score == 0.0


def test_jaro_winkler_interpolates_between_disagree_and_agree() -> None:
    spec = one_comparator({"attribute": "last_name", "method": "jaro_winkler"})

    close = only(pair(spec, {"last_name": "Martha"}, {"last_name": "Marhta"}))
    far = only(pair(spec, {"last_name": "Smith"}, {"last_name": "Okonkwo"}))
    partial = only(pair(spec, {"last_name": "Dwayne"}, {"last_name": "Duane"}))

    assert close.similarity == pytest.approx(0.9611, abs=1e-4)
    assert close.weight == pytest.approx(AGREE)  # 0.96 >= 0.92
    assert far.weight == pytest.approx(DISAGREE)
    assert partial.similarity is not None
    assert 0.75 < partial.similarity < 0.92
    expected = DISAGREE + (AGREE - DISAGREE) * (partial.similarity - 0.75) / (0.92 - 0.75)
    assert partial.weight == pytest.approx(expected)


def test_levenshtein_and_token_set_similarities() -> None:
    lev = one_comparator({"attribute": "city", "method": "levenshtein", "agree": 0.99})
    tokens = one_comparator({"attribute": "street", "method": "token_set"})

    assert only(pair(lev, {"city": "Berlin"}, {"city": "Berlim"})).similarity == pytest.approx(
        5 / 6
    )
    assert only(
        pair(tokens, {"street": "5 Calle Mayor"}, {"street": "Calle Mayor 5"})
    ).similarity == pytest.approx(1.0)


def test_phonetic_compares_metaphone_or_soundex_codes() -> None:
    metaphone = one_comparator({"attribute": "last_name", "method": "phonetic"})
    soundex = one_comparator(
        {"attribute": "last_name", "method": "phonetic", "algorithm": "soundex"}
    )

    assert only(pair(metaphone, {"last_name": "Smith"}, {"last_name": "Smyth"})).similarity == 1.0
    assert only(pair(metaphone, {"last_name": "Smith"}, {"last_name": "Jones"})).similarity == 0.0
    assert only(pair(soundex, {"last_name": "Robert"}, {"last_name": "Rupert"})).similarity == 1.0
    # no letters, no code: nothing to compare
    assert only(pair(soundex, {"last_name": "123"}, {"last_name": "Rupert"})).similarity is None


def test_nicknames_count_as_agreement() -> None:
    spec = one_comparator({"attribute": "first_name", "method": "jaro_winkler", "nicknames": True})
    plain = one_comparator({"attribute": "first_name", "method": "jaro_winkler"})

    for a, b in [("Bob", "Robert"), ("Peggy", "Margaret"), ("Liz", "Elizabeth"), ("Bill", "Liam")]:
        contribution = only(pair(spec, {"first_name": a}, {"first_name": b}))
        assert (contribution.similarity, contribution.detail) == (1.0, "nickname"), (a, b)
        assert contribution.weight == pytest.approx(AGREE)
        assert only(pair(plain, {"first_name": a}, {"first_name": b})).detail == ""
    unrelated = only(pair(spec, {"first_name": "Bob"}, {"first_name": "Margaret"}))
    assert unrelated.detail == ""
    assert unrelated.weight == pytest.approx(DISAGREE)


def test_the_nickname_table_has_about_eighty_groups() -> None:
    assert len({group[0] for group in NICKNAME_GROUPS}) >= 80
    assert all(name == name.casefold().strip() for group in NICKNAME_GROUPS for name in group)


def test_swapped_first_and_last_names_agree() -> None:
    spec = spec_of(good_match())
    a: dict[str, Value] = {
        "first_name": "Jane",
        "last_name": "Doe",
        "birth_date": dt.date(1970, 1, 2),
    }
    b: dict[str, Value] = {
        "first_name": "Doe",
        "last_name": "Jane",
        "birth_date": dt.date(1970, 1, 2),
    }

    first, last, _email, _birth = pair(spec, a, b).contributions

    assert (first.similarity, first.detail) == (1.0, "swapped first/last name")
    assert (last.similarity, last.detail) == (1.0, "swapped first/last name")
    # only one of the two crossings agreeing is not a swap
    half: dict[str, Value] = {"first_name": "Doe", "last_name": "Smith"}
    assert pair(spec, a, half).contributions[0].detail == ""


def test_date_exact_swapped_within_tolerance_and_different() -> None:
    spec = one_comparator(
        {
            "attribute": "birth_date",
            "method": "date",
            "swapped_day_month": True,
            "tolerance_days": 2,
        }
    )
    day = {"birth_date": dt.date(1980, 3, 4)}

    def contribution(other: dt.date) -> Contribution:
        return only(pair(spec, day, {"birth_date": other}))

    assert contribution(dt.date(1980, 3, 4)).similarity == 1.0
    swapped = contribution(dt.date(1980, 4, 3))
    assert (swapped.similarity, swapped.detail) == (0.85, "swapped day/month")
    near = contribution(dt.date(1980, 3, 6))
    assert (near.similarity, near.detail) == (0.9, "within 2 days")
    assert DISAGREE < near.weight < AGREE
    assert near.weight == pytest.approx(DISAGREE + (AGREE - DISAGREE) * 0.9)
    assert contribution(dt.date(1980, 3, 7)).similarity == 0.0
    assert contribution(dt.date(1981, 4, 3)).similarity == 0.0


def test_date_without_options_is_exact() -> None:
    spec = one_comparator({"attribute": "birth_date", "method": "date"})

    contribution = only(
        pair(spec, {"birth_date": dt.date(1980, 3, 4)}, {"birth_date": dt.date(1980, 4, 3)})
    )

    assert contribution.similarity == 0.0


def test_numeric_absolute_and_relative_tolerance() -> None:
    absolute = one_comparator({"attribute": "income", "method": "numeric", "tolerance": 100})
    relative = one_comparator(
        {"attribute": "income", "method": "numeric", "relative_tolerance": 0.1}
    )

    def sim(spec: MatchingSpec, x: float, y: float) -> float | None:
        return only(pair(spec, {"income": x}, {"income": y})).similarity

    assert sim(absolute, 1000, 1000.0) == 1.0
    assert sim(absolute, 1000, 1050) == pytest.approx(0.75)
    assert sim(absolute, 1000, 1100) == pytest.approx(0.5)
    assert sim(absolute, 1000, 1101) == 0.0
    # relative to the larger value: 10% of 1100
    assert sim(relative, 1000, 1100) == pytest.approx(1 - 0.5 * 100 / 110)
    assert sim(relative, 10, 12) == 0.0
    assert only(pair(absolute, {"income": 1000}, {"income": 1050})).detail == "within 100"


# -- rules and verdicts ------------------------------------------------------------------------------


def test_a_no_match_rule_overrides_a_high_score() -> None:
    spec = spec_of(good_match())
    a = {"first_name": "Jane", "last_name": "Doe", "email": "j@d.com", "birth_date": "1970-01-02"}
    b = {**a, "birth_date": "1971-05-06"}

    score = pair(spec, a, b)

    assert score.score >= spec.match_threshold
    assert (score.verdict, score.rule) == (Verdict.NO_MATCH, "different_birth_date")
    assert len(score.contributions) == 4  # still explained


def test_a_swapped_day_and_month_is_not_a_different_date() -> None:
    spec = spec_of(good_match())
    a = {"first_name": "Jane", "last_name": "Doe", "email": "j@d.com", "birth_date": "1970-01-02"}

    score = pair(spec, a, {**a, "birth_date": "1970-02-01"})

    assert (score.verdict, score.rule) == (Verdict.MATCH, None)


def test_rules_do_not_fire_on_missing_values() -> None:
    spec = spec_of(good_match())
    a = {"first_name": "Jane", "last_name": "Doe", "email": "j@d.com", "birth_date": "1970-01-02"}

    score = pair(spec, a, {"first_name": "Jane", "last_name": "Doe", "email": "j@d.com"})

    assert (score.verdict, score.rule) == (Verdict.MATCH, None)


def test_no_match_rules_win_over_match_rules() -> None:
    section = good_match()
    section["rules"] = [
        {"name": "same_email", "attribute": "email", "when": "same", "then": "match"},
        *section["rules"],
        # no comparator for phone: equality of the normalised values
        {"name": "same_phone", "attribute": "phone", "when": "same", "then": "match"},
    ]
    spec = spec_of(section)
    a = {"email": "j@d.com", "birth_date": "1970-01-02"}

    assert pair(spec, a, {"email": "J@D.com"}).rule == "same_email"
    assert pair(spec, a, {"email": "J@D.com"}).verdict is Verdict.MATCH
    assert pair(spec, {"phone": "+1 555"}, {"phone": "+1  555"}).rule == "same_phone"
    both = pair(spec, a, {"email": "j@d.com", "birth_date": "1999-09-09"})
    assert (both.verdict, both.rule) == (Verdict.NO_MATCH, "different_birth_date")


# -- a record against a golden record's sources -------------------------------------------------------

ANN: dict[str, Value] = {"first_name": "Ann", "last_name": "Lee"}


def test_combine_takes_each_comparators_best_agreement_across_the_sources() -> None:
    spec = spec_of(good_match())
    mine = {**ANN, "email": "ann@example.com", "birth_date": dt.date(1980, 5, 6)}
    with_email = pair(spec, mine, {**ANN, "email": "ann@example.com"})
    with_birth = pair(spec, mine, {**ANN, "birth_date": dt.date(1980, 5, 6)})

    total = combine(spec, [with_email, with_birth])

    weights = {c.attribute: c.weight for c in total.contributions}
    assert weights["email"] == pytest.approx(math.log2(0.8 / 0.001))
    assert weights["birth_date"] == pytest.approx(math.log2(0.95 / 0.001))
    assert total.score == pytest.approx(sum(weights.values()))
    # each source alone gives less: the evidence of the two adds up
    assert total.score > max(with_email.score, with_birth.score)
    assert total.verdict is Verdict.MATCH


def test_combine_keeps_a_disagreement_that_no_source_contradicts() -> None:
    spec = spec_of(good_match())
    mine = {**ANN, "email": "ann.lee@other.org"}
    names_only = pair(spec, mine, dict(ANN))  # that source has no e-mail
    other_email = pair(spec, mine, {**ANN, "email": "ann@example.com"})

    total = combine(spec, [names_only, other_email])

    email = next(c for c in total.contributions if c.attribute == "email")
    assert email.similarity == 0.0 and email.weight < 0
    assert total.score == pytest.approx(other_email.score)
    assert total.score < names_only.score


def test_combine_prefers_an_agreement_over_a_disagreement_of_the_same_attribute() -> None:
    spec = spec_of(good_match())
    mine = {**ANN, "email": "ann@example.com"}
    old_email = pair(spec, mine, {**ANN, "email": "ann.lee@old.org"})
    same_email = pair(spec, mine, {**ANN, "email": "ann@example.com"})

    total = combine(spec, [old_email, same_email])

    assert total.score == pytest.approx(same_email.score)
    assert total.contributions == same_email.contributions


def test_combine_of_one_score_is_that_score_and_of_none_an_error() -> None:
    spec = spec_of(good_match())
    score = pair(spec, {**ANN, "email": "a@b.c"}, {**ANN, "email": "a@b.c"})

    assert combine(spec, [score]) is score
    with pytest.raises(ValueError, match="at least one score"):
        combine(spec, [])


def test_combine_keeps_a_match_rule_that_fired_for_one_source() -> None:
    section = good_match()
    section["rules"] = [
        {"name": "same_email", "attribute": "email", "when": "same", "then": "match"}
    ]
    spec = spec_of(section)
    mine = {"first_name": "Jo", "last_name": "Doe", "email": "jo@example.com"}
    by_rule = pair(
        spec, mine, {"first_name": "Joanna", "last_name": "Dee", "email": "jo@example.com"}
    )
    weak = pair(spec, mine, {"first_name": "Jo", "last_name": "Roe"})

    total = combine(spec, [weak, by_rule])

    assert (total.verdict, total.rule) == (Verdict.MATCH, "same_email")


def test_a_different_rule_without_a_comparator_compares_values() -> None:
    section = good_match()
    section["rules"] = [
        {"name": "other_country", "attribute": "country", "when": "different", "then": "no_match"}
    ]
    spec = spec_of(section)
    a = {"email": "j@d.com", "country": "DE"}

    assert pair(spec, a, {"email": "j@d.com", "country": "de"}).rule is None
    assert pair(spec, a, {"email": "j@d.com", "country": "FR"}).rule == "other_country"


@pytest.mark.parametrize(
    ("score", "verdict"),
    [
        (12.0, Verdict.MATCH),
        (11.99, Verdict.REVIEW),
        (6.0, Verdict.REVIEW),
        (5.99, Verdict.NO_MATCH),
    ],
)
def test_verdict_thresholds_are_inclusive(score: float, verdict: Verdict) -> None:
    # one numeric comparator whose agreement weight is exactly ``score``: m/u = 2**score
    u = 1e-5
    spec = spec_of(
        {
            "match_threshold": 12,
            "review_threshold": 6,
            "blocking": [{"name": "k", "parts": ["children"]}],
            "comparators": [
                {"attribute": "children", "method": "exact", "m": u * 2**score, "u": u}
            ],
        }
    )

    result = pair(spec, {"children": 2}, {"children": 2})

    assert result.score == pytest.approx(score)
    assert result.verdict is verdict


def test_compare_is_deterministic_and_serialisable() -> None:
    spec = spec_of(good_match())
    a = features(spec, {"first_name": "Bob", "last_name": "Doe", "birth_date": "1970-01-02"})
    b = features(spec, {"first_name": "Robert", "last_name": "Doe", "birth_date": "1970-02-01"})

    results = {json.dumps(compare(spec, a, b).to_dict(), sort_keys=True) for _ in range(5)}

    assert len(results) == 1
    as_dict = json.loads(results.pop())
    assert as_dict["verdict"] == "match"
    assert as_dict["rule"] is None
    assert [c["detail"] for c in as_dict["contributions"]] == [
        "nickname",
        "",
        "",
        "swapped day/month",
    ]
    assert as_dict["contributions"][2] == {
        "attribute": "email",
        "method": "exact",
        "similarity": None,
        "weight": 0.0,
        "detail": "",
    }


def test_a_spec_is_a_frozen_value() -> None:
    assert spec_of(good_match()) == spec_of(copy.deepcopy(good_match()))
    with pytest.raises(AttributeError):
        spec_of(good_match()).match_threshold = 1  # type: ignore[misc]


# -- properties --------------------------------------------------------------------------------------

PROPERTY_SPEC = spec_of(
    {
        "match_threshold": 10,
        "review_threshold": 5,
        "blocking": [
            {"name": "email", "parts": ["email"]},
            {
                "name": "ny",
                "parts": [
                    {"attribute": "last_name", "transform": "metaphone"},
                    {"attribute": "birth_date", "transform": "year"},
                    {"attribute": "phone", "transform": "digits"},
                    {"attribute": "street", "transform": "initial"},
                ],
            },
        ],
        "comparators": [
            {
                "attribute": "first_name",
                "method": "jaro_winkler",
                "m": 0.9,
                "u": 0.05,
                "nicknames": True,
                "swap_with": "last_name",
            },
            {
                "attribute": "last_name",
                "method": "phonetic",
                "m": 0.9,
                "u": 0.05,
                "swap_with": "first_name",
            },
            {"attribute": "street", "method": "token_set", "m": 0.9, "u": 0.05},
            {"attribute": "city", "method": "levenshtein", "m": 0.9, "u": 0.05},
            {"attribute": "email", "method": "exact", "m": 0.9, "u": 0.05},
            {
                "attribute": "birth_date",
                "method": "date",
                "m": 0.9,
                "u": 0.05,
                "swapped_day_month": True,
                "tolerance_days": 3,
            },
            {
                "attribute": "income",
                "method": "numeric",
                "m": 0.9,
                "u": 0.05,
                "tolerance": 10,
                "relative_tolerance": 0.05,
            },
            {"attribute": "tags", "method": "token_set", "m": 0.9, "u": 0.05},
        ],
        "rules": [
            {"name": "dob", "attribute": "birth_date", "when": "different", "then": "no_match"},
            {"name": "mail", "attribute": "email", "when": "same", "then": "match"},
            {"name": "land", "attribute": "country", "when": "different", "then": "no_match"},
        ],
    }
)

NAMES = st.sampled_from(["Bob", "Robert", "Jane", "Doe", "José", "", "  ", "Ж", "123", "o'Brien"])
ANY_VALUE: st.SearchStrategy[Value] = st.one_of(
    NAMES,
    st.text(max_size=30),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.dates(),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.lists(st.text(max_size=8), max_size=4).map(tuple),
)
RECORDS = st.dictionaries(st.sampled_from(sorted(PROPERTY_SPEC.attributes)), ANY_VALUE, max_size=12)
FAST = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def _dob_fires(day: dt.date, other: dt.date) -> bool:
    scored = compare(
        PROPERTY_SPEC,
        features(PROPERTY_SPEC, {"birth_date": day}),
        features(PROPERTY_SPEC, {"birth_date": other}),
    )
    return scored.rule == "dob"


def _narrowed_out(day: dt.date, other: dt.date) -> bool:
    narrowing = PROPERTY_SPEC._plan.narrowing
    assert narrowing is not None
    dates = narrowing.dates(features(PROPERTY_SPEC, {"birth_date": day}))
    assert dates is not None
    return other.toordinal() not in dates


DAYS = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2030, 12, 31))


@FAST
@given(DAYS, st.integers(-5, 5), st.booleans())
def test_the_date_narrowing_leaves_out_exactly_the_dates_the_rule_tells_apart(
    day: dt.date, shift: int, swap: bool
) -> None:
    # near dates: the same, within the tolerance (3 days), just outside, day and month swapped
    other = day + dt.timedelta(days=shift)
    if swap:
        with contextlib.suppress(ValueError):  # no such day (31 April, ...)
            other = dt.date(other.year, other.day, other.month)
    assert _narrowed_out(day, other) == _dob_fires(day, other)


@FAST
@given(DAYS, DAYS)
def test_the_date_narrowing_agrees_with_the_rule_on_any_two_dates(
    day: dt.date, other: dt.date
) -> None:
    assert _narrowed_out(day, other) == _dob_fires(day, other)


def test_the_date_narrowing_lists_the_day_the_swap_and_the_tolerance() -> None:
    narrowing = PROPERTY_SPEC._plan.narrowing
    assert narrowing is not None
    dates = narrowing.dates(features(PROPERTY_SPEC, {"birth_date": dt.date(1980, 3, 4)}))
    expected = {dt.date(1980, 3, d).toordinal() for d in range(1, 8)}  # 4 March +- 3 days
    assert dates == {*expected, dt.date(1980, 4, 3).toordinal()}
    # without a date of its own a record may meet any date
    assert narrowing.dates(features(PROPERTY_SPEC, {"first_name": "Ann"})) is None
    # the tolerance stops at the calendar's ends
    last = narrowing.dates(features(PROPERTY_SPEC, {"birth_date": dt.date.max}))
    assert last is not None and max(last) == dt.date.max.toordinal()
    first = narrowing.dates(features(PROPERTY_SPEC, {"birth_date": dt.date.min}))
    assert first is not None and min(first) == 1


def test_only_a_different_rule_on_a_date_comparator_narrows() -> None:
    assert spec_of(good_match())._plan.narrowing is not None
    without_rules = good_match()
    without_rules["rules"] = []
    assert spec_of(without_rules)._plan.narrowing is None
    on_email = good_match()
    on_email["rules"] = [
        {"name": "other_mail", "attribute": "email", "when": "different", "then": "no_match"}
    ]
    assert spec_of(on_email)._plan.narrowing is None


@FAST
@given(RECORDS, RECORDS)
def test_compare_never_raises_and_is_symmetric(a: dict[str, Value], b: dict[str, Value]) -> None:
    fa = features(PROPERTY_SPEC, a)
    fb = features(PROPERTY_SPEC, b)

    ab = compare(PROPERTY_SPEC, fa, fb)
    ba = compare(PROPERTY_SPEC, fb, fa)

    assert ab.score == ba.score
    assert (ab.verdict, ab.rule) == (ba.verdict, ba.rule)
    assert math.isfinite(ab.score)
    for contribution in ab.contributions:
        assert contribution.similarity is None or 0.0 <= contribution.similarity <= 1.0
    json.dumps(ab.to_dict())


@FAST
@given(RECORDS, RECORDS)
def test_features_round_trip_through_json(a: dict[str, Value], b: dict[str, Value]) -> None:
    fa = features(PROPERTY_SPEC, a)
    fb = features(PROPERTY_SPEC, b)
    fa_json = json.loads(json.dumps(fa))
    fb_json = json.loads(json.dumps(fb))

    assert fa_json == fa
    assert compare(PROPERTY_SPEC, fa_json, fb_json) == compare(PROPERTY_SPEC, fa, fb)
    assert blocking_keys(PROPERTY_SPEC, fa_json) == blocking_keys(PROPERTY_SPEC, fa)
    assert len(set(blocking_keys(PROPERTY_SPEC, fa))) == len(blocking_keys(PROPERTY_SPEC, fa))


@FAST
@given(RECORDS, RECORDS)
def test_early_exit_only_cuts_short_what_a_no_match_rule_decides(
    a: dict[str, Value], b: dict[str, Value]
) -> None:
    fa = features(PROPERTY_SPEC, a)
    fb = features(PROPERTY_SPEC, b)
    full = compare(PROPERTY_SPEC, fa, fb)
    early = compare(PROPERTY_SPEC, fa, fb, early_exit=True)
    if not early.partial:
        assert early == full
        return
    no_match_rules = {r.name for r in PROPERTY_SPEC.rules if r.then.value == "no_match"}
    assert early.verdict is Verdict.NO_MATCH
    assert full.verdict is Verdict.NO_MATCH
    assert full.rule in no_match_rules
    assert early.rule in no_match_rules
    assert (early.score, early.contributions, early.ruled_out) == (0.0, (), True)


def test_early_exit_on_the_shipped_model_stops_at_a_different_birth_date() -> None:
    spec = load_model(REPO / "config" / "model.yaml").entity("customer").matching
    assert spec is not None
    grace = {"first_name": "Grace", "last_name": "Hopper", "birth_date": dt.date(1906, 12, 9)}
    namesake = {**grace, "birth_date": dt.date(1971, 3, 2), "email": "g@example.com"}
    fa, fb = features(spec, grace), features(spec, namesake)

    early = compare(spec, fa, fb, early_exit=True)
    full = compare(spec, fa, fb)

    assert (early.verdict, early.rule, early.partial) == (
        Verdict.NO_MATCH,
        "different_birth_date",
        True,
    )
    assert (full.verdict, full.rule, full.partial) == (
        Verdict.NO_MATCH,
        "different_birth_date",
        False,
    )
    assert (early.score, early.contributions, early.ruled_out) == (0.0, (), True)
    assert full.ruled_out
    twin = features(spec, {**grace, "email": "g@example.com"})
    assert compare(spec, fa, twin, early_exit=True) == compare(spec, fa, twin)


def test_early_exit_reads_the_cheapest_rule_first() -> None:
    # both rules of the shipped model fire for this pair; a date is cheaper to compare than a
    # name (a name also gets its nickname and swapped-name checks), so early exit stops there
    spec = load_model(REPO / "config" / "model.yaml").entity("customer").matching
    assert spec is not None
    ada = {"first_name": "Ada", "last_name": "Byron", "birth_date": dt.date(1815, 12, 10)}
    sister = {"first_name": "Mary", "last_name": "Byron", "birth_date": dt.date(1818, 4, 1)}
    fa, fb = features(spec, ada), features(spec, sister)

    early = compare(spec, fa, fb, early_exit=True)
    full = compare(spec, fa, fb)

    assert (early.rule, early.partial, early.ruled_out) == ("different_birth_date", True, True)
    assert full.ruled_out and full.rule == "different_birth_date"
    order = [spec._plan.comparators[i].key for i, rules in spec._plan.exit_order if rules]
    assert order == ["birth_date:date", "first_name"]
