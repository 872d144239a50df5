"""``mdhub generate``: realistic test data that the hub accepts, with a ground truth that adds up."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import itertools
import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import pytest

from mdhub.cli import main
from mdhub.domain.model import EntityModel, parse_model
from mdhub.domain.records import CandidateChange
from mdhub.domain.standardize import apply_standardizers
from mdhub.domain.validation import standardize, validate_change
from mdhub.modelfile import load_model
from mdhub.publishing import parse_records, read_file
from mdhub.serde.catalog import SchemaCatalog
from mdhub.stream.pipeline import EntityPipeline, Message
from mdhub.testdata import (
    Difficulty,
    Generated,
    GeneratedRecord,
    generate,
    pairwise_quality,
)
from mdhub.testdata.generic import sample_pattern
from mdhub.testdata.noise import Typo, TypoKind, misspell

REPO = Path(__file__).resolve().parents[2]
HUB = load_model(REPO / "config" / "model.yaml")
CATALOG = SchemaCatalog.load(REPO / "schemas")
CUSTOMER: EntityModel = HUB.entity("customer")
PRODUCT: EntityModel = HUB.entity("product")
NOW = dt.datetime.now(dt.UTC)
QUIET = Difficulty(
    typo=0.0,
    nickname=0.0,
    swapped_names=0.0,
    missing=0.0,
    formatting=0.0,
    moved=0.0,
    new_email=0.0,
    lookalikes=0.5,
    within_source_duplicates=0.0,
)


@pytest.fixture(scope="module")
def hard_customers() -> Generated:
    return generate(CUSTOMER, 1500, Difficulty.preset("hard"), seed=7)


@pytest.fixture(scope="module")
def quiet_customers() -> Generated:
    return generate(CUSTOMER, 600, QUIET, seed=3)


def rejections(entity: EntityModel, changes: Iterable[CandidateChange]) -> Counter[str]:
    """What the worker's validate stage says, as pipeline.parse() does: code and message."""
    found: Counter[str] = Counter()
    for change in changes:
        standardized, reasons = apply_standardizers(entity, standardize(change))
        reasons.extend(validate_change(entity, standardized))
        found.update(f"{r.code}: {r.message}" for r in reasons)
    return found


def refs_by_entity(generated: Generated) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for ref, entity_id in generated.truth().items():
        out[entity_id].append(ref)
    return out


# -- difficulty -----------------------------------------------------------------------------------


def test_presets_get_harder() -> None:
    easy, default, hard = (Difficulty.preset(n) for n in ("easy", "default", "hard"))

    for name, value in default.to_dict().items():
        assert easy.to_dict()[name] <= value <= hard.to_dict()[name], name
    assert hard.typo > easy.typo
    assert Difficulty.PRESETS == ("easy", "default", "hard")


def test_an_unknown_preset_names_the_presets() -> None:
    with pytest.raises(
        ValueError, match="unknown difficulty 'brutal'; accepted: easy, default, hard"
    ):
        Difficulty.preset("brutal")


def test_probabilities_must_be_probabilities() -> None:
    with pytest.raises(ValueError, match=r"typo=1\.5"):
        dataclasses.replace(QUIET, typo=1.5)


# -- determinism and the truth ------------------------------------------------------------------


def test_the_same_seed_gives_the_same_records() -> None:
    first = generate(CUSTOMER, 300, Difficulty.preset("default"), seed=11)
    again = generate(CUSTOMER, 300, Difficulty.preset("default"), seed=11)
    other = generate(CUSTOMER, 300, Difficulty.preset("default"), seed=12)

    assert first == again
    assert first.records != other.records


def test_the_truth_covers_every_record(hard_customers: Generated) -> None:
    truth = hard_customers.truth()

    assert {r.source_ref for r in hard_customers.records} == set(truth)
    assert all(truth[r.source_ref] == r.entity_id for r in hard_customers.records)
    assert len(set(truth.values())) == 1500


def test_source_keys_look_like_source_keys(hard_customers: Generated) -> None:
    prefixes = {"crm": "C", "erp": "E", "webshop": "W"}
    for record in hard_customers.records:
        assert re.fullmatch(rf"{prefixes[record.source]}-\d{{6}}", record.source_key)
    # numbered in shuffled order: the keys do not follow the entities
    crm = sorted((r.entity_id, r.source_key) for r in hard_customers.records if r.source == "crm")
    keys = [key for _, key in crm]
    assert keys != sorted(keys)


