"""``mdhub publish``, ``tail``, ``get`` and ``cache rebuild``: the producer's and reader's tools."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mdhub.commands.context import Context
from mdhub.errors import ConfigError, KafkaUnavailableError, MdhubError, PublishError
from mdhub.kafka.config import consumer_config
from mdhub.kafka.producer import HubProducer
from mdhub.naming import Stage, group_name, topic_name
from mdhub.publishing import parse_records, read_file
from mdhub.serde.generate import fullname
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
    topic = topic_name(settings.namespace, entity.name, Stage.SOURCE)
    producer = HubProducer(settings.kafka)
    with Progress(
        TextColumn("publishing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=ctx.console,
    ) as progress:
        task = progress.add_task("publish", total=len(parsed.changes))
        for i, (_, change, value) in enumerate(parsed.changes, start=1):
            producer.produce(topic, change.source_ref.encode(), value)
            if i % 1000 == 0:
                producer.poll(0)
                progress.update(task, completed=producer.report.delivered)
        deadline = time.monotonic() + settings.kafka.request_timeout_s * 3
        while producer.flush(0.2) and time.monotonic() < deadline:
            progress.update(task, completed=producer.report.delivered)
        progress.update(task, completed=producer.report.delivered)
    report = producer.report
    left = producer.flush(0)
    ctx.console.print(
        f"sent {report.delivered} to {topic}, failed {report.failed}, undelivered {left}"
    )
    if report.failed or left:
        for message in report.errors[:5]:
            ctx.console.print(f"[red]{escape(message)}[/]")
        raise PublishError(
            f"{report.failed + left} record(s) not delivered to {settings.kafka.bootstrap_servers}; "
            "check `mdhub stack status` and publish the file again (re-sent records are harmless)"
        )
    return 0


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


def run_tail(args: argparse.Namespace, settings: Settings) -> int:
    """Print decoded records as JSON lines."""
    ctx = Context(settings)
    entity = ctx.entity(args.entity)
    if args.changes:
        stage, codec = Stage.CHANGES, ctx.catalog.codec(fullname(entity.name, "ChangeEvent"))
    elif args.rejected:
        stage, codec = Stage.REJECTED, ctx.catalog.codec("mdhub.common.RejectedRecord")
    else:
        stage, codec = Stage.GOLDEN, ctx.catalog.codec(fullname(entity.name, "GoldenRecord"))
    topic = topic_name(settings.namespace, entity.name, stage)
    conf = consumer_config(
        settings.kafka, group_name(settings.namespace, "tail"), **{"enable.auto.commit": False}
    )
    consumer = Consumer(conf)
    try:
        try:
            meta = consumer.list_topics(topic, timeout=settings.kafka.request_timeout_s)
        except KafkaException as exc:
            raise KafkaUnavailableError(
                f"Kafka at {settings.kafka.bootstrap_servers}: {exc}"
            ) from exc
        info = meta.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise ConfigError(f"topic {topic} does not exist; run `mdhub topics ensure`")
        start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in info.partitions])
        ctx.console.print(f"tailing {topic} (Ctrl-C to stop)")
        seen = 0
        last = time.monotonic()
        while args.max is None or seen < args.max:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                if args.idle_timeout is not None and time.monotonic() - last > args.idle_timeout:
                    break
                continue
            last = time.monotonic()
            raw_key = msg.key()
            key = raw_key.decode("utf-8", "replace") if raw_key else None
            out: dict[str, Any] = {
                "topic": topic,
                "partition": msg.partition(),
                "offset": msg.offset(),
                "key": key,
            }
            value = msg.value()
            if value is None:
                out["tombstone"] = True
            else:
                try:
                    out["value"] = to_json(codec.decode(value))
                except MdhubError as exc:
                    out["undecodable"] = str(exc)
            sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
            sys.stdout.flush()
            seen += 1
    finally:
        consumer.close()
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
