"""``mdhub generate``: realistic source files of an entity type, with the truth of who is who."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mdhub.commands.context import Context
from mdhub.errors import ConfigError
from mdhub.settings import Settings

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add ``generate``."""
    from mdhub.testdata import Difficulty

    presets = ", ".join(Difficulty.PRESETS)
    parser = sub.add_parser(
        "generate",
        help="write realistic test files of an entity type, with the ground truth",
        description="Generate source files of an entity type for `mdhub publish`, with the truth "
        "of which source records are the same entity. For customer: people with names, birth "
        "dates, e-mails, phones and addresses in the US, GB, DE, FR and NL, each in one to three "
        "sources, with typos, nicknames, swapped names, missing values, formatting differences, "
        "moves and new e-mail addresses over time, look-alike people who are not the same, and "
        "duplicates within the web shop; other entity types get valid values from the model. "
        "Writes <entity>.<source>.jsonl (the second source as .csv) and <entity>.truth.csv "
        "(source, source_key, entity_id). The same seed gives the same files.",
    )
    parser.add_argument("--entity", required=True, help="entity type, e.g. customer or product")
    parser.add_argument(
        "--people",
        type=int,
        default=1000,
        help="how many distinct entities (real people) to make (default 1000)",
    )
    parser.add_argument(
        "--difficulty",
        default="default",
        metavar="{" + ",".join(Difficulty.PRESETS) + "}",
        help=f"how much the sources disagree: {presets} (default: default)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("generated"),
        help="directory to write the files to (default ./generated)",
    )
    parser.set_defaults(handler=run_generate)


def run_generate(args: argparse.Namespace, settings: Settings) -> int:
    """Generate the files and print what they hold."""
    from mdhub.testdata import Difficulty, generate

    ctx = Context(settings)
    entity = ctx.entity(args.entity)
    try:
        difficulty = Difficulty.preset(args.difficulty)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.people < 1:
        raise ConfigError(f"--people must be at least 1, got {args.people}")
    with Progress(
        TextColumn(f"making {entity.name} records"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=ctx.console,
        transient=True,
    ) as progress:
        task = progress.add_task("generate", total=args.people)

        def show(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            generated = generate(entity, args.people, difficulty, args.seed, progress=show)
        except ValueError as exc:
            raise ConfigError(f"cannot generate {entity.name}: {exc}") from None
    with ctx.console.status(f"writing files to {args.out}"):
        paths = generated.write(args.out, entity.name)
    summary = generated.summary()
    files = dict(zip(summary.records, paths[:-1], strict=True))
    table = Table(
        "source",
        "file",
        "records",
        "versions",
        title=f"{entity.name}: {args.difficulty} difficulty, seed {args.seed}",
    )
    for source, count in summary.records.items():
        table.add_row(source, escape(str(files[source])), str(count), str(summary.versions[source]))
    table.add_row(
        "[bold]all[/]",
        "",
        str(sum(summary.records.values())),
        str(sum(summary.versions.values())),
    )
    ctx.console.print(table)
    lookalikes = ", ".join(f"{n} {kind}" for kind, n in sorted(summary.lookalikes.items()))
    ctx.console.print(
        f"{summary.people} distinct {entity.name} entities"
        + (f", of which look-alikes (true non-matches): {lookalikes}" if lookalikes else "")
        + f"; {summary.within_source_duplicates} duplicate(s) within a source"
    )
    ctx.console.print(
        f"expected true pairs (two source records of one entity): {summary.true_pairs}; "
        f"truth: {escape(str(paths[-1]))}"
    )
    first = next(iter(summary.records))
    ctx.console.print(
        f"publish with: mdhub publish --entity {entity.name} --source {first} "
        f"{escape(str(files[first]))} (and likewise for the other files)"
    )
    return 0