def test_every_person_is_in_one_to_three_sources(hard_customers: Generated) -> None:
    sources: dict[str, set[str]] = defaultdict(set)
    for ref, entity_id in hard_customers.truth().items():
        sources[entity_id].add(ref.split(":", 1)[0])

    counts = Counter(len(s) for s in sources.values())
    assert set(counts) == {1, 2, 3}
    share = Counter(s for found in sources.values() for s in found)
    # crm 70%, erp 60%, webshop 50% (plus those who would have been in none)
    assert share["crm"] > share["erp"] > share["webshop"] > 0.4 * 1500


def test_the_true_pair_count_is_the_pairs_of_records_of_one_entity(
    hard_customers: Generated,
) -> None:
    brute = sum(
        1
        for refs in refs_by_entity(hard_customers).values()
        for _ in itertools.combinations(refs, 2)
    )

    assert hard_customers.true_pairs() == brute
    assert hard_customers.summary().true_pairs == brute
    assert pairwise_quality(hard_customers.truth(), hard_customers.truth()).true_positives == brute


def test_versions_increase_in_publication_order(hard_customers: Generated) -> None:
    records = hard_customers.records
    assert [r.occurred_at for r in records] == sorted(r.occurred_at for r in records)
    seen: dict[str, tuple[int, dt.datetime]] = {}
    for record in records:
        before = seen.get(record.source_ref)
        if before is None:
            assert record.source_version == 1
        else:
            assert record.source_version == before[0] + 1
            assert record.occurred_at > before[1]
        seen[record.source_ref] = (record.source_version, record.occurred_at)
    assert max(r.occurred_at for r in records) < NOW
    assert all(r.occurred_at.tzinfo is not None for r in records)


def test_summary_counts_records_versions_and_duplicates(hard_customers: Generated) -> None:
    summary = hard_customers.summary()

    assert summary.people == 1500
    assert sum(summary.versions.values()) == len(hard_customers.records)
    assert sum(summary.records.values()) == len(hard_customers.truth())
    assert sum(summary.versions.values()) > sum(summary.records.values())  # updates happened
    assert summary.within_source_duplicates > 0
    per_source = Counter(
        (ref.split(":", 1)[0], entity) for ref, entity in hard_customers.truth().items()
    )
    assert {source for (source, _), n in per_source.items() if n > 1} == {"webshop"}
    assert sum(summary.lookalikes.values()) == len(hard_customers.lookalikes)
    assert json.dumps(summary.to_dict())


# -- the hub accepts it -------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["easy", "default", "hard"])
@pytest.mark.parametrize("entity", [CUSTOMER, PRODUCT], ids=lambda e: e.name)
def test_every_generated_value_passes_the_hubs_validation(entity: EntityModel, preset: str) -> None:
    generated = generate(entity, 2000, Difficulty.preset(preset), seed=1)

    assert len(generated.records) >= 2500
    assert rejections(entity, (r.change(entity.name) for r in generated.records)) == Counter()


def test_required_attributes_are_always_there(hard_customers: Generated) -> None:
    required = [n for n, s in CUSTOMER.attributes.items() if s.required]
    assert required == ["first_name", "last_name"]
    for record in hard_customers.records:
        assert all(record.attributes.get(name, "").strip() for name in required)


def test_national_phone_forms_appear_where_the_hub_can_read_them() -> None:
    german_hub = dataclasses.replace(CUSTOMER, default_region="DE")
    generated = generate(german_hub, 2000, Difficulty.preset("hard"), seed=5)
    phones = [r.attributes["phone"] for r in generated.records if "phone" in r.attributes]

    assert (
        rejections(german_hub, (r.change(german_hub.name) for r in generated.records)) == Counter()
    )
    assert any(p.startswith("00") for p in phones)
    assert any(p.startswith("0") and not p.startswith("00") for p in phones)
    # without a default region, every phone is written in international form
    plain = generate(CUSTOMER, 2000, Difficulty.preset("hard"), seed=5)
    assert all(
        r.attributes["phone"].strip().startswith("+")
        for r in plain.records
        if "phone" in r.attributes
    )


