"""``mdhub evaluate``: matching quality and throughput through the live pipeline."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from mdhub.commands.context import Context, at_least
from mdhub.settings import Settings

if TYPE_CHECKING:
    from mdhub.ops.evaluate import ErrorAnalysis, ErrorPair, EvaluationReport

__all__ = ["errors_renderable", "register", "report_document", "report_table"]

_EPILOG = """\
what it does:
  1. generates the data set (as `mdhub generate` does) with the truth of who is who
  2. creates the topics of a fresh namespace <MDHUB_NAMESPACE>_eval_<8 hex> and starts an
     `mdhub worker` for it (a temporary data directory, a free metrics port)
  3. publishes every record version, in generated order, with an idempotent producer
  4. waits until the router and the worker have no lag; live throughput = messages / seconds
     from the first publish to the worker's last state write
  5. reads the golden topic (latest version per key, active records, their non-deleted
     sources) and scores the clusters pair by pair against the truth; pairs compared per
     record come from the worker's mdhub_resolve_comparisons_pairs_total
  6. feeds the same messages, in the router's order, through the resolve stage in-process:
     its clusters must equal the live ones; its feed loop gives the resolve stage's own
     throughput (new source records/s on one core, no Kafka)
  7. stops the worker (SIGTERM, SIGKILL after 30 s) and deletes the namespace's topics
     (unless --keep), also after an error or Ctrl-C

targets: F1 >= 0.97, precision >= 0.99, in-process resolve >= 2,000 new records/s.
Exit status: 0 when the measurement finished (met or not), 3 when Kafka cannot be reached,
1 on other errors.
"""


def register(sub: Any) -> None:
    """Add ``evaluate``."""
    from mdhub.testdata import Difficulty

    parser = sub.add_parser(
        "evaluate",
        help="measure matching quality and throughput through the live pipeline",
        description="Generate test data with a known truth, run it through a real worker in a "
        "namespace of its own, and report pairwise precision, recall and F1 of the golden "
        "records, pairs compared per record, end-to-end throughput, and the resolve stage's "
        "in-process throughput and agreement with the live result. Needs a running Kafka "
        "(`mdhub stack up`).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--entity", required=True, help="entity type, e.g. customer")
    parser.add_argument(
        "--people",
        type=at_least(1),
        default=2000,
        help="how many distinct entities to generate (default 2000)",
    )
    parser.add_argument(
        "--difficulty",
        default="default",
        metavar="{" + ",".join(Difficulty.PRESETS) + "}",
        help="how much the sources disagree (default: default)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the evaluation namespace's topics and the worker's files",
    )
    parser.add_argument(
        "--show-errors",
        type=at_least(0),
        default=0,
        metavar="N",
        help="analyse the false positives and negatives and show N of each with their "
        "attributes and scores",
    )
    parser.set_defaults(handler=run_evaluate)


class _ProgressObserver:
    """Draws each step of the evaluation as a progress bar on stderr."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def step(self, text: str, total: int | None = None) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        self.task = self.progress.add_task(escape(text), total=total)

    def advance(self, done: int, total: int | None = None) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=done, total=total)

    def note(self, text: str) -> None:
        self.progress.console.print(f"[green]•[/] {escape(text)}")


