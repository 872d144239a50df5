"""``mdhub check``, ``mdhub schemas`` and ``mdhub topics``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.markup import escape
from rich.table import Table

from mdhub.commands.context import Context
from mdhub.errors import ConfigError, MdhubError
from mdhub.kafka.admin import ensure_topics, existing_topics
from mdhub.serde.catalog import SchemaCatalog
from mdhub.serde.schemafiles import check_schemas, generate_schemas
from mdhub.settings import Settings
from mdhub.topology import topic_specs

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add ``check``, ``schemas`` and ``topics``."""
    check = sub.add_parser(
        "check",
        help="validate the entity model and the Avro schemas together",
        description="Validate the entity model (MDHUB_MODEL) and check that schemas/ agrees with "
        "it; every inconsistency is named. Exit 0 when all is well, 2 otherwise.",
    )
    check.set_defaults(handler=run_check)

    schemas = sub.add_parser(
        "schemas",
        help="generate or check the per-entity Avro schemas",
        description="The per-entity schemas (mdhub.<entity>.*) follow from the model.",
    )
    schemas_sub = schemas.add_subparsers(dest="action", metavar="ACTION", required=True)
    gen = schemas_sub.add_parser(
        "generate",
        help="write the schemas the model implies (archiving superseded writer schemas)",
        description="Write schemas/mdhub.<entity>.*.avsc from the model. A changed schema's old "
        "version is archived in schemas/history/ so records written with it stay readable.",
    )
    gen.set_defaults(handler=run_schemas_generate)
    chk = schemas_sub.add_parser(
        "check",
        help="report differences between model and schemas",
        description="Compare schemas/ with what the model implies and name every difference "
        "(the same check as `mdhub check`). Exit 0 when they agree, 2 otherwise.",
    )
    chk.set_defaults(handler=run_check)

    topics = sub.add_parser(
        "topics", help="create or list the hub's topics", description="The hub's topic registry."
    )
    topics_sub = topics.add_subparsers(dest="action", metavar="ACTION", required=True)
    ensure = topics_sub.add_parser(
        "ensure",
        help="create missing topics with their configs and report drift of existing ones",
        description="Create every topic of the registry (idempotent). Existing topics are not "
        "altered; differing partitions or configs are reported as drift (exit 1).",
    )
    ensure.add_argument("--json", action="store_true", help="print the report as JSON")
    ensure.set_defaults(handler=run_topics_ensure)
    lst = topics_sub.add_parser(
        "list",
        help="list the registry's topics and whether they exist",
        description="List every topic of the registry with what it holds, whether it exists on "
        "the cluster and its partition count.",
    )
    lst.add_argument("--json", action="store_true", help="print as JSON")
    lst.set_defaults(handler=run_topics_list)


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    """Validate model and schemas; print every problem."""
    ctx = Context(settings)
    model = ctx.model  # raises ModelError with every model problem
    problems = check_schemas(model, settings.schemas_dir)
    if not problems:
        try:
            catalog = SchemaCatalog.load(settings.schemas_dir)
        except MdhubError as exc:
            problems.append(str(exc))
        else:
            for entity in model.entities:
                for name in ("CandidateChange", "GoldenRecord", "ChangeEvent"):
                    try:
                        catalog.codec(f"mdhub.{entity}.{name}")
                    except MdhubError as exc:
                        problems.append(str(exc))
    if problems:
        raise ConfigError(
            f"model {settings.model_file} and schemas {settings.schemas_dir} disagree "
            f"({len(problems)} problem(s)):\n" + "\n".join(problems)
        )
    ctx.console.print(
        f"[green]ok[/]: model {escape(str(settings.model_file))} (version {model.version}, "
        f"entities: {', '.join(model.entities)}) and {escape(str(settings.schemas_dir))} agree"
    )
    return 0


def run_schemas_generate(args: argparse.Namespace, settings: Settings) -> int:
    """Write the generated schemas."""
    ctx = Context(settings)
    for change in generate_schemas(ctx.model, settings.schemas_dir):
        line = f"{change.action:9} {change.fullname}"
        if change.archived is not None:
            line += f" (previous writer archived as {change.archived})"
        ctx.console.print(escape(line))
    return 0


def _specs(ctx: Context) -> Any:
    kafka = ctx.settings.kafka
    return topic_specs(
        ctx.model, ctx.settings.namespace, kafka.partitions, kafka.replication_factor
    )


def run_topics_ensure(args: argparse.Namespace, settings: Settings) -> int:
    """Create missing topics; report drift."""
    ctx = Context(settings)
    specs = _specs(ctx)
    with ctx.console.status(f"ensuring {len(specs)} topics on {settings.kafka.bootstrap_servers}"):
        reports = ensure_topics(settings.kafka, specs)
    if args.json:
        print(
            json.dumps(
                [{"topic": r.name, "action": r.action, "drift": list(r.drift)} for r in reports]
            )
        )
    else:
        table = Table("topic", "result", "drift", title="mdhub topics")
        for r in reports:
            colour = {"created": "green", "exists": "dim", "drift": "yellow"}[r.action]
            table.add_row(r.name, f"[{colour}]{r.action}[/]", escape("; ".join(r.drift)))
        ctx.console.print(table)
    drifted = [r for r in reports if r.action == "drift"]
    if drifted:
        ctx.console.print(
            f"[yellow]{len(drifted)} topic(s) differ from the registry[/]; they were left as they "
            "are: alter them with Kafka's tools or recreate them"
        )
        return 1
    return 0


def run_topics_list(args: argparse.Namespace, settings: Settings) -> int:
    """List the registry's topics."""
    ctx = Context(settings)
    specs = _specs(ctx)
    present = existing_topics(settings.kafka)
    rows = [
        {
            "topic": s.name,
            "entity": s.entity,
            "stage": s.stage.value,
            "partitions": present.get(s.name),
            "exists": s.name in present,
            "description": s.description,
        }
        for s in specs
    ]
    if args.json:
        print(json.dumps(rows))
        return 0
    table = Table("topic", "exists", "partitions", "what it holds", title="mdhub topic registry")
    for row in rows:
        table.add_row(
            row["topic"],
            "yes" if row["exists"] else "[red]no[/]",
            str(row["partitions"] or "-"),
            row["description"],
        )
    ctx.console.print(table)
    return 0