def test_files_are_accepted_by_the_publish_check_and_the_workers_validation(
    hard_customers: Generated, tmp_path: Path
) -> None:
    paths = hard_customers.write(tmp_path, "customer")

    assert [p.name for p in paths] == [
        "customer.crm.jsonl",
        "customer.erp.csv",
        "customer.webshop.jsonl",
        "customer.truth.csv",
    ]
    codec = CATALOG.codec("mdhub.customer.CandidateChange")
    pipeline = EntityPipeline(CUSTOMER, CATALOG, "test")
    lines = 0
    for path in paths[:-1]:
        source = path.name.split(".")[1]
        parsed = parse_records(CUSTOMER, source, read_file(path), codec)
        assert parsed.errors == [], parsed.errors[:5]
        assert len(parsed.changes) == len(path.read_text(encoding="utf-8").splitlines()) - (
            1 if path.suffix == ".csv" else 0
        )
        lines += len(parsed.changes)
        for offset, (_, change, value) in enumerate(parsed.changes):
            msg = Message(
                "src", 0, offset, int(NOW.timestamp() * 1000), change.source_ref.encode(), value
            )
            # the worker's validate stage: decode, key check, standardize, every rule
            parsed_change = pipeline.parse(msg)
            assert isinstance(parsed_change, CandidateChange), parsed_change.reasons
    assert lines == len(hard_customers.records)


def test_files_hold_the_records_as_generated(hard_customers: Generated, tmp_path: Path) -> None:
    crm, erp, _, truth_path = hard_customers.write(tmp_path, "customer")
    first = json.loads(crm.read_text(encoding="utf-8").splitlines()[0])
    record = next(r for r in hard_customers.records if r.source == "crm")

    assert list(first)[:3] == ["source_key", "source_version", "occurred_at"]
    assert first["source_key"] == record.source_key
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["occurred_at"])
    with erp.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    assert header[:3] == ["source_key", "source_version", "occurred_at"]
    assert "lifetime_value" in header and "street" in header
    with truth_path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["source", "source_key", "entity_id"]
    assert {f"{r['source']}:{r['source_key']}": r["entity_id"] for r in rows} == (
        hard_customers.truth()
    )


def test_csv_lists_are_written_as_pipes(tmp_path: Path) -> None:
    generated = generate(CUSTOMER, 400, Difficulty.preset("default"), seed=2)
    records = [
        r for r in generated.records if r.source == "erp" and len(r.attributes.get("tags", ())) > 1
    ]
    assert records, "some ERP records carry several tags"
    _, erp, *_ = generated.write(tmp_path, "customer")
    parsed = parse_records(
        CUSTOMER, "erp", read_file(erp), CATALOG.codec("mdhub.customer.CandidateChange")
    )
    by_key = {(c.source_key, c.source_version): c for _, c, _ in parsed.changes}
    for record in records:
        assert by_key[(record.source_key, record.source_version)].attributes["tags"] == tuple(
            record.attributes["tags"]
        )


# -- variations -----------------------------------------------------------------------------------


def test_lookalikes_are_different_people_with_the_same_names(quiet_customers: Generated) -> None:
    by_entity: dict[str, list[GeneratedRecord]] = defaultdict(list)
    for record in quiet_customers.records:
        by_entity[record.entity_id].append(record)

    def values(entity_id: str, name: str) -> set[object]:
        return {r.attributes[name] for r in by_entity[entity_id] if name in r.attributes}

    kinds = Counter(item.kind for item in quiet_customers.lookalikes)
    assert kinds["namesake"] > 20 and kinds["household"] > 10
    for item in quiet_customers.lookalikes:
        assert item.entity_id != item.of
        assert values(item.entity_id, "last_name") == values(item.of, "last_name")
        assert not values(item.entity_id, "email") & values(item.of, "email")
        assert not values(item.entity_id, "birth_date") & values(item.of, "birth_date")
        if item.kind == "namesake":
            assert values(item.entity_id, "first_name") == values(item.of, "first_name")
        else:
            assert not values(item.entity_id, "first_name") & values(item.of, "first_name")
            streets = values(item.entity_id, "street"), values(item.of, "street")
            if all(streets):
                assert streets[0] == streets[1]


def test_quiet_sources_agree_on_a_persons_values(quiet_customers: Generated) -> None:
    for refs in refs_by_entity(quiet_customers).values():
        records = [r for r in quiet_customers.records if r.source_ref in refs]
        for name in ("first_name", "last_name", "email", "phone", "birth_date", "country"):
            assert len({str(r.attributes[name]) for r in records if name in r.attributes}) <= 1


