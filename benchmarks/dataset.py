"""Deterministic customer candidate changes for the benchmarks, encoded once.

A run of :func:`generate` with the same arguments always yields the same bytes (the seed drives
every choice, times start from a fixed instant), so B0 and the hub read exactly the same input.

Every update changes the e-mail address (it carries the record's revision), so each change makes
exactly one new golden version: the final version of a golden record is 1 + its updates.
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import cast

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from mdhub.domain.identity import golden_id_for
from mdhub.domain.model import EntityModel
from mdhub.domain.records import CandidateChange, Op, Value
from mdhub.serde.catalog import AvroCodec
from mdhub.serde.mapping import attributes_to_avro, change_to_avro

__all__ = ["Dataset", "generate"]

ENTITY = "customer"

# Share of new records per source (the model's customer sources).
SOURCE_WEIGHTS = {"crm": 0.5, "erp": 0.3, "webshop": 0.2}
KEY_LETTER = {"crm": "C", "erp": "E", "webshop": "W"}

# Every change happened in the past, so the worker's future-timestamp check never trips.
EPOCH = dt.datetime(2025, 1, 6, 8, 0, tzinfo=dt.UTC)

FIRST_NAMES = (
    "Anna", "Lukas", "Sofia", "Jonas", "Emma", "Noah", "Mia", "Elias", "Léa", "Mateo",
    "Hannah", "Finn", "Chloé", "Oskar", "Zoë", "Jakub", "Ingrid", "Søren", "Amélie", "Tomás",
    "Olivia", "Liam", "Charlotte", "Henri", "Giulia", "Marco", "Aisha", "Omar", "Yuki", "Kenji",
    "Priya", "Arjun", "Maja", "Piotr", "Eva", "Miguel", "Clara", "Felix", "Nora", "Samuel",
)  # fmt: skip
LAST_NAMES = (
    "Müller", "Schmidt", "Dubois", "Martin", "Rossi", "García", "Novak", "Kowalski", "Jensen",
    "Andersson", "van der Berg", "O'Connor", "Fernández", "Lefèvre", "Bianchi", "Horváth",
    "Nielsen", "Virtanen", "Papadopoulos", "Costa", "Fischer", "Weber", "Moreau", "Ricci",
    "Sánchez", "Dvořák", "Larsen", "Johansson", "Smith", "Brown", "Tanaka", "Sato", "Khan",
    "Patel", "Nowak", "Wagner", "Becker", "Laurent", "Romano", "Silva",
)  # fmt: skip
STREETS = (
    "Hauptstraße", "Rue de la République", "Via Giuseppe Garibaldi", "Calle Mayor",
    "Bahnhofstraße", "Kingsway", "Avenue des Champs-Élysées", "Lindenallee", "Market Street",
    "Nørrebrogade", "Ulica Marszałkowska", "Drottninggatan", "Keizersgracht", "Rua Augusta",
    "Schillerplatz", "Chemin des Vignes", "Corso Vittorio Emanuele II", "Gran Vía",
)  # fmt: skip
PLACES = (
    ("DE", "Berlin", "10115"), ("DE", "München", "80331"), ("FR", "Paris", "75002"),
    ("FR", "Lyon", "69001"), ("IT", "Milano", "20121"), ("ES", "Madrid", "28013"),
    ("NL", "Amsterdam", "1015"), ("DK", "København", "2200"), ("PL", "Warszawa", "00-001"),
    ("SE", "Stockholm", "111 57"), ("PT", "Lisboa", "1100-048"), ("AT", "Wien", "1010"),
    ("GB", "London", "WC2B 4AB"), ("BE", "Bruxelles", "1000"), ("CZ", "Praha", "110 00"),
)  # fmt: skip
DOMAINS = ("example.com", "mail.example.org", "post.example.net", "inbox.example.eu")
TIERS = ("bronze", "silver", "gold", "platinum")
TAGS = (
    "newsletter-subscriber", "prefers-email-contact", "b2b-account", "vip-customer",
    "returning-buyer", "seasonal-shopper", "mobile-app-user", "loyalty-programme-member",
    "paper-invoice", "sms-opt-in", "gift-card-holder", "high-return-rate", "eco-packaging",
    "click-and-collect", "outlet-shopper", "premium-delivery", "segment:urban-professional",
    "segment:young-family", "segment:retired", "segment:student", "channel:marketplace",
    "channel:store-pos", "channel:call-centre", "campaign:spring-sale", "campaign:black-friday",
)  # fmt: skip


@dataclass(slots=True)
class Dataset:
    """Encoded candidate changes and what the hub must end with.

    Attributes:
        messages: ``(kafka_key, value)`` per change, in publishing order.
        golden_ids: the golden id each message resolves to (same order as ``messages``).
        final_versions: golden id -> the version its last change must produce.
        updates: how many messages update a key seen before.
        attribute_bytes: mean Avro size of the attributes alone.
        value_bytes: mean size of an encoded message value.
    """

    messages: list[tuple[bytes, bytes]] = field(default_factory=list)
    golden_ids: list[str] = field(default_factory=list)
    final_versions: dict[str, int] = field(default_factory=dict)
    updates: int = 0
    attribute_bytes: float = 0.0
    value_bytes: float = 0.0

    @property
    def keys(self) -> int:
        """Distinct source records (= golden records)."""
        return len(self.final_versions)

    @property
    def expected_versions(self) -> int:
        """Golden versions the hub must publish for the whole dataset."""
        return sum(self.final_versions.values())


@dataclass(slots=True)
class _SourceState:
    """What the generator remembers of a source record, to update it later."""

    source: str
    key: str
    golden_id: str
    attributes: dict[str, Value]
    version: int
    revision: int = 1


def _ascii(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def _email(first: str, last: str, revision: int, rng: random.Random) -> str:
    return f"{_ascii(first)}.{_ascii(last)}.{revision}@{rng.choice(DOMAINS)}"


@lru_cache(maxsize=64)
def _mobile_pattern(country: str) -> tuple[int, str]:
    """A country's calling code and the national number of an example mobile phone."""
    example = phonenumbers.example_number_for_type(country, PhoneNumberType.MOBILE)
    if example is None or example.country_code is None:
        raise ValueError(f"phonenumbers has no example mobile number for {country}")
    return example.country_code, phonenumbers.national_significant_number(example)


