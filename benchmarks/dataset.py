"""Deterministic customer candidate changes for the benchmarks, encoded once.

A run of :func:`generate` with the same arguments always yields the same bytes (the seed drives
every choice, times start from a fixed instant), so B0 and the hub read exactly the same input.

The data holds no duplicates: the benchmarks measure throughput, not matching, so every new source
key is a person of its own and starts a golden record of its own (id ``golden_id_for(entity,
source, key)``), which no other record may match, merge with or raise a review against. E-mails
and phones are unique, and :class:`People` admits a new person only when the model's deterministic
rules tell them apart from every earlier one (see there). The records still share surnames, birth
years, first names and addresses, so the hub's blocking finds candidates and scores them, as it
would in a real customer base. ``python benchmarks/dataset_check.py`` checks all of this through
the real resolve stage in memory.

Every update changes the e-mail address (it carries the record's revision), so each change makes
exactly one new golden version: the final version of a golden record is 1 + its updates.
"""

from __future__ import annotations

import datetime as dt
import itertools
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
from mdhub.domain.matching import Features, Verdict, compare, features
from mdhub.domain.model import EntityModel
from mdhub.domain.records import CandidateChange, Op, Value
from mdhub.serde.catalog import AvroCodec
from mdhub.serde.mapping import attributes_to_avro, change_to_avro
from mdhub.testdata.names import LAST_NAMES as TESTDATA_LAST_NAMES