def test_hard_data_varies_as_asked(hard_customers: Generated) -> None:
    records = hard_customers.records
    phones = [r.attributes["phone"] for r in records if "phone" in r.attributes]
    countries = Counter(r.attributes["country"] for r in records if "country" in r.attributes)
    streets = [r.attributes["street"] for r in records if "street" in r.attributes]

    assert any(re.fullmatch(r"\+\d+", p) for p in phones)  # E.164
    assert any(re.fullmatch(r"\+1 \d{3}-\d{3}-\d{4}", p) for p in phones)
    assert any("(0)" in p for p in phones)
    assert {"Germany", "DEU", "de", "United States", "USA"} <= set(countries)
    assert any(s.endswith(" St.") or " Ave." in s or "str. " in s for s in streets)
    assert any(r.attributes["first_name"].isupper() for r in records)
    assert any(
        r.attributes["first_name"] in ("Bob", "Bill", "Mike", "Jim", "Liz", "Kate") for r in records
    )
    # moves and new e-mail addresses: later versions carry other values
    versions: dict[str, list[GeneratedRecord]] = defaultdict(list)
    for record in records:
        versions[record.source_ref].append(record)
    changed = Counter(
        name
        for history in versions.values()
        for old, new in itertools.pairwise(history)
        for name in ("street", "email")
        if name in old.attributes and old.attributes[name] != new.attributes.get(name)
    )
    assert changed["street"] > 10 and changed["email"] > 10


def test_names_differ_across_sources_in_hard_data(hard_customers: Generated) -> None:
    differing = 0
    for refs in refs_by_entity(hard_customers).values():
        names = {
            (r.attributes["first_name"].strip().lower(), r.attributes["last_name"].strip().lower())
            for r in hard_customers.records
            if r.source_ref in refs
        }
        differing += len(names) > 1
    assert differing > 100


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (TypoKind.TRANSPOSITION, "Rboert"),
        (TypoKind.DELETION, "Rbert"),
        (TypoKind.SUBSTITUTION, "Ribert"),
        (TypoKind.INSERTION, "Roobert"),
    ],
)
def test_a_typo_is_one_edit(kind: TypoKind, expected: str) -> None:
    assert misspell("Robert", Typo(kind, 0.2, 0.1)) == expected


def test_a_typo_keeps_the_word_capitalised() -> None:
    assert misspell("Robert", Typo(TypoKind.TRANSPOSITION, 0.0, 0.0)) == "Orbert"
    assert misspell("Robert", Typo(TypoKind.DELETION, 0.0, 0.0)) == "Obert"
    assert misspell("Al", Typo(TypoKind.DELETION, 0.0, 0.0)) == "Al"  # too short to misspell


# -- other entity types -------------------------------------------------------------------------


def test_products_are_generated_from_the_model() -> None:
    generated = generate(PRODUCT, 500, Difficulty.preset("default"), seed=4)

    assert {r.source for r in generated.records} == {"erp", "webshop"}
    assert all({"sku", "name"} <= set(r.attributes) for r in generated.records)
    assert all(
        re.fullmatch(r"[A-Z]{3}", r.attributes["currency"])
        for r in generated.records
        if "currency" in r.attributes
    )
    assert generated.true_pairs() > 50


def test_any_entity_type_gets_valid_values_from_its_rules() -> None:
    model = parse_model(
        {
            "model_version": 1,
            "entities": {
                "shipment": {
                    "attributes": {
                        "tracking": {
                            "type": "string",
                            "required": True,
                            "pattern": r"[A-Z]{2}\d{9}DE",
                        },
                        "status": {"type": "string", "enum": ["open", "sent", "lost"]},
                        "zip": {"type": "string", "pattern": r"\d{5}(-\d{4})?"},
                        "pieces": {"type": "integer", "minimum": 1, "maximum": 3},
                        "weight": {"type": "number", "minimum": 0.5, "maximum": 2},
                        "insured": {"type": "boolean"},
                        "shipped": {"type": "date", "minimum": 2020, "maximum": 2021},
                        "scanned_at": {"type": "timestamp"},
                        "labels": {"type": "string_list", "max_length": 2},
                        "note": {"type": "string", "min_length": 5, "max_length": 12},
                        "contact": {"type": "string", "standardize": "email"},
                        "hotline": {"type": "string", "standardize": "phone_e164"},
                        "origin": {
                            "type": "string",
                            "standardize": "country_iso2",
                            "pattern": "[A-Z]{2}",
                        },
                    },
                    "sources": {
                        "carrier": {"trust": 50},
                        "shop": {"trust": 40},
                        "hub": {"trust": 10},
                    },
                }
            },
        }
    )
    entity = model.entity("shipment")
    generated = generate(entity, 800, Difficulty.preset("hard"), seed=9)

    assert rejections(entity, (r.change(entity.name) for r in generated.records)) == Counter()
    seen = {name for r in generated.records for name in r.attributes}
    assert seen == set(entity.attributes)