def _phone(country: str, rng: random.Random) -> str:
    """A valid mobile number of ``country`` in international format (the hub checks them)."""
    code, national = _mobile_pattern(country)
    for _ in range(10):
        digits = national[:-5] + f"{rng.randrange(100_000):05d}"
        number = phonenumbers.parse(f"+{code}{digits}")
        if phonenumbers.is_valid_number(number):
            break
    else:
        number = phonenumbers.parse(f"+{code}{national}")
    return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)


def _street(rng: random.Random) -> str:
    return (
        f"{rng.choice(STREETS)} {rng.randint(1, 240)}, building {rng.choice('ABCDEFGH')}, "
        f"apartment {rng.randint(1, 60)}"
    )


def _tags(rng: random.Random) -> tuple[str, ...]:
    return tuple(rng.sample(TAGS, rng.randint(5, 9)))


def _new_attributes(rng: random.Random) -> dict[str, Value]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    country, city, postal_code = rng.choice(PLACES)
    return {
        "first_name": first,
        "last_name": last,
        "email": _email(first, last, 1, rng),
        "phone": _phone(country, rng),
        "street": _street(rng),
        "postal_code": postal_code,
        "city": city,
        "country": country,
        "birth_date": dt.date(1940, 1, 1) + dt.timedelta(days=rng.randint(0, 365 * 65)),
        "loyalty_tier": rng.choice(TIERS),
        "lifetime_value": round(rng.uniform(0, 25_000), 2),
        "tags": _tags(rng),
    }


