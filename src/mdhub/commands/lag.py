"""``mdhub lag``: consumer lag of every group that reads the hub's topics, with a Burrow status."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import time
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mdhub.commands.context import Context, at_least
from mdhub.errors import KafkaUnavailableError
from mdhub.ops.lag import GroupLag, LagReport, LagTracker, PartitionLag, Status
from mdhub.settings import Settings

__all__ = ["register", "report_document"]

_EPILOG = """\
columns:
  GROUP, TOPIC, PARTITION  the consumer group and a partition of a hub topic (<namespace>.*)
  CURRENT-OFFSET           the group's committed offset: the next message it will read
                           ("-": never committed; the lag then counts from the log start)
  LOG-END-OFFSET           the offset the next produced message will get (high watermark)
  LAG                      LOG-END-OFFSET - CURRENT-OFFSET, in messages (as Kafka's
                           kafka-consumer-groups.sh --describe reports it)
  LAG-SECONDS              age of the oldest unconsumed message: now minus the timestamp of
                           the message at CURRENT-OFFSET (0 without lag, "-" unknown)
  CONSUME/s, PRODUCE/s     committed-offset and log-end progress over the window
  ETA                      time to catch up at these rates ("never": not gaining, "-": unknown)
  STATUS                   see below; a group's status is its worst partition's