def run_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Run the evaluation and print the report."""
    from mdhub.ops.evaluate import EvaluationOptions, evaluate

    ctx = Context(settings)
    entity = ctx.entity(args.entity)
    options = EvaluationOptions(
        entity=entity.name,
        people=args.people,
        difficulty=args.difficulty,
        seed=args.seed,
        keep=args.keep,
        show_errors=args.show_errors,
    )
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=ctx.console,
        transient=True,
    ) as progress:
        result = evaluate(settings, ctx.model, ctx.catalog, options, _ProgressObserver(progress))
    if args.json:
        document = report_document(result.report)
        if result.errors is not None:
            document["errors"] = result.errors.to_dict()
        print(json.dumps(document))
        return 0
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=160)
    out.print(report_table(result.report))
    if result.errors is not None:
        out.print(errors_renderable(result.errors))
    return 0


# -- rendering -----------------------------------------------------------------------------------


def report_document(report: EvaluationReport) -> dict[str, Any]:
    """The JSON form of an :class:`~mdhub.ops.evaluate.EvaluationReport`."""
    return report.to_dict()


def _met(met: bool) -> str:
    return "[green]met[/]" if met else "[red]not met[/]"


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def report_table(report: EvaluationReport) -> Table:
    """The report as a table: figure, value, target, result."""
    live = report.live
    local = report.local
    quality = report.quality
    targets = {t.name: t for t in report.targets()}
    where = "live" if live is not None else "in-process"
    table = Table(
        "figure",
        "value",
        "target",
        "result",
        title=f"mdhub evaluate: {report.entity}, {report.difficulty} difficulty, seed {report.seed}"
        + (f" (namespace {report.namespace})" if report.namespace else ""),
    )
    for column in table.columns[1:3]:
        column.justify = "right"
    table.add_row("people (distinct entities)", f"{report.people:,}", "", "")
    table.add_row(
        "source records (messages)", f"{report.source_records:,} ({report.messages:,})", "", ""
    )
    table.add_row("true pairs", f"{report.true_pairs:,}", "", "")
    precision, f1 = targets["precision"], targets["F1"]
    table.add_row(
        f"precision ({where})",
        f"{quality.precision:.4f}",
        f">= {precision.threshold:g}",
        _met(precision.met),
    )
    table.add_row(f"recall ({where})", f"{quality.recall:.4f}", "", "")
    table.add_row(f"F1 ({where})", f"{quality.f1:.4f}", f">= {f1.threshold:g}", _met(f1.met))
    table.add_row(
        "TP / FP / FN pairs",
        f"{quality.true_positives:,} / {quality.false_positives:,} / {quality.false_negatives:,}",
        "",
        "",
    )
    if live is not None:
        per = live.comparisons_per_message
        table.add_row(
            "pairs compared per record (worker metric)",
            "-" if per is None else f"{per:.2f}",
            "",
            "",
        )
        table.add_row(
            "live throughput (messages/s)",
            f"{_rate(live.messages_per_second)} ({live.messages:,} in {live.seconds:.1f} s)",
            "",
            "",
        )
        table.add_row("  of which publishing", f"{live.publish_seconds:.1f} s", "", "")
    table.add_row(
        "pairs compared per record (in-process)", f"{local.comparisons_per_message:.2f}", "", ""
    )
    resolve = targets["resolve"]
    table.add_row(
        "in-process resolve (new records/s)",
        f"{_rate(local.new_per_second)} ({local.new_records:,} in {local.new_seconds:.2f} s)",
        f">= {resolve.threshold:,.0f}",
        _met(resolve.met),
    )
    table.add_row(
        "  all messages (per s, per CPU s)",
        f"{_rate(local.messages_per_second)}, {_rate(local.messages_per_cpu_second)}",
        "",
        "",
    )
    if report.clusters is not None:
        clusters = report.clusters
        if clusters.identical:
            text = "[green]yes[/] (same golden ids)"
        elif clusters.same_grouping:
            text = "[yellow]same grouping[/], other golden ids"
        else:
            text = f"[red]no[/] ({clusters.differing:,} records differ)"
        table.add_row("in-process clusters = live", text, "", "")
        if not clusters.same_grouping:
            lq = local.quality
            table.add_row(
                "in-process precision / recall / F1",
                f"{lq.precision:.4f} / {lq.recall:.4f} / {lq.f1:.4f}",
                "",
                "",
            )
    outcomes = ", ".join(f"{k} {v:,}" for k, v in local.outcomes.items() if v)
    table.add_row("outcomes (in-process)", outcomes, "", "")
    return table


def _counts(title: str, counts: Mapping[str, int], total: int | None = None) -> Table:
    table = Table("what", "pairs", title=title, title_justify="left")
    table.columns[1].justify = "right"
    for name, n in counts.items():
        share = f" ({n / total:.0%})" if total else ""
        table.add_row(escape(name), f"{n:,}{share}")
    return table


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "|".join(str(v) for v in value)
    return str(value)


def _pair_table(pair: ErrorPair) -> Table:
    score = pair.score
    if score is None:
        scored = "no score"
    else:
        scored = f"score {score.score:.1f} ({score.verdict})" + (
            f", rule {score.rule}" if score.rule else ""
        )
    keys = ", ".join(pair.shared_keys) if pair.shared_keys else "none"
    title = (
        f"{pair.kind}: {pair.a} ({pair.entity_a}) vs {pair.b} ({pair.entity_b}) - {pair.reason}; "
        f"{scored}; shared blocking keys: {keys}; golden {pair.golden_a or '-'} / "
        f"{pair.golden_b or '-'}"
    )
    table = Table(
        "attribute",
        escape(pair.a),
        escape(pair.b),
        "weight",
        title=escape(title),
        title_justify="left",
    )
    table.columns[3].justify = "right"
    weights = {c.attribute: c for c in score.contributions} if score is not None else {}
    names = list(dict.fromkeys([*pair.attributes_a, *pair.attributes_b]))
    for name in names:
        c = weights.get(name)
        weight = "" if c is None else f"{c.weight:+.1f}" + (f" {c.detail}" if c.detail else "")
        table.add_row(
            name,
            escape(_value(pair.attributes_a.get(name))),
            escape(_value(pair.attributes_b.get(name))),
            escape(weight),
        )
    return table


def errors_renderable(errors: ErrorAnalysis) -> RenderableType:
    """The false-positive/false-negative analysis: reasons, attributes, example pairs."""
    fp_total = sum(errors.fp_reasons.values())
    fn_total = sum(errors.fn_reasons.values())
    parts: list[RenderableType] = [
        Text(
            f"false positives: {errors.false_positives:,} pairs; false negatives: "
            f"{errors.false_negatives:,} pairs",
            style="bold",
        ),
        _counts("false positives by reason", errors.fp_reasons, fp_total),
        _counts("false negatives by reason", errors.fn_reasons, fn_total),
        _counts("false negatives by sources", errors.fn_sources, fn_total),
        _counts(
            "false negatives: attributes that counted against the pair",
            errors.fn_disagreeing,
            fn_total,
        ),
        _counts("false negatives: attributes one of the two lacks", errors.fn_missing, fn_total),
    ]
    parts.extend(_pair_table(p) for p in errors.fp_examples)
    parts.extend(_pair_table(p) for p in errors.fn_examples)
    return Group(*parts)