def _updated_attributes(
    attributes: dict[str, Value], revision: int, rng: random.Random
) -> dict[str, Value]:
    """A source re-sends the whole record with some fields changed, always the e-mail."""
    out = dict(attributes)
    out["email"] = _email(str(out["first_name"]), str(out["last_name"]), revision, rng)
    country = str(out["country"])
    changes: dict[str, Callable[[], Value]] = {
        "phone": lambda: _phone(country, rng),
        "street": lambda: _street(rng),
        "loyalty_tier": lambda: rng.choice(TIERS),
        "lifetime_value": lambda: round(
            cast(float, out["lifetime_value"]) + rng.uniform(5, 500), 2
        ),
        "tags": lambda: _tags(rng),
    }
    for name in rng.sample(sorted(changes), rng.randint(0, 3)):
        out[name] = changes[name]()
    return out


def generate(
    entity: EntityModel,
    codec: AvroCodec,
    attributes_codec: AvroCodec,
    records: int,
    *,
    update_fraction: float = 0.2,
    seed: int = 42,
    key_prefix: str = "",
    on_progress: Callable[[int], None] | None = None,
) -> Dataset:
    """Generate and encode ``records`` candidate changes of customers.

    Args:
        entity: the customer entity model.
        codec: the ``CandidateChange`` codec.
        attributes_codec: the ``Attributes`` codec (only to report the attributes' size).
        records: how many changes.
        update_fraction: share of changes that update an already generated source record.
        seed: drives every random choice.
        key_prefix: put before every source key (keeps separate sets of keys apart).
        on_progress: called with the number of records done, every 5,000.

    Returns:
        The encoded changes and the expected final golden version of every key.
    """
    if not 0 <= update_fraction < 1:
        raise ValueError(f"update_fraction must be in [0, 1), got {update_fraction}")
    rng = random.Random(seed)
    data = Dataset()
    known: list[_SourceState] = []
    sources, weights = list(SOURCE_WEIGHTS), list(SOURCE_WEIGHTS.values())
    counters = dict.fromkeys(sources, 0)
    attr_total = value_total = 0
    for index in range(records):
        if known and rng.random() < update_fraction:
            state = rng.choice(known)
            state.revision += 1
            state.attributes = _updated_attributes(state.attributes, state.revision, rng)
            state.version += rng.randint(1, 5)
            data.updates += 1
        else:
            source = rng.choices(sources, weights)[0]
            counters[source] += 1
            key = f"{key_prefix}{KEY_LETTER[source]}{counters[source]:08d}"
            attributes = _new_attributes(rng)
            state = _SourceState(
                source, key, golden_id_for(ENTITY, source, key), attributes, rng.randint(1, 1000)
            )
            known.append(state)
        source, key, golden_id = state.source, state.key, state.golden_id
        attributes, version = state.attributes, state.version
        change = CandidateChange(
            change_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            entity=ENTITY,
            source=source,
            source_key=key,
            op=Op.UPSERT,
            source_version=version,
            occurred_at=EPOCH + dt.timedelta(milliseconds=250 * index),
            attributes=attributes,
        )
        value = codec.encode(change_to_avro(entity, change))
        data.messages.append((change.source_ref.encode(), value))
        data.golden_ids.append(golden_id)
        data.final_versions[golden_id] = data.final_versions.get(golden_id, 0) + 1
        value_total += len(value)
        if index % 50 == 0:  # sampled: the size is a description, not a check
            attr_total += len(attributes_codec.encode(attributes_to_avro(entity, attributes))) - 10
        if on_progress is not None and (index + 1) % 5000 == 0:
            on_progress(index + 1)
    if records:
        data.value_bytes = value_total / records
        data.attribute_bytes = attr_total / len(range(0, records, 50))
    return data