statuses (evaluated over a sliding window, after Burrow's rules):
  OK      no lag, caught up within the window, or consuming without the lag growing
  WARN    the lag grows while the consumer commits (or has paused for less than the window)
  REWIND  the committed offset went back (a reset or a replay)
  STALL   the offset has not moved for the whole window although a live member owns the
          partition (the consumer is there but makes no progress)
  STOP    the offset has not moved for the whole window, or no live member owns the
          partition and the offset does not move (nobody consumes it)
  ERR     the offsets could not be read, or the committed offset is beyond the log end

Without --watch, the command takes --samples readings --interval seconds apart (3 over 2 s by
default) so that rates and trends exist; a pause shorter than --window shows as WARN, not STALL
or STOP. With --watch it keeps reading every --interval seconds (5 by default) and keeps the
window, like a dashboard. Exit status: 0, or 1 when a --group has no offsets on hub topics,
3 when Kafka cannot be reached.
"""

_STATUS_STYLE = {
    Status.OK: "green",
    Status.WARN: "yellow",
    Status.REWIND: "magenta",
    Status.STALL: "red",
    Status.STOP: "bold red",
    Status.ERR: "bold red",
}


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def register(sub: Any) -> None:
    """Add ``lag``."""
    parser = sub.add_parser(
        "lag",
        help="consumer lag of every group reading hub topics, with a status per partition",
        description="Per consumer group, topic and partition of the hub's topics: committed "
        "offset, log end and lag (as Kafka's consumer-group tool shows them), plus lag in "
        "seconds, consume and produce rates, time to catch up and a Burrow-style status. "
        "Covers the hub's own groups and any external group subscribed to hub topics.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--group",
        dest="groups",
        action="append",
        metavar="G",
        help="only this consumer group (repeatable; default: every group reading hub topics)",
    )
    parser.add_argument(
        "--watch", action="store_true", help="refresh every --interval seconds until Ctrl-C"
    )
    parser.add_argument(
        "--interval",
        type=_positive,
        metavar="S",
        help="seconds between readings (default: 5 with --watch, 1 without)",
    )
    parser.add_argument(
        "--samples",
        type=at_least(1),
        default=3,
        metavar="N",
        help="readings taken without --watch (default: 3)",
    )
    parser.add_argument(
        "--window",
        type=_positive,
        default=60.0,
        metavar="S",
        help="the evaluation window in seconds (default: 60)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document (with --watch: one per refresh, one per line)",
    )
    parser.set_defaults(handler=run_lag)


def run_lag(args: argparse.Namespace, settings: Settings) -> int:
    """Read the lag, evaluate it over the window and print it."""
    from mdhub.ops.lagsource import KafkaLagSource

    ctx = Context(settings)
    groups: list[str] = args.groups or []
    interval: float = args.interval or (5.0 if args.watch else 1.0)
    tracker = LagTracker(args.window)
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=240)  # a pipe or a file: never cut a column
    with KafkaLagSource(settings.kafka, settings.namespace, groups=groups) as source:
        if args.watch:
            return _watch(args, settings, source, tracker, interval, out)
        report: LagReport | None = None
        with ctx.console.status("reading consumer-group offsets") as status:
            for i in range(args.samples):
                if i:
                    time.sleep(interval)
                status.update(
                    f"reading consumer-group offsets ({i + 1}/{args.samples}) from "
                    f"{escape(settings.kafka.bootstrap_servers)}"
                )
                tracker.observe(source.sample())
            report = tracker.report()
    missing = [g for g in groups if report.group(g) is None]
    if args.json:
        print(json.dumps(report_document(report, settings, args.samples, missing)))
    else:
        out.print(_render(report, settings, missing))
    for group in missing:
        ctx.console.print(
            f"[yellow]group {escape(group)} has no committed offsets on "
            f"{escape(settings.namespace)}.* topics[/]"
        )
    return 1 if missing else 0


def _watch(
    args: argparse.Namespace,
    settings: Settings,
    source: Any,
    tracker: LagTracker,
    interval: float,
    out: Console,
) -> int:
    groups: list[str] = args.groups or []
    readings = 0
    live: Live | None = None
    try:
        if not args.json:
            live = Live(Text("reading consumer-group offsets ..."), console=out, auto_refresh=False)
            live.start()
        while True:
            started = time.monotonic()
            problem = None
            try:
                tracker.observe(source.sample())
            except KafkaUnavailableError as exc:
                tracker.observe_failure(time.time(), str(exc))
                problem = str(exc)
            readings += 1
            report = tracker.report()
            missing = [g for g in groups if report.group(g) is None]
            if args.json:
                doc = report_document(report, settings, readings, missing)
                if problem is not None:
                    doc["error"] = problem
                print(json.dumps(doc), flush=True)
            elif live is not None:
                footer = Text(
                    f"refreshing every {interval:g} s, window {tracker.window_s:g} s, "
                    f"{readings} reading(s); Ctrl-C to stop",
                    style="dim",
                )
                parts: list[RenderableType] = [_render(report, settings, missing)]
                if problem is not None:
                    parts.append(Text(f"unavailable: {problem}", style="bold red"))
                parts.append(footer)
                live.update(Group(*parts), refresh=True)
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return 0
    finally:
        if live is not None:
            live.stop()


# -- rendering -------------------------------------------------------------------------------


def _int(value: int | None) -> str:
    return "-" if value is None else str(value)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if math.isinf(seconds):
        return "never"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _status(status: Status) -> Text:
    return Text(status.value, style=_STATUS_STYLE[status])


def _render(report: LagReport, settings: Settings, missing: list[str]) -> RenderableType:
    if not report.groups:
        return Text(
            f"no consumer group has offsets on {settings.namespace}.* topics "
            f"at {settings.kafka.bootstrap_servers}",
            style="yellow",
        )
    table = Table(
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "LAG-SECONDS",
        "CONSUME/s",
        "PRODUCE/s",
        "ETA",
        "STATUS",
        box=None,
        header_style="bold",
        pad_edge=False,
    )
    for i, column in enumerate(table.columns):
        column.no_wrap = True
        column.min_width = len(str(column.header))
        if 2 <= i < 10:
            column.justify = "right"
    for group in report.groups:
        for p in group.partitions:
            sample = p.sample
            table.add_row(
                group.group,
                p.key.topic,
                str(p.key.partition),
                _int(sample.committed if sample else None),
                _int(sample.log_end if sample else None),
                _int(p.lag),
                "-" if p.lag_seconds is None else f"{p.lag_seconds:,.1f}",
                _rate(p.consume_rate),
                _rate(p.produce_rate),
                _duration(p.eta_seconds),
                _status(p.status),
            )
    width = max(len(g.group) for g in report.groups)
    lines = Text("\n").join(_group_line(group, width) for group in report.groups)
    at = dt.datetime.fromtimestamp(report.at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    title = Text(
        f"consumer lag on {settings.kafka.bootstrap_servers} ({settings.namespace}.* topics), "
        f"{at}, window {report.window_s:g} s",
        style="bold",
    )
    parts: list[RenderableType] = [title, table, Text(""), lines]
    if missing:
        parts.append(Text("no offsets on hub topics: " + ", ".join(missing), style="yellow"))
    return Group(*parts)


def _group_line(group: GroupLag, width: int) -> Text:
    seconds = group.lag_seconds
    figures = f"lag {group.lag:,}" + (f" ({_duration(seconds)})" if seconds else "")
    who = f"{group.info.state.lower()}, {group.info.members} member(s)"
    return Text.assemble(
        (group.group.ljust(width), "bold"),
        " ",
        (group.status.value.ljust(6), _STATUS_STYLE[group.status]),
        f" {figures}; {who}; {group.reason}",
    )


def _partition_doc(p: PartitionLag) -> dict[str, Any]:
    sample = p.sample
    eta = p.eta_seconds
    return {
        "topic": p.key.topic,
        "partition": p.key.partition,
        "current_offset": sample.committed if sample else None,
        "log_end_offset": sample.log_end if sample else None,
        "log_start_offset": sample.log_start if sample else None,
        "lag": p.lag,
        "lag_seconds": p.lag_seconds,
        "consume_rate": p.consume_rate,
        "produce_rate": p.produce_rate,
        "eta_seconds": None if eta is None or math.isinf(eta) else eta,
        "catching_up": None if eta is None else not math.isinf(eta),
        "owned": sample.owned if sample else None,
        "status": p.status.value,
        "reason": p.reason,
    }


def report_document(
    report: LagReport, settings: Settings, readings: int, missing: list[str]
) -> dict[str, Any]:
    """The JSON form of a report (what ``mdhub lag --json`` prints)."""
    return {
        "at": dt.datetime.fromtimestamp(report.at, dt.UTC).isoformat(),
        "bootstrap_servers": settings.kafka.bootstrap_servers,
        "namespace": settings.namespace,
        "window_s": report.window_s,
        "readings": readings,
        "groups": [
            {
                "group": g.group,
                "state": g.info.state,
                "members": g.info.members,
                "status": g.status.value,
                "reason": g.reason,
                "lag": g.lag,
                "lag_seconds": g.lag_seconds,
                "partitions": [_partition_doc(p) for p in g.partitions],
            }
            for g in report.groups
        ],
        "missing_groups": missing,
    }
