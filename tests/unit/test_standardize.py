"""Standardizers from the model: e-mail, phone to E.164, country to ISO 3166, case."""

from __future__ import annotations

import datetime as dt

import pytest

from mdhub.domain.model import parse_model
from mdhub.domain.records import CandidateChange, Op
from mdhub.domain.standardize import INVALID_PHONE, UNKNOWN_COUNTRY, apply_standardizers
from mdhub.errors import ModelError

MODEL = {
    "model_version": 1,
    "entities": {
        "person": {
            "default_region": "DE",
            "attributes": {
                "email": {"type": "string", "standardize": "email"},
                "phone": {"type": "string", "standardize": ["phone_e164"]},
                "country": {"type": "string", "standardize": "country_iso2"},
                "code": {"type": "string", "standardize": ["upper"]},
                "aliases": {"type": "string_list", "standardize": "lower"},
                "name": {"type": "string"},
            },
            "sources": {"crm": {"trust": 50}},
        }
    },
}
ENTITY = parse_model(MODEL).entity("person")


def change(**attributes: object) -> CandidateChange:
    return CandidateChange(
        "c", "person", "crm", "1", Op.UPSERT, 1, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), attributes
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attribute", "raw", "expected"),
    [
        ("email", "Ada.Lovelace@Example.COM", "ada.lovelace@example.com"),
        ("phone", "030 1234567", "+49301234567"),  # the entity's default region applies
        ("phone", "+44 (0)20 7946 0000", "+442079460000"),
        ("country", "Germany", "DE"),
        ("country", "fra", "FR"),
        ("country", "us", "US"),
        ("code", "ab-12", "AB-12"),
        ("aliases", ("ADA", "ada", "Countess"), ("ada", "countess")),
        ("name", "Keep As Is", "Keep As Is"),
    ],
)
def test_values_are_standardized(attribute: str, raw: object, expected: object) -> None:
    result, reasons = apply_standardizers(ENTITY, change(**{attribute: raw}))
    assert reasons == []
    assert result.attributes[attribute] == expected


def test_values_that_cannot_be_standardized_are_violations() -> None:
    _, reasons = apply_standardizers(
        ENTITY, change(phone="call me", country="Atlantis", email="X@Y.Z")
    )
    assert sorted((r.code, r.attribute) for r in reasons) == [
        (INVALID_PHONE, "phone"),
        (UNKNOWN_COUNTRY, "country"),
    ]
    assert all(r.message for r in reasons)


def test_a_bad_standardizer_or_region_is_a_model_error_naming_the_key() -> None:
    bad = {
        "model_version": 1,
        "entities": {
            "p": {
                "default_region": "Germany",
                "attributes": {
                    "a": {"type": "string", "standardize": "soundex"},
                    "n": {"type": "integer", "standardize": "upper"},
                },
                "sources": {"s": {"trust": 1}},
            }
        },
    }
    with pytest.raises(ModelError) as err:
        parse_model(bad, "m.yaml")
    text = str(err.value)
    assert (
        "m.yaml: entities.p.attributes.a.standardize: 'soundex' is not a standardizer; accepted: lower"
        in text
    )
    assert "entities.p.attributes.n.standardize: standardizers apply to string attributes" in text
    assert "entities.p.default_region: must be an ISO 3166-1 alpha-2 code" in text
