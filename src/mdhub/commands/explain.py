"""``mdhub explain``: why each source record belongs to its golden record."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mdhub.commands.context import Context
from mdhub.errors import MdhubError
from mdhub.settings import Settings
from mdhub.stewarding import MAX_REDIRECTS, explanation, follow_merges

__all__ = ["explanation_table", "register", "run_explain"]


def register(sub: Any) -> None:
    """Add ``explain``."""
    parser = sub.add_parser(
        "explain",
        help="explain why each source record belongs to a golden record",
        description="Read a golden record from the Redis read views and say, per source record, "
        "how it was linked: it created the record, it matched another source record (with the "
        "score, the block that found the candidate and every comparator's contribution, largest "
        "first), a match rule fired, or a steward linked or split it. A golden record that was "
        "merged into another is explained through the survivor.",
    )
    parser.add_argument("entity", help="entity type, e.g. customer")
    parser.add_argument("golden_id")
    parser.add_argument("--json", action="store_true", help="print the explanation as JSON")
    parser.set_defaults(handler=run_explain)


def explanation_table(explained: dict[str, Any]) -> Table:
    """The explanation as a table: one row per source record."""
    table = Table(
        "source record",
        "how",
        "score",
        "why",
        title=f"{explained['entity']} {explained['golden_id']} "
        f"(version {explained['version']}, {explained['status']})",
    )
    for item in explained["sources"]:
        ref = f"{item['source']}:{item['source_key']}" + (" (deleted)" if item["deleted"] else "")
        score = item["score"]
        table.add_row(
            escape(ref),
            escape(item["method"] or "-"),
            "-" if score is None else f"{float(score):.2f}",
            escape(item["reason"]),
        )
    return table


def run_explain(args: argparse.Namespace, settings: Settings) -> int:
    """Print the explanation of a golden record's links."""
    from mdhub.cache.views import RedisGoldenCache

    ctx = Context(settings)
    entity = ctx.entity(args.entity)
    cache = RedisGoldenCache.from_url(
        settings.redis.url, settings.namespace, settings.redis.socket_timeout_s
    )
    found = follow_merges(cache, entity.name, args.golden_id)
    if found.doc is None:
        if found.too_long:
            raise MdhubError(
                f"{entity.name} {args.golden_id} was merged more than {MAX_REDIRECTS} times over "
                f"(or in a loop): {' -> '.join(found.path)}"
            )
        if found.redirected:
            raise MdhubError(
                f"{entity.name} {args.golden_id} was merged into {found.path[-1]}, which is not "
                "in the read views"
            )
        raise MdhubError(f"no golden {entity.name} {args.golden_id} in the read views")
    explained = explanation(entity.name, found)
    if args.json:
        print(json.dumps(explained, ensure_ascii=False, indent=2))
        return 0
    if found.redirected:
        ctx.console.print(
            f"{escape(args.golden_id)} was merged into {escape(found.path[-1])}; explaining that"
        )
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=240)  # a pipe or a file: never cut a column
    out.print(explanation_table(explained))
    return 0