@pytest.mark.parametrize(
    "pattern",
    [r"[A-Z]{3}", r"[^@\s]+@[^@\s]+\.[^@\s]+", r"\d{5}(-\d{4})?", r"(ab|cd)+x?", r"[a-f0-9]{8}"],
)
def test_simple_patterns_are_sampled(pattern: str) -> None:
    import random

    rng = random.Random(0)
    for _ in range(50):
        sample = sample_pattern(pattern, rng)
        assert sample is not None and re.fullmatch(pattern, sample)


def test_unsupported_patterns_give_no_sample() -> None:
    import random

    assert sample_pattern(r"(?=a)b", random.Random(0)) is None
    assert sample_pattern(r"(a)\1", random.Random(0)) is None


def test_ten_thousand_people_are_generated() -> None:
    started = time.perf_counter()
    generated = generate(CUSTOMER, 10_000, Difficulty.preset("default"))
    print(f"10,000 people in {time.perf_counter() - started:.1f} s")  # a figure, not a check

    assert generated.summary().people == 10_000


def test_progress_is_reported() -> None:
    calls: list[tuple[int, int]] = []
    generate(CUSTOMER, 2500, Difficulty.preset("easy"), progress=lambda d, t: calls.append((d, t)))

    assert calls == [(1000, 2500), (2000, 2500), (2500, 2500)]


def test_at_least_one_person() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate(CUSTOMER, 0, Difficulty.preset("easy"))


# -- the command ------------------------------------------------------------------------------------


@pytest.fixture
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("COLUMNS", "200")


def flat(text: str) -> str:
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())


@pytest.mark.usefixtures("_repo_root")
def test_the_command_writes_files_and_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gen"
    code = main(
        ["generate", "--entity", "customer", "--people", "300", "--seed", "5", "--out", str(out)]
    )

    err = flat(capsys.readouterr().err)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "customer.crm.jsonl",
        "customer.erp.csv",
        "customer.truth.csv",
        "customer.webshop.jsonl",
    ]
    expected = generate(CUSTOMER, 300, Difficulty.preset("default"), seed=5).summary()
    assert "customer: default difficulty, seed 5" in err
    for source, count in expected.records.items():
        assert re.search(rf"│ {source} │ \S+ │ {count} │ {expected.versions[source]} │", err), (
            source
        )
    assert "300 distinct customer entities" in err
    assert f"expected true pairs (two source records of one entity): {expected.true_pairs}" in err
    assert "publish with: mdhub publish --entity customer --source crm" in err


@pytest.mark.usefixtures("_repo_root")
def test_the_command_makes_products_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "generate",
            "--entity",
            "product",
            "--people",
            "50",
            "--difficulty",
            "hard",
            "--out",
            str(tmp_path),
        ]
    )

    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "product.erp.jsonl").is_file()
    assert (tmp_path / "product.webshop.csv").is_file()


@pytest.mark.usefixtures("_repo_root")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--entity", "vendor"],
            "unknown entity type 'vendor'; the model declares: customer, product",
        ),
        (
            ["--entity", "customer", "--difficulty", "brutal"],
            "unknown difficulty 'brutal'; accepted: easy, default, hard",
        ),
        (["--entity", "customer", "--people", "0"], "--people must be at least 1, got 0"),
    ],
)
def test_the_command_names_what_it_accepts(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["generate", *argv, "--out", str(tmp_path)])

    err = flat(capsys.readouterr().err)
    assert code == 2
    assert f"configuration error: {message}" in err
    assert not any(tmp_path.iterdir())
