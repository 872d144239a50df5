"""``mdhub publish``, ``tail``, ``get`` and ``cache rebuild``: the producer's and reader's tools."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any, Literal

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mdhub.commands.context import Context
from mdhub.domain.model import EntityModel
from mdhub.domain.records import ChangeEvent, GoldenRecord
from mdhub.errors import ConfigError, PublishError, ValidationError
from mdhub.publishing import LineError, ParsedFile, parse_records, read_file
from mdhub.serde.catalog import AvroCodec
from mdhub.serde.generate import fullname
from mdhub.serde.mapping import change_event_to_avro, golden_to_avro
from mdhub.settings import Settings

__all__ = ["register", "to_json"]


def register(sub: Any) -> None:
    """Add ``publish``, ``tail``, ``get`` and ``cache``."""
    publish = sub.add_parser(
        "publish",
        help="publish candidate changes from a JSON-lines or CSV file",
        description="Publish a source system's records as candidate changes. Every line is checked "
        "against the entity's Avro schema first; if any line is bad, all problems are listed with "
        "line numbers and nothing is sent. Columns: the entity's attributes plus source_key "
        "(required), op (upsert|delete), source_version, occurred_at (ISO 8601), change_id.",
    )
    publish.add_argument("file", type=Path, help="a .jsonl/.json or .csv file")
    publish.add_argument("--entity", required=True, help="entity type, e.g. customer")
    publish.add_argument("--source", required=True, help="source system, e.g. crm")
    publish.add_argument(
        "--format", choices=["jsonl", "csv"], help="override the format guessed from the suffix"
    )
    publish.add_argument("--dry-run", action="store_true", help="check the file, send nothing")
    publish.add_argument(
        "--check-rules",
        action="store_true",
        help="also check the entity model's rules (required, length, pattern, enum, range, "
        "standardizers) before sending, as the Python SDK does; by default records that break "
        "them are sent and the hub rejects them with reasons on the rejected topic",
    )
    publish.set_defaults(handler=run_publish)

    tail = sub.add_parser(
        "tail",
        help="print an entity's golden records (or changes, or rejects) as JSON lines",
        description="Print decoded records of an entity's golden topic as JSON lines; "
        "--changes for the change events, --rejected for rejected inputs with their reasons.",
    )
    tail.add_argument("--entity", required=True)
    kind = tail.add_mutually_exclusive_group()
    kind.add_argument("--changes", action="store_true", help="the changes topic (every version)")
    kind.add_argument("--rejected", action="store_true", help="the rejected topic")
    tail.add_argument(
        "--from-beginning", action="store_true", help="start at offset 0 instead of the end"
    )
    tail.add_argument("--max", type=int, default=None, help="stop after this many records")
    tail.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="stop after this many seconds without a record",
    )
    tail.set_defaults(handler=run_tail)

    get = sub.add_parser(
        "get",
        help="read a golden record from the read views (by id, or by source key)",
        description="Print a golden record from the Redis read views: `mdhub get customer <id>` or "
        "`mdhub get customer --source crm --key C-1`.",
    )
    get.add_argument("entity")
    get.add_argument("golden_id", nargs="?")
    get.add_argument("--source")
    get.add_argument("--key")
    get.set_defaults(handler=run_get)

    cache = sub.add_parser(
        "cache", help="manage the Redis read views", description="Redis read views."
    )
    cache_sub = cache.add_subparsers(dest="action", metavar="ACTION", required=True)
    rebuild = cache_sub.add_parser(
        "rebuild",
        help="restore every read view from the golden and changes topics",
        description="Clear the views of the entity (or all entities) and rebuild them from the "
        "compacted golden topic (golden records, xrefs) and the changes topic (history), from "
        "offset 0 to their current end, with progress.",
    )
    rebuild.add_argument("--entity", help="only this entity type")
    rebuild.set_defaults(handler=run_cache_rebuild)


def run_publish(args: argparse.Namespace, settings: Settings) -> int:
    """Check a file, then publish it."""
    ctx = Context(settings)
    entity = ctx.entity(args.entity)
    if not args.file.is_file():
        raise ConfigError(f"{args.file}: no such file")
    codec = ctx.catalog.codec(fullname(entity.name, "CandidateChange"))
    parsed = parse_records(entity, args.source, read_file(args.file, args.format), codec)
    if args.check_rules and not parsed.errors:
        parsed = ParsedFile(parsed.changes, _rule_problems(entity, parsed, codec))
    if parsed.errors:
        for error in parsed.errors[:50]:
            ctx.console.print(f"[red]{escape(str(args.file))}: {escape(str(error))}[/]")
        more = len(parsed.errors) - 50
        if more > 0:
            ctx.console.print(f"... and {more} more")
        ctx.console.print(
            f"[bold red]{len(parsed.errors)} problem(s)[/]: nothing was sent. Fix the lines above "
            "and publish again."
        )
        return 1
    if args.dry_run:
        ctx.console.print(f"{len(parsed.changes)} record(s) are valid; nothing sent (--dry-run)")
        return 0
    from mdhub.client import Publisher

    publisher = Publisher(entity.name, args.source, settings=settings)
    try:
        with Progress(
            TextColumn("publishing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=ctx.console,
        ) as progress:
            task = progress.add_task("publish", total=len(parsed.changes))
            # rule violations are the hub's to report (on the rejected topic), as they always
            # were for files; --check-rules checks them here first, as the SDK does by default
            for i, (_, change, _) in enumerate(parsed.changes, start=1):
                publisher.publish_change(change, validate=False)
                if i % 1000 == 0:
                    progress.update(task, completed=publisher.stats.delivered)
            deadline = time.monotonic() + settings.kafka.request_timeout_s * 3
            while publisher.stats.in_flight and time.monotonic() < deadline:
                publisher.poll(0.2)
                progress.update(task, completed=publisher.stats.delivered)
            progress.update(task, completed=publisher.stats.delivered)
        stats = publisher.stats
    finally:
        publisher.close(0)
    ctx.console.print(
        f"sent {stats.delivered} to {publisher.topic}, failed {stats.failed}, "
        f"undelivered {stats.in_flight}"
    )
    if stats.failed or stats.in_flight:
        for message in stats.errors[:5]:
            ctx.console.print(f"[red]{escape(message)}[/]")
        raise PublishError(
            f"{stats.failed + stats.in_flight} record(s) not delivered to "
            f"{settings.kafka.bootstrap_servers}; check `mdhub stack status` and publish the file "
            "again (re-sent records are harmless)"
        )
    return 0


def _rule_problems(entity: EntityModel, parsed: ParsedFile, codec: AvroCodec) -> list[LineError]:
    """Every rule the file's records break, by line (what the SDK checks before sending)."""
    from mdhub.client._checks import check_change

    errors: list[LineError] = []
    for line, change, _ in parsed.changes:
        try:
            check_change(entity, change, codec)
        except ValidationError as exc:
            errors.extend(LineError(line, f"{r.message} [{r.code}]") for r in exc.reasons)
    return errors


