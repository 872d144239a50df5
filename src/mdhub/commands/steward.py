"""``mdhub steward``: a data steward's decisions, sent through the commands topic, and the review
queue they decide."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mdhub.commands.context import Context, at_least
from mdhub.domain.commands import Action, StewardCommand
from mdhub.domain.records import Value
from mdhub.errors import ConfigError, MdhubError
from mdhub.publishing import convert_value
from mdhub.settings import Settings
from mdhub.stewarding import (
    CommandSender,
    decision_command,
    new_command,
    parse_ref,
    where_now,
)

__all__ = ["register", "run_accept", "run_review", "run_steward", "send_command"]

_EPILOG = (
    "Source records are named <source>:<source_key>, e.g. crm:C-1. Commands go through the "
    "entity's commands topic; the worker applies them shortly after, and one it cannot apply "
    "lands on the rejected topic with its reasons (`mdhub tail --entity E --rejected`)."
)


def _ref(text: str) -> str:
    try:
        return parse_ref(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: Any) -> None:
    """Add ``steward`` with its sub-commands."""
    steward = sub.add_parser(
        "steward",
        help="data-steward decisions: review potential matches, link, split, merge, pin, erase",
        description="Send a steward command, or read the review queue. Commands go through the "
        "entity's commands topic, so every decision is an event that replays; the worker applies "
        "it and publishes new golden versions. A command that cannot be applied lands on the "
        "rejected topic with its reasons (`mdhub tail --entity E --rejected`).",
    )
    actions = steward.add_subparsers(dest="action", metavar="ACTION", required=True)

    def parser(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        made: argparse.ArgumentParser = actions.add_parser(
            name, help=help_text, description=description, epilog=_EPILOG
        )
        made.add_argument("entity", help="entity type, e.g. customer")
        return made

    def why(made: argparse.ArgumentParser) -> None:
        made.add_argument("--reason", help="why (kept with the command)")
        made.add_argument("--by", help="who decided (kept with the command)")

    override = parser(
        "override",
        "pin an attribute's value; it wins over every source until cleared",
        "Pin ATTRIBUTE of a golden record to VALUE (checked against the model's type "
        "and rules). Its lineage then names the steward command.",
    )
    override.add_argument("golden_id")
    override.add_argument("attribute")
    override.add_argument("value", help="the value as text (dates ISO 8601, lists a|b|c)")
    why(override)
    override.set_defaults(handler=run_steward, command_action=Action.OVERRIDE)

    clear = parser(
        "clear-override",
        "remove a pin; survivorship over the sources decides again",
        "Remove the steward's pin of ATTRIBUTE.",
    )
    clear.add_argument("golden_id")
    clear.add_argument("attribute")
    why(clear)
    clear.set_defaults(handler=run_steward, command_action=Action.CLEAR_OVERRIDE)

    erase = parser(
        "erase",
        "erase a golden record: its values, sources, lineage and read views",
        "Erase a golden record: the golden topic gets a final version without any "
        "attribute and a tombstone, the read views drop it, the worker's state keeps only the fact "
        "of the erasure, and the changes topic records that it happened (no values).",
    )
    erase.add_argument("golden_id")
    why(erase)
    erase.set_defaults(handler=run_steward, command_action=Action.ERASE)

    link = parser(
        "link",
        "force two source records into one golden record",
        "Link two source records: they are the same entity whatever their match score. Their "
        "golden records merge (the survivor keeps its id; the other becomes a redirect to it).",
    )
    link.add_argument("ref", type=_ref, help="a source record, <source>:<source_key>")
    link.add_argument("other_ref", type=_ref, help="the other source record")
    why(link)
    link.set_defaults(handler=run_steward, command_action=Action.LINK)

    split = parser(
        "split",
        "move a source record out of its golden record, for good",
        "Split REF out of GOLDEN_ID into a golden record of its own. It is not matched "
        "automatically again; only a steward's link brings it back.",
    )
    split.add_argument("golden_id")
    split.add_argument("ref", type=_ref, help="the source record to move out")
    why(split)
    split.set_defaults(handler=run_steward, command_action=Action.SPLIT)

    merge = parser(
        "merge",
        "merge two golden records into one",
        "Merge two golden records: the survivor keeps its id and every source record of both; "
        "the other becomes a redirect to it (the API answers with the survivor).",
    )
    merge.add_argument("golden_id")
    merge.add_argument("other_golden_id")
    why(merge)
    merge.set_defaults(handler=run_steward, command_action=Action.MERGE)

    not_match = parser(
        "not-match",
        "declare two source records different entities (--undo takes it back)",
        "Record that two source records are different entities: they are never matched "
        "again, and when they share a golden record, the one that joined later is split out. "
        "With --undo, take that back (nothing is re-matched until a record changes).",
    )
    not_match.add_argument("ref", type=_ref, help="a source record, <source>:<source_key>")
    not_match.add_argument("other_ref", type=_ref, help="the other source record")
    not_match.add_argument("--undo", action="store_true", help="take a not-match back")
    why(not_match)
    not_match.set_defaults(handler=run_steward, command_action=Action.NOT_MATCH)

    review = parser(
        "review",
        "list the open potential matches, oldest first",
        "List the review queue from the Redis read views: pairs of source records whose score "
        "fell between the review and match thresholds, with their golden records, score and "
        "age. Decide one with `mdhub steward accept|reject E PAIR_ID`; see why they scored as "
        "they did with `mdhub explain`.",
    )
    review.add_argument("--offset", type=at_least(0), default=0, help="open pairs to skip")
    review.add_argument("--limit", type=at_least(1), default=50, help="most pairs to list")
    review.add_argument("--json", action="store_true", help="print the page as JSON")
    review.set_defaults(handler=run_review)

    accept = parser(
        "accept",
        "accept a potential match: link its two source records",
        "Accept a potential match of the review queue: the worker links its two source "
        "records (merging their golden records) and marks the pair accepted.",
    )
    accept.add_argument("pair_id")
    why(accept)
    accept.set_defaults(handler=run_accept, accept=True)

    reject = parser(
        "reject",
        "reject a potential match: its two source records are different entities",
        "Reject a potential match of the review queue: the worker records that its two "
        "source records never match and marks the pair rejected.",
    )
    reject.add_argument("pair_id")
    why(reject)
    reject.set_defaults(handler=run_accept, accept=False)


def _cache(settings: Settings) -> Any:
    from mdhub.cache.views import RedisGoldenCache

    return RedisGoldenCache.from_url(
        settings.redis.url, settings.namespace, settings.redis.socket_timeout_s
    )


def _stdout() -> Console:
    out = Console(highlight=False)
    return out if out.is_terminal else Console(highlight=False, width=240)


def send_command(ctx: Context, command: StewardCommand) -> None:
    """Publish a steward command to the entity's commands topic and wait for Kafka's ack.

    Raises:
        KafkaUnavailableError: Kafka did not take it in time.
        PublishError: Kafka refused it.
    """
    CommandSender.from_settings(ctx.settings, ctx.catalog)(command)


def _value(ctx: Context, args: argparse.Namespace) -> tuple[str | None, Value | None]:
    """The attribute and (for an override) the typed value of an attribute command."""
    entity = ctx.entity(args.entity)
    attribute: str | None = getattr(args, "attribute", None)
    if attribute is None:
        return None, None
    if attribute not in entity.attributes:
        raise ConfigError(
            f"{attribute!r} is not an attribute of {entity.name}; "
            f"attributes: {', '.join(entity.attributes)}"
        )
    if args.command_action is not Action.OVERRIDE:
        return attribute, None
    try:
        return attribute, convert_value(entity.attributes[attribute].type, args.value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{attribute}={args.value!r}: {exc}") from exc


def run_steward(args: argparse.Namespace, settings: Settings) -> int:
    """Build, check and send one steward command."""
    ctx = Context(settings)
    entity = ctx.entity(args.entity)
    action: Action = args.command_action
    if action is Action.NOT_MATCH and args.undo:
        action = Action.UNDO_NOT_MATCH
    attribute, value = _value(ctx, args)
    try:
        command = new_command(
            entity.name,
            action,
            golden_id=getattr(args, "golden_id", None) or "",
            source_ref=getattr(args, "ref", None),
            other_ref=getattr(args, "other_ref", None),
            other_golden_id=getattr(args, "other_golden_id", None),
            attribute=attribute,
            value=value,
            issued_by=args.by,
            reason=args.reason,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    send_command(ctx, command)
    ctx.console.print(f"sent {action.value} command {command.command_id} {escape(_about(command))}")
    return 0


def _about(command: StewardCommand) -> str:
    named = [command.golden_id, command.other_golden_id, command.source_ref, command.other_ref]
    return f"for {command.entity} " + ", ".join(n for n in named if n)


def _age(detected_at: str, now: dt.datetime) -> str:
    try:
        when = dt.datetime.fromisoformat(detected_at)
    except ValueError:
        return "?"
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def review_table(entity: str, items: list[dict[str, Any]], now: dt.datetime) -> Table:
    """The review queue page as a table (pair, records, golden records, score, age)."""
    table = Table(
        "pair",
        "record",
        "golden id",
        "candidate",
        "candidate golden id",
        "score",
        "age",
        "now",
        title=f"open potential matches of {entity}",
    )
    for item in items:
        table.add_row(
            escape(str(item["pair_id"])),
            escape(str(item["ref"])),
            escape(str(item["golden_id"])),
            escape(str(item["candidate_ref"])),
            escape(str(item["candidate_golden_id"])),
            f"{float(item['score']):.2f}",
            _age(str(item.get("detected_at", "")), now),
            "one golden record" if item.get("same_golden_now") else "",
        )
    return table


def run_review(args: argparse.Namespace, settings: Settings) -> int:
    """Print a page of the review queue."""
    ctx = Context(settings)
    entity = ctx.entity(args.entity)
    cache = _cache(settings)
    total, items = cache.list_reviews(entity.name, offset=args.offset, limit=args.limit)
    items = where_now(cache, entity.name, items)
    if args.json:
        page = {"entity": entity.name, "total": total, "offset": args.offset, "limit": args.limit}
        print(json.dumps({**page, "items": items}, ensure_ascii=False))
        return 0
    if not items:
        more = f" past offset {args.offset}" if total else ""
        ctx.console.print(f"no open potential matches of {entity.name}{more} ({total} open)")
        return 0
    _stdout().print(review_table(entity.name, items, dt.datetime.now(dt.UTC)))
    last = args.offset + len(items)
    ctx.console.print(
        f"{args.offset + 1}-{last} of {total} open; decide with "
        f"`mdhub steward accept|reject {entity.name} PAIR_ID`"
        + (f"; next page: --offset {last}" if last < total else "")
    )
    return 0


def run_accept(args: argparse.Namespace, settings: Settings) -> int:
    """Accept or reject a potential match of the review queue."""
    ctx = Context(settings)
    entity = ctx.entity(args.entity)
    pair = _cache(settings).get_review(entity.name, args.pair_id)
    if pair is None:
        raise MdhubError(
            f"no potential match {args.pair_id} of {entity.name} in the read views; "
            f"list the open ones with `mdhub steward review {entity.name}`"
        )
    if pair.get("status") != "open":
        by = f" by command {pair['decided_by']}" if pair.get("decided_by") else ""
        raise MdhubError(f"potential match {args.pair_id} was already {pair.get('status')}{by}")
    command = decision_command(
        entity.name, pair, accept=args.accept, issued_by=args.by, reason=args.reason
    )
    send_command(ctx, command)
    ctx.console.print(
        f"sent {command.action.value} command {command.command_id} for pair {args.pair_id} "
        f"({escape(str(pair['ref']))} / {escape(str(pair['candidate_ref']))})"
    )
    return 0