__all__ = ["Dataset", "People", "RunData", "generate", "generate_run"]

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
OWN_LAST_NAMES = (
    "Müller", "Schmidt", "Dubois", "Martin", "Rossi", "García", "Novak", "Kowalski", "Jensen",
    "Andersson", "van der Berg", "O'Connor", "Fernández", "Lefèvre", "Bianchi", "Horváth",
    "Nielsen", "Virtanen", "Papadopoulos", "Costa", "Fischer", "Weber", "Moreau", "Ricci",
    "Sánchez", "Dvořák", "Larsen", "Johansson", "Smith", "Brown", "Tanaka", "Sato", "Khan",
    "Patel", "Nowak", "Wagner", "Becker", "Laurent", "Romano", "Silva",
)  # fmt: skip
# Realistic block sizes: with a few dozen surnames every name block of 100,000 customers would be
# far larger than in a real customer base, and the comparisons per record would grow with the run.
LAST_NAMES = tuple(
    sorted(set(OWN_LAST_NAMES) | set(itertools.chain.from_iterable(TESTDATA_LAST_NAMES.values())))
)
STREETS = (
    "Hauptstraße", "Rue de la République", "Via Giuseppe Garibaldi", "Calle Mayor",
    "Bahnhofstraße", "Kingsway", "Avenue des Champs-Élysées", "Lindenallee", "Market Street",
    "Nørrebrogade", "Ulica Marszałkowska", "Drottninggatan", "Keizersgracht", "Rua Augusta",
    "Schillerplatz", "Chemin des Vignes", "Corso Vittorio Emanuele II", "Gran Vía",
)  # fmt: skip
# (country, city, postal-code pattern, first and last code): the codes of a city are spread over a
# range (the pattern's # are its digits), so that address blocks stay as small as real ones.
PLACES = (
    ("DE", "Berlin", "#####", 10115, 14199), ("DE", "München", "#####", 80331, 81929),
    ("FR", "Paris", "#####", 75001, 75020), ("FR", "Lyon", "#####", 69001, 69009),
    ("IT", "Milano", "#####", 20121, 20162), ("ES", "Madrid", "#####", 28001, 28055),
    ("NL", "Amsterdam", "####", 1011, 1109), ("DK", "København", "####", 1050, 2450),
    ("PL", "Warszawa", "##-###", 1, 4999), ("SE", "Stockholm", "### ##", 11120, 11899),
    ("PT", "Lisboa", "####-###", 1000001, 1998999), ("AT", "Wien", "1##0", 1, 23),
    ("GB", "London", "SE## #AB", 100, 999), ("BE", "Bruxelles", "1###", 0, 210),
    ("CZ", "Praha", "### ##", 11000, 19900),
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


class People:
    """The people of one run's datasets: each new source record is someone no other record can match.

    The model decides by deterministic rules that two records are different people when their
    birth dates differ or their first names differ (a nickname or a typo is not "different"),
    whatever else agrees; updates never change names or birth dates. So a new person is admitted
    only when, against every earlier person born on a date the model's date comparator could call
    the same (equal, or with day and month swapped: the shipped model sets no tolerance), the
    model's verdict is "no match" by a rule. That settles every pair for good, and it costs a few
    comparisons per person. Pass one instance to every :func:`generate` of a run whose datasets
    reach the same hub, so that they stay apart too. Phones are handed out once as well.

    Args:
        entity: the entity model (without a ``match:`` section every person is admitted).
        attempts: draws per person before giving up.
    """

    def __init__(self, entity: EntityModel, attempts: int = 1000) -> None:
        self.spec = entity.matching
        self.attempts = attempts
        self.born: dict[tuple[int, int, int], list[Features]] = {}
        self.phones: set[str] = set()
        self.redrawn = 0

    def admit(self, first: str, last: str, birth_date: dt.date) -> bool:
        """Register the person and return True if the model can tell them from everyone else."""
        if self.spec is None:
            return True
        low, high = sorted((birth_date.month, birth_date.day))
        peers = self.born.setdefault((birth_date.year, low, high), [])
        mine = features(
            self.spec, {"first_name": first, "last_name": last, "birth_date": birth_date}
        )
        for other in peers:
            score = compare(self.spec, mine, other)
            if score.verdict is not Verdict.NO_MATCH or score.rule is None:
                self.redrawn += 1
                return False
        peers.append(mine)
        return True

    def phone(self, country: str, rng: random.Random) -> str:
        """A phone number of ``country`` nobody else has."""
        for _ in range(self.attempts):
            number = _phone(country, rng)
            if number not in self.phones:
                self.phones.add(number)
                return number
        raise RuntimeError(f"ran out of distinct {country} phone numbers")


def _ascii(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def _email(first: str, last: str, key: str, revision: int, rng: random.Random) -> str:
    # the source key makes it unique: nobody shares an address with someone else
    return f"{_ascii(first)}.{_ascii(last)}.{_ascii(key)}.{revision}@{rng.choice(DOMAINS)}"


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


def _postal_code(pattern: str, low: int, high: int, rng: random.Random) -> str:
    digits = iter(f"{rng.randint(low, high):0{pattern.count('#')}d}")
    return "".join(next(digits) if ch == "#" else ch for ch in pattern)


def _street(rng: random.Random) -> str:
    return (
        f"{rng.choice(STREETS)} {rng.randint(1, 240)}, building {rng.choice('ABCDEFGH')}, "
        f"apartment {rng.randint(1, 60)}"
    )


def _tags(rng: random.Random) -> tuple[str, ...]:
    return tuple(rng.sample(TAGS, rng.randint(5, 9)))


def _new_attributes(key: str, rng: random.Random, people: People) -> dict[str, Value]:
    for _ in range(people.attempts):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        birth_date = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randint(0, 365 * 65))
        if people.admit(first, last, birth_date):
            break
    else:
        raise RuntimeError(f"no distinct person found for {key} in {people.attempts} draws")
    country, city, pattern, low, high = rng.choice(PLACES)
    return {
        "first_name": first,
        "last_name": last,
        "email": _email(first, last, key, 1, rng),
        "phone": people.phone(country, rng),
        "street": _street(rng),
        "postal_code": _postal_code(pattern, low, high, rng),
        "city": city,
        "country": country,
        "birth_date": birth_date,
        "loyalty_tier": rng.choice(TIERS),
        "lifetime_value": round(rng.uniform(0, 25_000), 2),
        "tags": _tags(rng),
    }


def _updated_attributes(
    state: _SourceState, rng: random.Random, people: People
) -> dict[str, Value]:
    """A source re-sends the whole record with some fields changed, always the e-mail (never the
    names or the birth date: :class:`People` relies on that)."""
    out = dict(state.attributes)
    first, last = str(out["first_name"]), str(out["last_name"])
    out["email"] = _email(first, last, state.key, state.revision, rng)
    country = str(out["country"])
    changes: dict[str, Callable[[], Value]] = {
        "phone": lambda: people.phone(country, rng),
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
    people: People | None = None,
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
        people: the people of earlier datasets this one must not match (default: none).
        on_progress: called with the number of records done, every 5,000.

    Returns:
        The encoded changes and the expected final golden version of every key.
    """
    if not 0 <= update_fraction < 1:
        raise ValueError(f"update_fraction must be in [0, 1), got {update_fraction}")
    rng = random.Random(seed)
    people = people if people is not None else People(entity)
    data = Dataset()
    known: list[_SourceState] = []
    sources, weights = list(SOURCE_WEIGHTS), list(SOURCE_WEIGHTS.values())
    counters = dict.fromkeys(sources, 0)
    attr_total = value_total = 0
    for index in range(records):
        if known and rng.random() < update_fraction:
            state = rng.choice(known)
            state.revision += 1
            state.attributes = _updated_attributes(state, rng, people)
            state.version += rng.randint(1, 5)
            data.updates += 1
        else:
            source = rng.choices(sources, weights)[0]
            counters[source] += 1
            key = f"{key_prefix}{KEY_LETTER[source]}{counters[source]:08d}"
            attributes = _new_attributes(key, rng, people)
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
    if on_progress is not None:
        on_progress(records)
    if records:
        data.value_bytes = value_total / records
        data.attribute_bytes = attr_total / len(range(0, records, 50))
    return data


@dataclass(slots=True)
class RunData:
    """The datasets of one benchmark run; the hub sees them in the order warm-up, main, latency.

    Attributes:
        main: the throughput phase's changes (also B0's input).
        latency: new keys only, for the latency phase.
        warmup: one new key, to wait for the hub to be ready.
        people: the people behind all three (none matches another).
    """

    main: Dataset
    latency: Dataset
    warmup: Dataset
    people: People

    @property
    def in_hub_order(self) -> list[Dataset]:
        """The datasets in the order a full run publishes them."""
        return [self.warmup, self.main, self.latency]


def generate_run(
    entity: EntityModel,
    codec: AvroCodec,
    attributes_codec: AvroCodec,
    records: int,
    latency_records: int,
    *,
    update_fraction: float = 0.2,
    seed: int = 42,
    on_progress: Callable[[int], None] | None = None,
) -> RunData:
    """Generate a run's datasets, from one set of distinct people (see :class:`People`).

    The main dataset comes first, so its bytes depend only on ``records``, ``update_fraction`` and
    ``seed``; the latency and warm-up keys have prefixes of their own (``L-``, ``WARMUP-``).
    """
    people = People(entity)
    main = generate(
        entity,
        codec,
        attributes_codec,
        records,
        update_fraction=update_fraction,
        seed=seed,
        people=people,
        on_progress=on_progress,
    )
    latency = generate(
        entity,
        codec,
        attributes_codec,
        latency_records,
        update_fraction=0.0,
        seed=seed + 1,
        key_prefix="L-",
        people=people,
    )
    warmup = generate(
        entity,
        codec,
        attributes_codec,
        1,
        update_fraction=0.0,
        seed=seed + 2,
        key_prefix="WARMUP-",
        people=people,
    )
    return RunData(main, latency, warmup, people)
