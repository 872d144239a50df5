"""Generate source records of an entity type with the truth about which ones are the same entity.

:func:`generate` makes ``people`` entities (people for ``customer``, generic entities from the model
for any other type), lets each appear in one to three of the model's sources, and varies what each
source record says as a :class:`~mdhub.testdata.difficulty.Difficulty` asks: typos, nicknames,
swapped names, missing values, formatting, moves and new e-mail addresses over time, look-alike
people who are *not* the same, and duplicates within a source. The result is deterministic for a
seed; :meth:`Generated.truth` maps every source record to its entity, and :meth:`Generated.write`
writes files that ``mdhub publish`` accepts.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mdhub.domain.model import AttributeSpec, EntityModel
from mdhub.domain.records import CandidateChange, Op
from mdhub.domain.validation import check_attribute
from mdhub.testdata.difficulty import Difficulty
from mdhub.testdata.generic import ValueFactory, is_free_text
from mdhub.testdata.noise import Style, Typo, misspell, pick, recase
from mdhub.testdata.people import (
    PERSON_ATTRIBUTES,
    Person,
    PersonFactory,
    render_person,
)

__all__ = ["Generated", "GeneratedRecord", "Lookalike", "Summary", "generate"]

START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
"""First versions are spread over the year from here; changes follow until mid-2026."""
_FIRST_SPAN = 365 * 86400
_CHANGE_FROM = START + dt.timedelta(days=90)
_CHANGE_SPAN = 410 * 86400
_LAG = 30 * 86400  # how long a source takes to hear of a change

_CHANGE_IDS = uuid.UUID("5d0c3a54-7f61-4f3e-9a0e-6576616c7561")
PRESENCE = (0.7, 0.6, 0.5)
"""The chance of an entity being in the model's first, second and third source (0.4 later)."""
MAX_SOURCES = 3
UPDATE_SHARE = 0.8
"""The share of sources holding a changed value that send a later version with it."""

# Which attributes each kind of source system usually holds, and which it holds sometimes: a CRM
# keeps contact data and birth dates; a billing ERP keeps the billing address and the e-mail that
# invoices go to; a web shop keeps the login e-mail and, once something was shipped, an address.
_ADDRESS = ("street", "postal_code", "city")
_PROFILES: dict[str, tuple[tuple[str, ...], dict[tuple[str, ...], float]]] = {
    "crm": (
        ("first_name", "last_name", "email", "phone", "birth_date", "country", "loyalty_tier"),
        {_ADDRESS: 0.6, ("tags",): 0.3, ("lifetime_value",): 0.1},
    ),
    "erp": (
        ("first_name", "last_name", *_ADDRESS, "country", "lifetime_value"),
        {("email",): 0.8, ("birth_date",): 0.3, ("phone",): 0.5},
    ),
    "webshop": (
        ("first_name", "last_name", "email", "country", "tags"),
        {_ADDRESS: 0.7, ("phone",): 0.5, ("birth_date",): 0.2, ("loyalty_tier",): 0.3},
    ),
}
_RARE = 0.05  # the chance of a source holding an attribute it usually does not
_FORMATTED = frozenset(
    {"first_name", "last_name", "email", "phone", "street", "postal_code", "city", "country"}
)
_ENVELOPE = ("source_key", "source_version", "occurred_at")

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class GeneratedRecord:
    """One version of one source record, with the entity it truly belongs to.

    ``attributes`` hold Python values as the SDK takes them (dates as :class:`datetime.date`,
    lists of strings as lists).
    """

    source: str
    source_key: str
    entity_id: str
    source_version: int
    occurred_at: dt.datetime
    attributes: dict[str, Any]

    @property
    def source_ref(self) -> str:
        """``<source>:<source_key>``."""
        return f"{self.source}:{self.source_key}"

    def change(self, entity: str) -> CandidateChange:
        """The candidate change a source system publishes for this record version (its change id
        is derived from the source record and version, so it is the same in every run)."""
        attributes = {k: tuple(v) if isinstance(v, list) else v for k, v in self.attributes.items()}
        return CandidateChange(
            change_id=str(uuid.uuid5(_CHANGE_IDS, f"{self.source_ref}/{self.source_version}")),
            entity=entity,
            source=self.source,
            source_key=self.source_key,
            op=Op.UPSERT,
            source_version=self.source_version,
            occurred_at=self.occurred_at,
            attributes=attributes,
        )


