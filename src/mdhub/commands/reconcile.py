"""``mdhub reconcile``: do the counts of every source partition add up?"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.markup import escape
from rich.table import Table

from mdhub.commands.context import Context
from mdhub.settings import Settings

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add ``reconcile``."""
    parser = sub.add_parser(
        "reconcile",
        help="check that every source message is accepted, unchanged, rejected or pending review",
        description="Per partition of the entity's source topic: messages consumed by the worker "
        "against accepted + unchanged + rejected + pending review (from the worker's ledger), and "
        "the ledger's rejected count against the rejected topic. Exit 0 when everything adds up, "
        "1 when something does not (each mismatch is named).",
    )
    parser.add_argument("--entity", required=True)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run_reconcile)


def run_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    """Print the reconciliation of one entity type."""
    from mdhub.ops.reconcile import reconcile

    ctx = Context(settings)
    entity = ctx.entity(args.entity)
    with ctx.console.status(f"reading the {entity.name} ledgers and rejected records"):
        reports = reconcile(settings, ctx.catalog, entity.name)
    bad = [r for r in reports if r.problems]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "partition": r.partition,
                        "log_end": r.log_end,
                        "consumed": r.ledger.consumed,
                        "accepted": r.ledger.accepted,
                        "unchanged": r.ledger.unchanged,
                        "rejected": r.ledger.rejected,
                        "pending_review": r.ledger.pending_review,
                        "rejected_on_topic": r.rejected_on_topic,
                        "unprocessed": r.unprocessed,
                        "committed_lag": r.committed_lag,
                        "ok": not r.problems,
                        "problems": r.problems,
                    }
                    for r in reports
                ]
            )
        )
    else:
        table = Table(
            "partition",
            "consumed",
            "accepted",
            "unchanged",
            "rejected",
            "pending",
            "unprocessed",
            "result",
            title=f"{entity.name}: source messages and their outcomes",
        )
        for r in reports:
            led = r.ledger
            result = (
                "[green]ok[/]"
                if not r.problems
                else "[red]" + escape("; ".join(r.problems)) + "[/]"
            )
            table.add_row(
                str(r.partition), str(led.consumed), str(led.accepted), str(led.unchanged),
                str(led.rejected), str(led.pending_review), str(r.unprocessed), result,
            )  # fmt: skip
        ctx.console.print(table)
        total = sum(r.ledger.consumed for r in reports)
        if bad:
            ctx.console.print(
                f"[bold red]{len(bad)} partition(s) do not add up[/]; see the worker log"
            )
        else:
            ctx.console.print(
                f"[green]all {len(reports)} partition(s) add up[/] ({total} messages accounted for)"
            )
    return 1 if bad else 0
