"""The entity model file: the shipped model loads, and a bad one is refused with every problem named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdhub.domain.model import AttrType, Rule, parse_model
from mdhub.errors import ConfigError, ModelError
from mdhub.modelfile import load_model

REPO = Path(__file__).resolve().parents[2]
SHIPPED_MODEL = REPO / "config" / "model.yaml"

RULES = "source_priority, most_recent, most_frequent, longest, min, max, union"
TYPES = "string, integer, number, boolean, date, timestamp, string_list"


def good_model() -> dict[str, Any]:
    """A small valid model, as loaded from YAML."""
    return {
        "model_version": 1,
        "entities": {
            "customer": {
                "description": "a person",
                "attributes": {
                    "name": {"type": "string", "required": True, "max_length": 50},
                    "email": {"type": "string", "pattern": "[^@]+@[^@]+"},
                    "tags": {"type": "string_list"},
                },
                "sources": {"crm": {"trust": 90}, "shop": {"trust": 10}},
                "survivorship": {"default": "source_priority", "rules": {"email": "most_recent"}},
            }
        },
    }


def problems_of(data: Any, origin: str = "model.yaml") -> list[str]:
    with pytest.raises(ModelError) as info:
        parse_model(data, origin=origin)
    lines = str(info.value).splitlines()
    # the first line counts the problems, each further line is one problem
    assert lines[0] == f"the entity model is invalid ({len(lines) - 1} problem(s)):"
    return lines[1:]


# -- the shipped model -----------------------------------------------------------------------------


def test_shipped_model_loads_with_customer_attributes_and_sources() -> None:
    model = load_model(SHIPPED_MODEL)

    assert model.version == 1
    assert model.origin == str(SHIPPED_MODEL)
    customer = model.entity("customer")
    assert len(customer.attributes) >= 8
    assert set(customer.sources) == {"crm", "erp", "webshop"}
    assert customer.trust("crm") > customer.trust("erp") > customer.trust("webshop")
    assert customer.trust("unknown-source") == 0
    # rules come from the attribute, from survivorship.rules, from the type, or the default
    assert customer.attributes["email"].survivorship is Rule.MOST_RECENT
    assert customer.attributes["street"].survivorship is Rule.LONGEST
    assert customer.attributes["tags"].survivorship is Rule.UNION
    assert customer.attributes["tags"].type is AttrType.STRING_LIST
    assert customer.attributes["first_name"].survivorship is Rule.SOURCE_PRIORITY
    assert customer.attributes["first_name"].required is True
    assert customer.attributes["loyalty_tier"].enum == ("bronze", "silver", "gold", "platinum")


def test_unknown_entity_names_the_declared_ones() -> None:
    model = load_model(SHIPPED_MODEL)

    with pytest.raises(KeyError, match=r"unknown entity type 'supplier'.*customer, product"):
        model.entity("supplier")


def test_small_inline_model_parses() -> None:
    model = parse_model(good_model())

    customer = model.entity("customer")
    assert list(customer.attributes) == ["name", "email", "tags"]
    assert customer.attributes["email"].survivorship is Rule.MOST_RECENT
    assert customer.attributes["name"].max_length == 50
    assert customer.sources["crm"].trust == 90


def test_string_list_without_a_rule_defaults_to_union() -> None:
    data = good_model()
    data["entities"]["customer"]["survivorship"]["default"] = "most_recent"

    customer = parse_model(data).entity("customer")

    assert customer.attributes["tags"].survivorship is Rule.UNION
    assert customer.attributes["name"].survivorship is Rule.MOST_RECENT


# -- one bad model, every problem ------------------------------------------------------------------


def test_a_bad_model_reports_every_problem_at_once(tmp_path: Path) -> None:
    data = good_model()
    customer = data["entities"]["customer"]
    data["colour"] = "blue"  # unknown top-level key
    customer["attributes"]["name"]["colour"] = "red"  # unknown attribute key
    customer["attributes"]["age"] = {"type": "text", "required": "maybe"}  # bad type and flag
    customer["attributes"]["email"]["survivorship"] = "newest"  # bad rule
    customer["attributes"]["email"]["pattern"] = "[unclosed"  # bad regex
    customer["attributes"]["name"]["survivorship"] = "union"  # union on a string
    customer["sources"]["shop"]["trust"] = 101  # out of range
    path = tmp_path / "bad-model.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")

    with pytest.raises(ModelError) as info:
        load_model(path)

    lines = str(info.value).splitlines()[1:]
    assert len(lines) == 8, lines
    assert all(line.startswith(f"{path}: ") for line in lines)
    text = "\n".join(lines)
    assert (
        f"{path}: (top level).colour: unknown key; accepted keys: model_version, entities" in text
    )
    assert "entities.customer.attributes.name.colour: unknown key; accepted keys: type," in text
    assert f"entities.customer.attributes.age.type: 'text' is not a type; accepted: {TYPES}" in text
    assert (
        f"entities.customer.attributes.email.survivorship: 'newest' is not a survivorship rule; "
        f"accepted: {RULES}"
    ) in text
    assert "entities.customer.attributes.email.pattern: not a valid regular expression" in text
    assert "entities.customer.attributes.age.required: must be true or false, got 'maybe'" in text
    assert (
        "entities.customer.attributes.name.survivorship: rule 'union' needs type string_list"
        in text
    )
    assert "entities.customer.sources.shop.trust: must be an integer from 0 to 100, got 101" in text


BAD_CASES: list[tuple[str, Any, str, str]] = [
    (
        "unknown entity key",
        lambda d: d["entities"]["customer"].update(colour=1),
        "entities.customer.colour",
        "unknown key; accepted keys: description, attributes, sources, survivorship, match",
    ),
    (
        "unknown source key",
        lambda d: d["entities"]["customer"]["sources"]["crm"].update(owner="x"),
        "entities.customer.sources.crm.owner",
        "unknown key; accepted keys: trust, description",
    ),
    (
        "unknown survivorship key",
        lambda d: d["entities"]["customer"]["survivorship"].update(fallback="x"),
        "entities.customer.survivorship.fallback",
        "unknown key; accepted keys: default, rules",
    ),
    (
        "bad type",
        lambda d: d["entities"]["customer"]["attributes"]["name"].update(type="varchar"),
        "entities.customer.attributes.name.type",
        f"'varchar' is not a type; accepted: {TYPES}",
    ),
    (
        "bad default rule",
        lambda d: d["entities"]["customer"]["survivorship"].update(default="best"),
        "entities.customer.survivorship.default",
        f"'best' is not a survivorship rule; accepted: {RULES}",
    ),
    (
        "bad rule in survivorship.rules",
        lambda d: d["entities"]["customer"]["survivorship"]["rules"].update(name="loudest"),
        "entities.customer.attributes.name.survivorship",
        f"'loudest' is not a survivorship rule; accepted: {RULES}",
    ),
    (
        "rule for an attribute that does not exist",
        lambda d: d["entities"]["customer"]["survivorship"]["rules"].update(phone="max"),
        "entities.customer.survivorship.rules.phone",
        "names no attribute of the entity",
    ),
    (
        "trust above range",
        lambda d: d["entities"]["customer"]["sources"]["crm"].update(trust=500),
        "entities.customer.sources.crm.trust",
        "must be an integer from 0 to 100, got 500",
    ),
    (
        "trust below range",
        lambda d: d["entities"]["customer"]["sources"]["crm"].update(trust=-1),
        "entities.customer.sources.crm.trust",
        "must be an integer from 0 to 100, got -1",
    ),
    (
        "trust not an integer",
        lambda d: d["entities"]["customer"]["sources"]["crm"].update(trust="high"),
        "entities.customer.sources.crm.trust",
        "must be an integer from 0 to 100, got 'high'",
    ),
    (
        "union on a non-list",
        lambda d: d["entities"]["customer"]["attributes"]["email"].update(survivorship="union"),
        "entities.customer.attributes.email.survivorship",
        "rule 'union' needs type string_list",
    ),
    (
        "bad regex",
        lambda d: d["entities"]["customer"]["attributes"]["email"].update(pattern="(a"),
        "entities.customer.attributes.email.pattern",
        "not a valid regular expression",
    ),
    (
        "bad enum",
        lambda d: d["entities"]["customer"]["attributes"]["name"].update(enum=[]),
        "entities.customer.attributes.name.enum",
        "must be a non-empty list of strings",
    ),
    (
        "required not a boolean",
        lambda d: d["entities"]["customer"]["attributes"]["name"].update(required="yes"),
        "entities.customer.attributes.name.required",
        "must be true or false, got 'yes'",
    ),
    (
        "negative max_length",
        lambda d: d["entities"]["customer"]["attributes"]["name"].update(max_length=-3),
        "entities.customer.attributes.name.max_length",
        "must be a non-negative integer, got -3",
    ),
    (
        "non-numeric minimum",
        lambda d: d["entities"]["customer"]["attributes"]["name"].update(minimum="low"),
        "entities.customer.attributes.name.minimum",
        "must be a number, got 'low'",
    ),
    (
        "bad attribute name",
        lambda d: d["entities"]["customer"]["attributes"].update({"Bad-Name": "string"}),
        "entities.customer.attributes.Bad-Name",
        "attribute names must match",
    ),
    (
        "no attributes",
        lambda d: d["entities"]["customer"].update(attributes={}),
        "entities.customer.attributes",
        "an entity type needs at least one attribute",
    ),
    (
        "no sources",
        lambda d: d["entities"]["customer"].update(sources={}),
        "entities.customer.sources",
        "an entity type needs at least one source",
    ),
    (
        "attributes not a mapping",
        lambda d: d["entities"]["customer"].update(attributes=["name"]),
        "entities.customer.attributes",
        "must be a mapping, got list",
    ),
    (
        "missing entities",
        lambda d: d.pop("entities"),
        "entities",
        "declare at least one entity type",
    ),
    (
        "unsupported model_version",
        lambda d: d.update(model_version=2),
        "model_version",
        "2 is not supported; accepted: 1",
    ),
    (
        "missing model_version",
        lambda d: d.pop("model_version"),
        "model_version",
        "None is not supported; accepted: 1",
    ),
    (
        "model_version as a float",
        lambda d: d.update(model_version=1.0),
        "model_version",
        "1.0 is not supported; accepted: 1",
    ),
    (
        "model_version as a boolean",
        lambda d: d.update(model_version=True),
        "model_version",
        "True is not supported; accepted: 1",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [case[1:] for case in BAD_CASES],
    ids=[case[0] for case in BAD_CASES],
)
def test_each_problem_names_file_key_and_accepted_values(
    mutate: Any, path: str, message: str
) -> None:
    data = good_model()
    mutate(data)

    problems = problems_of(data, origin="conf/model.yaml")

    assert any(p.startswith(f"conf/model.yaml: {path}: {message}") for p in problems), problems


def test_top_level_not_a_mapping() -> None:
    with pytest.raises(ModelError, match=r"m\.yaml: \(top level\): must be a mapping, got list"):
        parse_model(["entities"], origin="m.yaml")


def test_model_error_is_a_config_error() -> None:
    # the CLI maps ConfigError to exit code 2, so a bad model must be one
    with pytest.raises(ConfigError):
        parse_model({}, origin="m.yaml")


# -- the file ----------------------------------------------------------------------------------------


def test_missing_file_is_a_clear_model_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"

    with pytest.raises(ModelError) as info:
        load_model(path)

    message = str(info.value)
    assert message.startswith(f"{path}: entity-model file not found")
    assert "MDHUB_MODEL" in message


def test_invalid_yaml_is_a_clear_model_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("model_version: 1\nentities: {customer: [unclosed\n", encoding="utf-8")

    with pytest.raises(ModelError) as info:
        load_model(path)

    assert str(info.value).startswith(f"{path}: not valid YAML")


def test_empty_file_is_a_model_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")

    with pytest.raises(ModelError) as info:
        load_model(path)

    problems = str(info.value).splitlines()[1:]
    assert f"{path}: model_version: None is not supported; accepted: 1" in problems
    assert f"{path}: entities: declare at least one entity type" in problems


# -- whatever the file holds, the answer is a model or a ModelError ---------------------------------

_scalars = st.none() | st.booleans() | st.integers(-5, 200) | st.floats() | st.text(max_size=8)
_data = st.recursive(
    _scalars | st.sampled_from([*RULES.split(", "), *TYPES.split(", "), "(", "[a-z]+"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["type", "survivorship", "trust", "pattern", "enum", "rules", "default", "x", "Bad"]
            )
            | st.text(max_size=5),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
_places = st.sampled_from(
    [
        ("entities",),
        ("entities", "customer"),
        ("entities", "customer", "attributes"),
        ("entities", "customer", "attributes", "name"),
        ("entities", "customer", "attributes", "tags"),
        ("entities", "customer", "sources"),
        ("entities", "customer", "sources", "crm"),
        ("entities", "customer", "survivorship"),
        ("entities", "customer", "survivorship", "rules"),
        ("model_version",),
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(place=_places, value=_data)
def test_parse_model_never_raises_anything_but_model_error(
    place: tuple[str, ...], value: Any
) -> None:
    data = copy.deepcopy(good_model())
    target = data
    for key in place[:-1]:
        target = target[key]
    target[place[-1]] = value

    try:
        model = parse_model(data, origin="fuzz.yaml")
    except ModelError as exc:
        message = str(exc)
        assert message.startswith("the entity model is invalid (")
        assert "\nfuzz.yaml: " in message
    else:
        assert model.version == 1
        assert model.entities