@dataclass(frozen=True, slots=True)
class Lookalike:
    """An entity made to look like another one without being it (a true non-match)."""

    entity_id: str
    of: str
    kind: str  # "namesake" (same names) or "household" (same last name and address)


@dataclass(frozen=True, slots=True)
class Summary:
    """What was generated, in numbers."""

    people: int
    records: dict[str, int]  # distinct source records per source
    versions: dict[str, int]  # lines per source (every version of every record)
    true_pairs: int
    lookalikes: dict[str, int]  # by kind
    within_source_duplicates: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "people": self.people,
            "records": dict(self.records),
            "versions": dict(self.versions),
            "true_pairs": self.true_pairs,
            "lookalikes": dict(self.lookalikes),
            "within_source_duplicates": self.within_source_duplicates,
        }


@dataclass(frozen=True, slots=True)
class Generated:
    """Generated source records in publication order, with the ground truth.

    Attributes:
        records: every version of every source record, by ``occurred_at`` (later versions of a
            source record always come after its earlier ones).
        sources: the entity's sources in model order (one file each).
        attributes: the entity's attributes in model order (the CSV columns).
        lookalikes: the entities made to look like another one.
    """

    records: tuple[GeneratedRecord, ...]
    sources: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()
    lookalikes: tuple[Lookalike, ...] = ()

    def truth(self) -> dict[str, str]:
        """``"source:source_key"`` -> the id of the entity the record belongs to."""
        return {r.source_ref: r.entity_id for r in self.records}

    def true_pairs(self) -> int:
        """The number of pairs of source records that belong to the same entity."""
        sizes = Counter(self.truth().values())
        return sum(n * (n - 1) // 2 for n in sizes.values())

    def summary(self) -> Summary:
        """Records and versions per source, people, look-alikes and true pairs."""
        truth = self.truth()
        sources = self._sources()
        records = Counter(ref.split(":", 1)[0] for ref in truth)
        versions = Counter(r.source for r in self.records)
        per_source_entity = Counter((ref.split(":", 1)[0], e) for ref, e in truth.items())
        return Summary(
            people=len(set(truth.values())),
            records={s: records.get(s, 0) for s in sources},
            versions={s: versions.get(s, 0) for s in sources},
            true_pairs=self.true_pairs(),
            lookalikes=dict(Counter(item.kind for item in self.lookalikes)),
            within_source_duplicates=sum(n - 1 for n in per_source_entity.values()),
        )

    def _sources(self) -> tuple[str, ...]:
        return self.sources or tuple(dict.fromkeys(r.source for r in self.records))

    def write(self, out_dir: Path, entity: str) -> list[Path]:
        """Write one file per source and the truth; return their paths.

        Files are ``<entity>.<source>.jsonl``, the second source's as ``<entity>.<source>.csv``
        (lists as ``a|b``), and ``<entity>.truth.csv`` with columns source, source_key,
        entity_id. Every line holds source_key, source_version, occurred_at and the attributes,
        as ``mdhub publish`` reads them.
        """
        out_dir.mkdir(parents=True, exist_ok=True)
        by_source: dict[str, list[GeneratedRecord]] = {s: [] for s in self._sources()}
        for record in self.records:
            by_source.setdefault(record.source, []).append(record)
        paths: list[Path] = []
        for index, (source, records) in enumerate(by_source.items()):
            if index == 1:
                path = out_dir / f"{entity}.{source}.csv"
                _write_csv(path, records, self.attributes)
            else:
                path = out_dir / f"{entity}.{source}.jsonl"
                _write_jsonl(path, records)
            paths.append(path)
        truth_path = out_dir / f"{entity}.truth.csv"
        with truth_path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(("source", "source_key", "entity_id"))
            for ref, entity_id in self.truth().items():
                source, key = ref.split(":", 1)
                writer.writerow((source, key, entity_id))
        paths.append(truth_path)
        return paths


def _timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return _timestamp(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def _csv_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "|".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(_json_value(value))


def _write_jsonl(path: Path, records: Iterable[GeneratedRecord]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for r in records:
            line: dict[str, Any] = {
                "source_key": r.source_key,
                "source_version": r.source_version,
                "occurred_at": _timestamp(r.occurred_at),
            }
            line.update((k, _json_value(v)) for k, v in r.attributes.items())
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def _write_csv(path: Path, records: list[GeneratedRecord], attributes: tuple[str, ...]) -> None:
    present = {name for r in records for name in r.attributes}
    order = [a for a in attributes if a in present]
    order += sorted(present.difference(order))
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow((*_ENVELOPE, *order))
        for r in records:
            values = r.attributes
            writer.writerow(
                (
                    r.source_key,
                    r.source_version,
                    _timestamp(r.occurred_at),
                    *(_csv_value(values[a]) if a in values else "" for a in order),
                )
            )


# -- generation -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Draft:
    """A source record's versions before it has a key: (occurred_at, attributes) oldest first."""

    source: str
    entity_id: str
    versions: list[tuple[dt.datetime, dict[str, Any]]] = field(default_factory=list)

    def add(self, when: dt.datetime, attributes: dict[str, Any]) -> None:
        if self.versions and when <= self.versions[-1][0]:
            when = self.versions[-1][0] + dt.timedelta(seconds=1)
        self.versions.append((when, attributes))


class _World:
    """What both kinds of generation share: sources, times, missing values."""

    def __init__(self, entity: EntityModel, difficulty: Difficulty, rng: random.Random) -> None:
        self.entity = entity
        self.difficulty = difficulty
        self.rng = rng
        self.sources = tuple(entity.sources)
        self.values = ValueFactory(rng)
        self.lookalikes: list[Lookalike] = []

    def choose_sources(self) -> list[str]:
        rng = self.rng
        chosen = [
            s
            for i, s in enumerate(self.sources)
            if rng.random() < (PRESENCE[i] if i < len(PRESENCE) else 0.4)
        ]
        if not chosen:
            weights = [PRESENCE[i] if i < len(PRESENCE) else 0.4 for i in range(len(self.sources))]
            chosen = rng.choices(self.sources, weights)
        if len(chosen) > MAX_SOURCES:
            keep = set(rng.sample(range(len(chosen)), MAX_SOURCES))
            chosen = [s for i, s in enumerate(chosen) if i in keep]
        return chosen

    def duplicated(self, chosen: list[str]) -> bool:
        """Whether the entity gets a second record in the last source (the web shop)."""
        return (
            len(self.sources) > 0
            and self.sources[-1] in chosen
            and self.rng.random() < self.difficulty.within_source_duplicates
        )

    def first_time(self) -> dt.datetime:
        return START + dt.timedelta(seconds=self.rng.randrange(_FIRST_SPAN))

    def change_time(self) -> dt.datetime:
        return _CHANGE_FROM + dt.timedelta(seconds=self.rng.randrange(_CHANGE_SPAN))

    def heard_at(self, when: dt.datetime) -> dt.datetime:
        """When a source sends a change that happened at ``when``."""
        return when + dt.timedelta(seconds=self.rng.randrange(60, _LAG))

    def keep(self, wanted: Iterable[str]) -> tuple[str, ...]:
        """The wanted attributes minus the optional ones this record leaves empty."""
        missing = self.difficulty.missing
        attributes = self.entity.attributes
        return tuple(a for a in wanted if attributes[a].required or self.rng.random() >= missing)


class _PersonWorld(_World):
    """Customers: people with names, contact data and addresses."""

    def __init__(self, entity: EntityModel, difficulty: Difficulty, rng: random.Random) -> None:
        super().__init__(entity, difficulty, rng)
        self.factory = PersonFactory(rng, START)
        self.people: list[Person] = []  # originals a look-alike can be made of
        self.max_lengths = {name: spec.max_length for name, spec in entity.attributes.items()}
        self.others = [s for s in entity.attributes.values() if s.name not in PERSON_ATTRIBUTES]
        self.person_specs = [s for s in entity.attributes.values() if s.name in PERSON_ATTRIBUTES]

    def drafts(self, entity_id: str) -> list[_Draft]:
        rng, difficulty = self.rng, self.difficulty
        if self.people and rng.random() < difficulty.lookalikes:
            of = rng.choice(self.people)
            if rng.random() < 0.6:
                person = self.factory.namesake(entity_id, of)
                self.lookalikes.append(Lookalike(entity_id, of.entity_id, "namesake"))
            else:
                person = self.factory.household_member(entity_id, of)
                self.lookalikes.append(Lookalike(entity_id, of.entity_id, "household"))
        else:
            person = self.factory.person(entity_id)
            self.people.append(person)
        self._fill_extra(person)
        if rng.random() < difficulty.moved:
            self.factory.move(person, self.change_time())
        if rng.random() < difficulty.new_email:
            self.factory.change_email(person, self.change_time())
        chosen = self.choose_sources()
        drafts = [self._draft(person, source, duplicate=False) for source in chosen]
        if self.duplicated(chosen):
            drafts.append(self._draft(person, self.sources[-1], duplicate=True))
        return drafts

    def _fill_extra(self, person: Person) -> None:
        """Values for the model's other attributes, and ones the model's rules demand."""
        for spec in self.person_specs:
            value = person.extra.get(spec.name)
            if value is not None and check_attribute(spec, _typed(value)):
                person.extra[spec.name] = self.values.value(spec)
        for spec in self.others:
            if spec.required or self.rng.random() < 0.8:
                value = self.values.value(spec)
                if value is None:
                    if spec.required:
                        raise ValueError(f"cannot make a valid value for {spec.name}")
                    continue
                person.extra[spec.name] = value

    def _wanted(self, source: str) -> list[str]:
        rng = self.rng
        attributes = self.entity.attributes
        profile = _PROFILES.get(source)
        wanted: set[str] = set()
        if profile is None:
            wanted.update(a for a in PERSON_ATTRIBUTES if rng.random() < 0.6)
        else:
            core, sometimes = profile
            wanted.update(core)
            for group, chance in sometimes.items():
                if rng.random() < chance:
                    wanted.update(group)
            # any source may hold any attribute now and then
            usual = set(core).union(*sometimes)
            wanted.update(a for a in PERSON_ATTRIBUTES if a not in usual and rng.random() < _RARE)
        wanted.update(s.name for s in self.others if rng.random() < 0.5)
        return [a for a, spec in attributes.items() if a in wanted or spec.required]

    def _style(self, source: str, duplicate: bool) -> Style:
        rng, difficulty = self.rng, self.difficulty
        carried = self.keep(self._wanted(source))
        typos: dict[str, Typo] = {}
        if rng.random() < difficulty.typo:
            typos[pick(("first_name", "last_name"), rng.random())] = Typo.draw(rng)
        if rng.random() < difficulty.typo / 2:
            typos[pick(("street", "city"), rng.random())] = Typo.draw(rng)
        formats = {
            a: rng.random()
            for a in carried
            if a in _FORMATTED and rng.random() < difficulty.formatting
        }
        nickname = rng.random() if rng.random() < difficulty.nickname else None
        return Style(
            carried=carried,
            typos=typos,
            formats=formats,
            nickname=nickname,
            swapped=rng.random() < difficulty.swapped_names,
            alternate=duplicate and rng.random() < 0.5,
        )

    def _draft(self, person: Person, source: str, *, duplicate: bool) -> _Draft:
        rng = self.rng
        style = self._style(source, duplicate)
        draft = _Draft(source, person.entity_id)
        first = self.first_time()
        address = _at(person.addresses, first)
        email = _at(person.emails, first)
        holds_address = any(a in style.carried for a in _ADDRESS)
        holds_email = "email" in style.carried and not style.alternate
        events: list[tuple[dt.datetime, str, int]] = []
        for i, (when, _) in enumerate(person.addresses[1:], start=1):
            if when > first and holds_address and rng.random() < UPDATE_SHARE:
                events.append((self.heard_at(when), "address", i))
        for i, (when, _) in enumerate(person.emails[1:], start=1):
            if when > first and holds_email and rng.random() < UPDATE_SHARE:
                events.append((self.heard_at(when), "email", i))
        draft.add(first, self._render(person, style, address, email))
        for when, kind, i in sorted(events):
            if kind == "address":
                address = person.addresses[i][1]
            else:
                email = person.emails[i][1]
            draft.add(when, self._render(person, style, address, email))
        return draft

    def _render(self, person: Person, style: Style, address: Any, email: str) -> dict[str, Any]:
        return render_person(
            person, style, address, email, self.entity.default_region, self.max_lengths
        )


def _at(history: list[tuple[dt.datetime, Any]], when: dt.datetime) -> Any:
    """The value of a history (oldest first, the first from the start) at ``when``."""
    current = history[0][1]
    for since, value in history[1:]:
        if since > when:
            break
        current = value
    return current


def _typed(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class _GenericWorld(_World):
    """Any entity type: valid random values from the model, typos across sources."""

    def __init__(self, entity: EntityModel, difficulty: Difficulty, rng: random.Random) -> None:
        super().__init__(entity, difficulty, rng)
        self.specs = list(entity.attributes.values())
        self.free_text = {s.name for s in self.specs if is_free_text(s)}
        # a look-alike shares the descriptive texts of another entity, not its identifiers
        self.shared = [
            s.name
            for s in self.specs
            if s.name in self.free_text and not _looks_like_identifier(s.name)
        ]
        self.changeable = [s for s in self.specs if not s.required]
        self.originals: list[tuple[str, dict[str, Any]]] = []

    def drafts(self, entity_id: str) -> list[_Draft]:
        rng, difficulty = self.rng, self.difficulty
        facts = self._facts()
        if self.originals and self.shared and rng.random() < difficulty.lookalikes:
            of, other = rng.choice(self.originals)
            facts.update((name, other[name]) for name in self.shared if name in other)
            self.lookalikes.append(Lookalike(entity_id, of, "namesake"))
        else:
            self.originals.append((entity_id, facts))
        history: list[tuple[dt.datetime, str, Any]] = []
        present = [s for s in self.changeable if s.name in facts]
        if present and rng.random() < difficulty.moved:
            spec = rng.choice(present)
            history.append(
                (self.change_time(), spec.name, self.values.changed(spec, facts[spec.name]))
            )
        chosen = self.choose_sources()
        drafts = [self._draft(entity_id, facts, history, source) for source in chosen]
        if self.duplicated(chosen):
            drafts.append(self._draft(entity_id, facts, history, self.sources[-1]))
        return drafts

    def _facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        for spec in self.specs:
            if not spec.required and self.rng.random() >= 0.9:
                continue
            value = self.values.value(spec)
            if value is None:
                if spec.required:
                    raise ValueError(
                        f"cannot make a valid value for {self.entity.name}.{spec.name} "
                        f"(pattern {spec.pattern!r})"
                    )
                continue
            facts[spec.name] = value
        return facts

    def _style(self, facts: Mapping[str, Any]) -> Style:
        rng, difficulty = self.rng, self.difficulty
        carried = self.keep(
            a for a in facts if rng.random() < 0.9 or self.entity.attributes[a].required
        )
        texts = [a for a in carried if a in self.free_text]
        typos: dict[str, Typo] = {}
        if texts and rng.random() < difficulty.typo:
            typos[rng.choice(texts)] = Typo.draw(rng)
        formats = {a: rng.random() for a in texts if rng.random() < difficulty.formatting}
        return Style(carried=carried, typos=typos, formats=formats)

    def _draft(
        self,
        entity_id: str,
        facts: dict[str, Any],
        history: list[tuple[dt.datetime, str, Any]],
        source: str,
    ) -> _Draft:
        style = self._style(facts)
        draft = _Draft(source, entity_id)
        first = self.first_time()
        known = dict(facts)
        later: list[tuple[dt.datetime, str, Any]] = []
        for when, name, value in history:
            if when <= first:
                known[name] = value
            elif name in style.carried and self.rng.random() < UPDATE_SHARE:
                later.append((self.heard_at(when), name, value))
        draft.add(first, self._render(known, style))
        for when, name, value in sorted(later, key=lambda item: item[0]):
            known[name] = value
            draft.add(when, self._render(known, style))
        return draft

    def _render(self, known: Mapping[str, Any], style: Style) -> dict[str, Any]:
        out: dict[str, Any] = {}
        specs = self.entity.attributes
        for name in style.carried:
            value = known[name]
            if name in style.typos:
                spec = specs[name]
                value = misspell(
                    value,
                    style.typos[name],
                    min_length=spec.min_length or 2,
                    max_length=spec.max_length,
                )
            if name in style.formats:
                value = recase(value, style.formats[name])
            out[name] = list(value) if isinstance(value, list) else value
        return out


def _looks_like_identifier(name: str) -> bool:
    return any(word in name for word in ("sku", "code", "_id", "number", "ref", "ean", "gtin"))


def _is_people(entity: EntityModel) -> bool:
    attributes: Mapping[str, AttributeSpec] = entity.attributes
    return entity.name == "customer" and "first_name" in attributes and "last_name" in attributes


def generate(
    entity: EntityModel,
    people: int,
    difficulty: Difficulty,
    seed: int = 0,
    *,
    progress: Progress | None = None,
) -> Generated:
    """Generate source records of ``people`` entities, with the ground truth.

    Args:
        entity: the entity type (``customer`` makes people; other types get generic values).
        people: how many distinct entities (real people) to make; look-alikes count among them.
        difficulty: how much the source records vary.
        seed: the same seed gives the same records.
        progress: called with (entities made, entities to make) every thousand entities.

    Raises:
        ValueError: ``people`` is below 1, or the model's rules leave no valid value for a
            required attribute.
    """
    if people < 1:
        raise ValueError(f"people must be at least 1, got {people}")
    rng = random.Random(seed)
    world: _PersonWorld | _GenericWorld = (
        _PersonWorld(entity, difficulty, rng)
        if _is_people(entity)
        else _GenericWorld(entity, difficulty, rng)
    )
    drafts: list[_Draft] = []
    width = max(6, len(str(people)))
    for i in range(1, people + 1):
        drafts.extend(world.drafts(f"{entity.name}-{i:0{width}d}"))
        if progress is not None and (i % 1000 == 0 or i == people):
            progress(i, people)
    return Generated(
        records=_keyed(drafts, world.sources, rng),
        sources=world.sources,
        attributes=tuple(entity.attributes),
        lookalikes=tuple(world.lookalikes),
    )


def _keyed(
    drafts: list[_Draft], sources: tuple[str, ...], rng: random.Random
) -> tuple[GeneratedRecord, ...]:
    """Give every draft a source key (numbered in shuffled order) and list all versions."""
    records: list[GeneratedRecord] = []
    order = {s: i for i, s in enumerate(sources)}
    for source in sources:
        mine = [d for d in drafts if d.source == source]
        rng.shuffle(mine)
        prefix = source[:1].upper()
        width = max(6, len(str(len(mine))))
        for number, draft in enumerate(mine, start=1):
            key = f"{prefix}-{number:0{width}d}"
            for version, (when, attributes) in enumerate(draft.versions, start=1):
                records.append(
                    GeneratedRecord(source, key, draft.entity_id, version, when, attributes)
                )
    records.sort(key=lambda r: (r.occurred_at, order[r.source], r.source_key, r.source_version))
    return tuple(records)
