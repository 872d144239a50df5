"""``mdhub evaluate``: the parts that need no Kafka (clusters, the in-process run, error analysis,
the report) and the command line."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from mdhub.cli import main
from mdhub.commands.evaluate import errors_renderable, report_document, report_table
from mdhub.domain.records import GoldenRecord, GoldenStatus, SourceRecord
from mdhub.modelfile import load_model
from mdhub.ops.evaluate import (
    TARGET_RESOLVE_RATE,
    EvaluationReport,
    LiveFigures,
    LocalRun,
    analyse_errors,
    clusters_from_goldens,
    compare_clusters,
    encode_records,
    eval_namespace,
    latest_by_key,
    parse_metric,
    run_in_process,
    synthetic_messages,
)
from mdhub.serde.catalog import SchemaCatalog
from mdhub.serde.mapping import golden_from_avro
from mdhub.stream.pipeline import EntityPipeline
from mdhub.testdata import Difficulty, Generated, Quality, generate, pairwise_quality

REPO = Path(__file__).resolve().parents[2]
HUB = load_model(REPO / "config" / "model.yaml")
CATALOG = SchemaCatalog.load(REPO / "schemas")
CUSTOMER = HUB.entity("customer")
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# broker times after the generated records' last change (mid-2026): none is "in the future"
NOW_MS = int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp() * 1000)
_BOX = re.compile(r"[\u2500-\u257f]")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def flat(text: str) -> str:
    return " ".join(_ANSI.sub("", text).split())


@pytest.fixture(scope="module")
def generated() -> Generated:
    return generate(CUSTOMER, 150, Difficulty.preset("hard"), seed=5)


@pytest.fixture(scope="module")
def local(generated: Generated) -> LocalRun:
    encoded = encode_records(CUSTOMER, CATALOG, generated.records)
    topic = EntityPipeline(CUSTOMER, CATALOG, "t").source_topic
    messages = synthetic_messages(topic, encoded, NOW_MS)
    return run_in_process(CUSTOMER, CATALOG, "t", messages, generated.truth())


def source(ref: str, deleted: bool = False) -> SourceRecord:
    name, key = ref.split(":")
    return SourceRecord(name, key, 1, T0, f"c-{ref}", {"first_name": "Ada"}, deleted=deleted)


def golden(
    golden_id: str,
    *refs: str,
    status: GoldenStatus = GoldenStatus.ACTIVE,
    deleted: tuple[str, ...] = (),
    merged_into: str | None = None,
) -> GoldenRecord:
    return GoldenRecord(
        golden_id=golden_id,
        entity="customer",
        version=1,
        status=status,
        attributes={},
        lineage={},
        sources=(*(source(r) for r in refs), *(source(r, deleted=True) for r in deleted)),
        created_at=T0,
        updated_at=T0,
        content_hash="h",
        merged_into=merged_into,
    )


# -- clusters from golden records -------------------------------------------------------------


def test_clusters_come_from_the_active_records_and_their_live_sources() -> None:
    goldens = [
        golden("g1", "crm:1", "erp:1", deleted=("webshop:9",)),
        golden("g2", "crm:2", status=GoldenStatus.MERGED, merged_into="g1"),
        golden("g3", deleted=("crm:3",), status=GoldenStatus.RETIRED),
        golden("g4", status=GoldenStatus.ERASED),
        golden("g5", "webshop:5"),
        None,  # a tombstone
    ]

    assert clusters_from_goldens(goldens) == {"crm:1": "g1", "erp:1": "g1", "webshop:5": "g5"}


def test_the_latest_value_per_key_wins_and_tombstones_delete() -> None:
    items = [(b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"b", None), (None, b"x"), (b"c", b"1")]

    assert latest_by_key(items) == {b"a": b"2", b"c": b"1"}


def test_the_golden_topic_as_written_gives_the_stage_s_clusters(local: LocalRun) -> None:
    # what the live run does with the golden topic, here with the stage's own outputs
    pipeline = local.stage.pipeline
    written = [(o.key, o.value) for o in local.stage.outputs if o.topic == pipeline.golden_topic]
    codec = CATALOG.codec("mdhub.customer.GoldenRecord")
    goldens = [golden_from_avro(codec.decode(v), CUSTOMER) for v in latest_by_key(written).values()]

    assert any(g.status is GoldenStatus.MERGED for g in goldens)  # merges happened on the way
    assert clusters_from_goldens(goldens) == local.clusters


def test_cluster_comparison_tells_ids_from_grouping() -> None:
    a = {"crm:1": "g1", "erp:1": "g1", "crm:2": "g2"}

    same = compare_clusters(a, dict(a))
    renamed = compare_clusters(a, {"crm:1": "x", "erp:1": "x", "crm:2": "y"})
    regrouped = compare_clusters(a, {"crm:1": "g1", "erp:1": "g2", "crm:2": "g2"})
    missing = compare_clusters(a, {"crm:1": "g1", "erp:1": "g1"})

    assert (same.identical, same.same_grouping, same.differing) == (True, True, 0)
    assert (renamed.identical, renamed.same_grouping, renamed.differing) == (False, True, 3)
    assert (regrouped.identical, regrouped.same_grouping, regrouped.differing) == (False, False, 1)
    assert (missing.identical, missing.same_grouping, missing.differing) == (False, False, 1)


# -- namespace and metrics --------------------------------------------------------------------


def test_the_eval_namespace_is_a_valid_namespace_of_its_own() -> None:
    first, second = eval_namespace("mdhub"), eval_namespace("mdhub")

    assert re.fullmatch(r"mdhub_eval_[0-9a-f]{8}", first)
    assert first != second
    assert eval_namespace("hub", "0a1b2c3d") == "hub_eval_0a1b2c3d"
    with pytest.raises(Exception, match="must match"):
        eval_namespace("mdhub", "Bad-Token")


def test_a_counter_is_read_from_the_metrics_text() -> None:
    text = (
        "# HELP mdhub_resolve_comparisons_pairs_total Candidate pairs scored.\n"
        "# TYPE mdhub_resolve_comparisons_pairs_total counter\n"
        'mdhub_resolve_comparisons_pairs_total{entity="customer"} 3046.0\n'
        'mdhub_resolve_comparisons_pairs_total{entity="product"} 0.0\n'
        "# TYPE mdhub_worker_assigned_partitions gauge\n"
        "mdhub_worker_assigned_partitions 8.0\n"
    )

    name = "mdhub_resolve_comparisons_pairs_total"
    assert parse_metric(text, name, {"entity": "customer"}) == 3046.0
    assert parse_metric(text, name) == 3046.0  # summed over labels
    assert parse_metric(text, "mdhub_worker_assigned_partitions") == 8.0
    assert parse_metric(text, name, {"entity": "order"}) is None


# -- the in-process run -----------------------------------------------------------------------


def test_the_in_process_run_gives_sane_figures(generated: Generated, local: LocalRun) -> None:
    truth = generated.truth()

    assert local.messages == len(generated.records)
    assert local.new_records == len(truth)  # every source record is new exactly once
    assert set(local.clusters) == set(truth)  # nothing rejected: every record has a cluster
    assert local.outcomes["rejected"] == 0
    assert sum(local.outcomes.values()) == local.messages
    assert local.quality == pairwise_quality(truth, local.clusters)
    assert local.quality.records == len(truth)
    # hard data: far from perfect, far from random
    assert 0.8 < local.quality.precision <= 1.0
    assert 0.4 < local.quality.recall < 1.0
    assert 0 < local.new_seconds <= local.seconds
    assert local.new_per_second > 0 and local.messages_per_second > 0
    assert local.comparisons_per_message > 0


def test_the_same_messages_in_the_same_order_give_the_same_clusters(
    generated: Generated, local: LocalRun
) -> None:
    encoded = encode_records(CUSTOMER, CATALOG, generated.records)
    topic = EntityPipeline(CUSTOMER, CATALOG, "t").source_topic
    later = synthetic_messages(topic, encoded, NOW_MS + 3_600_000)  # other broker times
    again = run_in_process(CUSTOMER, CATALOG, "t", later, generated.truth())

    assert compare_clusters(again.clusters, local.clusters).identical
    assert again.comparisons == local.comparisons


# -- false positives and negatives ------------------------------------------------------------


def test_error_analysis_accounts_for_every_wrong_pair(
    generated: Generated, local: LocalRun
) -> None:
    errors = analyse_errors(generated, local.clusters, local.stage, CUSTOMER, limit=3)
    quality = local.quality

    assert errors.false_positives == quality.false_positives
    assert errors.false_negatives == quality.false_negatives
    assert sum(errors.fp_reasons.values()) == quality.false_positives
    assert sum(errors.fn_reasons.values()) == quality.false_negatives
    assert sum(errors.fn_sources.values()) == quality.false_negatives
    assert len(errors.fn_examples) == min(3, quality.false_negatives)
    truth = generated.truth()
    for pair in errors.fn_examples:
        assert truth[pair.a] == truth[pair.b] and pair.golden_a != pair.golden_b
        assert pair.attributes_a and pair.attributes_b  # from the generated data
        assert pair.score is not None
    for pair in errors.fp_examples:
        assert truth[pair.a] != truth[pair.b] and pair.golden_a == pair.golden_b
    json.dumps(errors.to_dict())


def test_error_analysis_of_the_truth_finds_nothing(generated: Generated, local: LocalRun) -> None:
    errors = analyse_errors(generated, generated.truth(), local.stage, CUSTOMER)

    assert (errors.false_positives, errors.false_negatives) == (0, 0)
    assert errors.fp_examples == errors.fn_examples == ()


def test_one_big_cluster_makes_only_false_positives(generated: Generated, local: LocalRun) -> None:
    everything = dict.fromkeys(generated.truth(), "g")

    errors = analyse_errors(generated, everything, local.stage, CUSTOMER, limit=2)

    assert errors.false_negatives == 0
    assert sum(errors.fp_reasons.values()) == errors.false_positives > 0
    assert all(reason.endswith(("direct match", "transitive")) for reason in errors.fp_reasons)


# -- the report -------------------------------------------------------------------------------


def report_of(local: LocalRun, live_quality: Quality | None = None) -> EvaluationReport:
    live = LiveFigures(
        quality=live_quality or local.quality,
        publish_seconds=0.4,
        seconds=5.0,
        messages=local.messages,
        comparisons=float(local.comparisons),
        goldens=100,
    )
    return EvaluationReport(
        entity="customer",
        difficulty="hard",
        seed=5,
        people=150,
        source_records=len(local.clusters),
        messages=local.messages,
        true_pairs=120,
        local=local,
        live=live,
        clusters=compare_clusters(local.clusters, local.clusters),
        namespace="mdhub_eval_0a1b2c3d",
    )


def render(renderable: object) -> str:
    console = Console(record=True, width=220, highlight=False)
    console.print(renderable)
    return flat(_BOX.sub(" ", console.export_text()))


def test_targets_are_met_or_not(local: LocalRun) -> None:
    perfect = Quality(1.0, 1.0, 1.0, 10, 0, 0, 8)
    weak = Quality(0.98, 0.5, 0.66, 5, 1, 5, 8)

    def report(quality: Quality, rate: float) -> EvaluationReport:
        run = dataclasses.replace(local, quality=quality, new_records=8, new_seconds=8 / rate)
        return dataclasses.replace(report_of(run), live=None)  # the in-process quality counts

    good = {t.name: t.met for t in report(perfect, TARGET_RESOLVE_RATE).targets()}
    bad = {t.name: t.met for t in report(weak, TARGET_RESOLVE_RATE / 2).targets()}

    assert good == {"F1": True, "precision": True, "resolve": True}
    assert bad == {"F1": False, "precision": False, "resolve": False}


def test_the_table_names_every_figure_and_target(local: LocalRun) -> None:
    text = render(report_table(report_of(local)))
    q = local.quality

    for figure in (
        "people (distinct entities) 150",
        f"precision (live) {q.precision:.4f} >= 0.99",
        f"recall (live) {q.recall:.4f}",
        f"F1 (live) {q.f1:.4f} >= 0.97",
        f"TP / FP / FN pairs {q.true_positives:,} / {q.false_positives:,} / {q.false_negatives:,}",
        "pairs compared per record (worker metric)",
        f"live throughput (messages/s) {local.messages / 5:,.0f} ({local.messages:,} in 5.0 s)",
        "in-process resolve (new records/s)",
        ">= 2,000",
        "in-process clusters = live yes (same golden ids)",
        "mdhub_eval_0a1b2c3d",
    ):
        assert figure in text
    assert "met" in text


def test_the_table_shows_in_process_quality_when_the_clusters_differ(local: LocalRun) -> None:
    report = dataclasses.replace(
        report_of(local), clusters=compare_clusters(local.clusters, {"crm:x": "g"})
    )

    text = render(report_table(report))

    assert "in-process clusters = live no (" in text
    assert "in-process precision / recall / F1" in text


def test_the_json_document_holds_figures_and_targets(local: LocalRun) -> None:
    document = json.loads(json.dumps(report_document(report_of(local))))

    assert document["people"] == 150
    assert document["quality"]["f1"] == pytest.approx(local.quality.f1)
    assert document["live"]["messages_per_second"] == pytest.approx(local.messages / 5.0)
    assert document["live"]["comparisons_per_message"] == pytest.approx(
        local.comparisons / local.messages
    )
    assert document["in_process"]["new_records"] == local.new_records
    assert document["clusters"] == {
        "identical": True,
        "same_grouping": True,
        "differing_records": 0,
    }
    assert [t["name"] for t in document["targets"]] == ["F1", "precision", "resolve"]
    assert all(isinstance(t["met"], bool) for t in document["targets"])


def test_the_error_analysis_renders_reasons_and_pairs(
    generated: Generated, local: LocalRun
) -> None:
    errors = analyse_errors(generated, local.clusters, local.stage, CUSTOMER, limit=1)

    text = render(errors_renderable(errors))

    assert f"false negatives: {errors.false_negatives:,} pairs" in text
    assert "false negatives by reason" in text
    pair = errors.fn_examples[0]
    assert f"FN: {pair.a} ({pair.entity_a}) vs {pair.b} ({pair.entity_b})" in text
    assert "first_name" in text and "weight" in text


# -- the command line -------------------------------------------------------------------------


@pytest.fixture
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("COLUMNS", "200")


@pytest.mark.usefixtures("_repo_root")
def test_help_describes_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--help"])

    assert info.value.code == 0
    out = flat(capsys.readouterr().out)
    for option in ("--entity", "--people", "--difficulty", "--seed", "--json", "--keep"):
        assert option in out
    assert "--show-errors N" in out
    assert "F1 >= 0.97, precision >= 0.99, in-process resolve >= 2,000 new records/s" in out


@pytest.mark.usefixtures("_repo_root")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--people", "0"], "must be at least 1"),
        (["--show-errors", "-1"], "must be at least 0"),
        ([], "the following arguments are required: --entity"),
    ],
)
def test_bad_arguments_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    entity = [] if not args else ["--entity", "customer"]
    with pytest.raises(SystemExit) as info:
        main(["evaluate", *entity, *args])

    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.usefixtures("_repo_root")
def test_an_unknown_entity_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--entity", "order"]) == 2
    assert "order" in flat(capsys.readouterr().err)


@pytest.mark.usefixtures("_repo_root")
def test_without_kafka_it_is_a_retryable_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # nothing listens on port 1 of the loopback: the connection is refused at once
    monkeypatch.setenv("MDHUB_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("MDHUB_KAFKA__REQUEST_TIMEOUT_S", "1")

    code = main(["evaluate", "--entity", "customer", "--people", "5"])

    err = flat(capsys.readouterr().err)
    assert code == 3, err
    assert "unavailable: Kafka at 127.0.0.1:1 is not reachable" in err
    assert "This is retryable" in err