def to_json(value: Any) -> Any:
    """Make a decoded Avro value JSON-able (times as ISO 8601, bytes as base64)."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _as_avro(entity: EntityModel, record: Any) -> dict[str, Any]:
    """A subscriber's record as its Avro record (what ``tail`` prints)."""
    if isinstance(record, GoldenRecord):
        return golden_to_avro(entity, record)
    if isinstance(record, ChangeEvent):
        return change_event_to_avro(entity, record)
    from mdhub.client import Rejection

    assert isinstance(record, Rejection)
    return {
        "entity": record.entity,
        "stage": record.stage,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": record.key,
        "value": record.value,
        "change_id": record.change_id,
        "source": record.source,
        "source_key": record.source_key,
        "reasons": [
            {"code": r.code, "message": r.message, "attribute": r.attribute} for r in record.reasons
        ],
        "rejected_at": record.rejected_at,
    }


def run_tail(args: argparse.Namespace, settings: Settings) -> int:
    """Print decoded records as JSON lines."""
    from mdhub.client import Subscriber

    ctx = Context(settings)
    entity = ctx.entity(args.entity)
    kind: Literal["golden", "changes", "rejected"] = (
        "changes" if args.changes else "rejected" if args.rejected else "golden"
    )
    # no consumer group: every partition, from the start or the end, nothing committed
    with Subscriber(
        entity.name, None, topic=kind, from_beginning=args.from_beginning, settings=settings
    ) as subscriber:
        ctx.console.print(f"tailing {subscriber.topic} (Ctrl-C to stop)")
        if args.max is not None and args.max <= 0:
            return 0
        stream = subscriber.messages(idle_timeout=args.idle_timeout)
        for seen, received in enumerate(stream, start=1):
            out: dict[str, Any] = {
                "topic": received.topic,
                "partition": received.partition,
                "offset": received.offset,
                "key": received.key,
            }
            if received.value is None:
                out["tombstone"] = True
            elif received.error is not None:
                out["undecodable"] = str(received.error)
            else:
                out["value"] = to_json(_as_avro(entity, received.record))
            sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
            sys.stdout.flush()
            if args.max is not None and seen >= args.max:
                break
    return 0


def _cache(settings: Settings) -> Any:
    from mdhub.cache.views import RedisGoldenCache

    return RedisGoldenCache.from_url(
        settings.redis.url, settings.namespace, settings.redis.socket_timeout_s
    )


def run_get(args: argparse.Namespace, settings: Settings) -> int:
    """Print one golden record from the read views."""
    ctx = Context(settings)
    entity = ctx.entity(args.entity)
    cache = _cache(settings)
    golden_id = args.golden_id
    if golden_id is None:
        if not (args.source and args.key):
            raise ConfigError("give a golden id, or --source and --key")
        golden_id = cache.get_xref(entity.name, args.source, args.key)
        if golden_id is None:
            ctx.console.print(f"no {entity.name} is linked to {args.source}:{args.key}")
            return 1
    doc = cache.get_golden(entity.name, golden_id)
    if doc is None:
        ctx.console.print(f"no golden {entity.name} {golden_id}")
        return 1
    print(json.dumps(doc, indent=2, ensure_ascii=False))
    return 0


def run_cache_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild the read views from Kafka, with progress."""
    from mdhub.cache.projector import rebuild_views

    ctx = Context(settings)
    entities = ctx.entities(args.entity)
    cache = _cache(settings)
    cache.ping()
    with Progress(
        TextColumn("rebuilding views"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=ctx.console,
    ) as progress:
        task = progress.add_task("rebuild", total=None)

        def show(p: Any) -> None:
            progress.update(task, total=p.total, completed=p.read)

        result = rebuild_views(settings, entities, ctx.catalog, cache, show)
    counts = ", ".join(f"{e.name}: {cache.count(e.name)}" for e in entities)
    ctx.console.print(
        f"rebuilt from {result.read} message(s) of the golden and changes topics: "
        f"{result.applied} golden view write(s), {result.history} history entries; "
        f"live golden records: {counts}"
    )
    return 0
