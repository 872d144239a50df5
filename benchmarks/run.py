"""Measure the hub's throughput and latency against a bare confluent-kafka loop (``make bench``).

One run, on one generated input:

1. starts its own Kafka and Redis (state in ``benchmarks/out/stack``, ports 39092/39093/36379),
   unless ``--bootstrap`` and ``--redis-url`` name servers to use;
2. generates ``--records`` candidate changes of customers (deterministic for ``--seed``), encodes
   them once; they hold no duplicates (every key is a person of its own, see ``dataset.py``);
3. B0: publishes them to a scratch topic, then times one confluent-kafka consumer that decodes,
   re-encodes and produces every record (idempotent, acks=all);
4. hub: in a fresh namespace, starts one ``mdhub worker`` (its router thread forwards the source
   topic to the resolve topic, its agent resolves and merges) and one ``mdhub project``, warms them
   up with one record, publishes the same records and times until the last golden version of every
   key is in Redis; then checks every key's version, the topics' counts (no reviews, no
   rejections) and the router, worker and projector groups' lag;
5. latency: publishes new keys at ``--latency-rate`` for ``--latency-seconds`` and times each one
   from publish to its golden version readable in Redis (``--latency-trace FILE``: each record's
   times, to see latency over the phase);
6. prints the figures, writes ``benchmarks/out/last.json`` and updates ``benchmarks/RESULTS.md``.

Every process and server it started is stopped at the end, also on Ctrl-C or an error. Other
``MDHUB_*`` variables of the environment (e.g. ``MDHUB_WORKER__BATCH_SIZE``) reach the hub's
processes, and are recorded with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pstats
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the sibling modules, also when imported from elsewhere
    sys.path.insert(0, str(HERE))

import redis  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import (  # noqa: E402
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from mdhub.cache.views import RedisGoldenCache  # noqa: E402
from mdhub.kafka.admin import ensure_topics, release_admins  # noqa: E402
from mdhub.kafka.config import producer_config  # noqa: E402
from mdhub.kafka.offsets import close_readers  # noqa: E402
from mdhub.modelfile import load_model  # noqa: E402
from mdhub.naming import Stage, topic_name  # noqa: E402
from mdhub.serde.catalog import SchemaCatalog  # noqa: E402
from mdhub.topology import topic_specs  # noqa: E402

from baseline import run_baseline  # noqa: E402
from dataset import ENTITY, Dataset, generate_run  # noqa: E402
from environment import (  # noqa: E402
    REPO,
    HubProcess,
    LocalStack,
    child_processes,
    cpu_seconds,
    hub_env,
    hub_settings,
    passthrough_settings,
)
from hub import groups_caught_up, run_hub, verify, wait_until_projected  # noqa: E402
from latency import run_latency  # noqa: E402
from machine import describe_machine, hub_source, load_average, utc_now_text  # noqa: E402
from report import print_table, scan_logs, update_results_md, write_json  # noqa: E402
from topics import delete_topics  # noqa: E402

OUT = HERE / "out"
RESULTS_MD = HERE / "RESULTS.md"


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description=__doc__.split("\n\n", 1)[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("input")
    data.add_argument("--records", type=int, default=100_000, help="changes (default 100000)")
    data.add_argument(
        "--update-fraction",
        type=float,
        default=0.2,
        help="share of changes that update an existing key (default 0.2)",
    )
    data.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    data.add_argument(
        "--partitions", type=int, default=4, help="partitions of every topic (default 4)"
    )
    where = parser.add_argument_group("servers")
    where.add_argument("--bootstrap", help="use this Kafka (with --redis-url) instead of a stack")
    where.add_argument("--redis-url", help="use this Redis (with --bootstrap)")
    where.add_argument(
        "--state-dir",
        type=Path,
        default=OUT / "stack",
        help="the benchmark stack's files (default benchmarks/out/stack)",
    )
    where.add_argument("--kafka-port", type=int, default=39092)
    where.add_argument("--controller-port", type=int, default=39093)
    where.add_argument("--redis-port", type=int, default=36379)
    where.add_argument(
        "--keep-stack", action="store_true", help="leave the stack running at the end"
    )
    where.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the run's topics, Redis keys and worker state (deleted by default)",
    )
    phases = parser.add_argument_group("phases")
    phases.add_argument("--skip-b0", action="store_true", help="do not run B0")
    phases.add_argument(
        "--skip-throughput", action="store_true", help="do not run the hub throughput phase"
    )
    phases.add_argument("--skip-latency", action="store_true", help="do not run the latency phase")
    phases.add_argument(
        "--latency-rate",
        type=float,
        default=500.0,
        help="new keys per second (default 500, about half the hub's throughput)",
    )
    phases.add_argument(
        "--latency-seconds", type=float, default=15.0, help="latency phase length (default 15)"
    )
    phases.add_argument(
        "--latency-trace",
        type=Path,
        metavar="FILE",
        help="write each latency-phase record's publish, golden-produced and seen-in-Redis times "
        "to FILE (CSV)",
    )
    phases.add_argument(
        "--stall-timeout",
        type=float,
        default=120.0,
        help="give up when no golden version is projected for this long (default 120 s)",
    )
    phases.add_argument(
        "--start-timeout",
        type=float,
        default=180.0,
        help="wait this long for the worker and projector to handle a first record (default 180 s)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--profile",
        action="store_true",
        help="run the worker and projector under cProfile and print their hotspots "
        "(figures are slowed down, so RESULTS.md is left alone)",
    )
    output.add_argument(
        "--no-results", action="store_true", help="do not update benchmarks/RESULTS.md"
    )
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse and check the command line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.bootstrap is None) != (args.redis_url is None):
        parser.error("--bootstrap and --redis-url go together")
    if args.records < 1 or args.partitions < 1:
        parser.error("--records and --partitions must be at least 1")
    if not 0 <= args.update_fraction < 1:
        parser.error("--update-fraction must be in [0, 1)")
    if args.latency_rate <= 0 or args.latency_seconds <= 0:
        parser.error("--latency-rate and --latency-seconds must be positive")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class _Phases:
    """Progress bars, one per step, and a way to say things above them."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def say(self, message: str) -> None:
        self.progress.console.print(message, soft_wrap=True)

    def bar(self, description: str, total: float | None) -> Callable[[float], None]:
        task = self.progress.add_task(description, total=total)
        return lambda done: self.progress.update(task, completed=done)

    def bars(self, totals: dict[str, tuple[str, float]]) -> Callable[[str, int], None]:
        updates = {stage: self.bar(text, total) for stage, (text, total) in totals.items()}
        return lambda stage, done: updates[stage](done)


def _datasets(
    args: argparse.Namespace, phases: _Phases
) -> tuple[Dataset, Dataset, Dataset, Any, Any]:
    model = load_model(REPO / "config" / "model.yaml")
    catalog = SchemaCatalog.load(REPO / "schemas")
    entity = model.entity(ENTITY)
    codec = catalog.codec(f"mdhub.{ENTITY}.CandidateChange")
    run_data = generate_run(
        entity,
        codec,
        catalog.codec(f"mdhub.{ENTITY}.Attributes"),
        args.records,
        max(1, round(args.latency_rate * args.latency_seconds)),
        update_fraction=args.update_fraction,
        seed=args.seed,
        on_progress=phases.bar(f"generating {args.records:,} changes", args.records),
    )
    return run_data.main, run_data.latency, run_data.warmup, model, codec


def _profile_summary(path: Path, console: Console, top: int = 30) -> None:
    if not path.exists():
        console.print(f"[yellow]no profile at {path} (the process did not exit cleanly)[/]")
        return
    text_path = path.with_suffix(".txt")
    with text_path.open("w") as handle:
        stats = pstats.Stats(str(path), stream=handle)
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
    console.print(f"profile of {path.stem}: {text_path}")


def run(
    args: argparse.Namespace, phases: _Phases, cleanup: ExitStack, results: dict[str, Any]
) -> None:
    """Run every phase, filling ``results``; everything started is registered with ``cleanup``."""
    namespace = "bench" + dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    results["namespace"] = namespace
    logs = OUT / "logs" / namespace
    work = OUT / "work" / namespace

    servers: dict[str, int | None] = {}
    if args.bootstrap:
        bootstrap, redis_url = args.bootstrap, args.redis_url
        stack_text, kafka_version = f"external ({bootstrap}, {redis_url})", "external (unknown)"
    else:
        stack = LocalStack(
            args.state_dir, args.kafka_port, args.controller_port, args.redis_port, phases.say
        )
        if not args.keep_stack:
            cleanup.callback(stack.down)
            # run first (last in, first out): this process's admin clients and offset readers
            # would log every reconnection attempt once Kafka is gone
            cleanup.callback(release_admins)
            cleanup.callback(close_readers)
        phases.say(f"starting the benchmark's stack in {args.state_dir}")
        bootstrap, redis_url = stack.up()
        servers = stack.pids()
        kafka_version = stack.settings.kafka_version
        stack_text = f"own local stack (Kafka {bootstrap} KRaft single node, Redis {redis_url})"
    settings = hub_settings(namespace, bootstrap, redis_url, args.partitions, work / "worker")
    client = redis.Redis.from_url(redis_url)
    cleanup.callback(client.close)
    results["machine"] = describe_machine(client, kafka_version)
    results["hub_source"] = hub_source(REPO / "src")

    data, latency_data, warmup, model, codec = _datasets(args, phases)
    results["parameters"] = {
        "records": args.records,
        "keys": data.keys,
        "updates": data.updates,
        "update_fraction": args.update_fraction,
        "attribute_bytes": round(data.attribute_bytes, 1),
        "value_bytes": round(data.value_bytes, 1),
        "seed": args.seed,
        "partitions": args.partitions,
        "stack": stack_text,
        "latency_rate": args.latency_rate,
        "latency_seconds": args.latency_seconds,
        "mdhub_overrides": passthrough_settings(),
        "profiled": args.profile,
    }

    if not args.keep_data:

        def forget() -> None:
            with suppress(Exception):  # best effort: scratch data only costs disk space
                RedisGoldenCache(client, namespace).clear(ENTITY)
            with suppress(Exception):
                delete_topics(settings.kafka, namespace)
            shutil.rmtree(work, ignore_errors=True)

        cleanup.callback(forget)

    if not args.skip_b0:
        phases.say("B0: bare confluent-kafka consume -> decode -> encode -> produce")
        b0 = run_baseline(
            settings.kafka,
            namespace,
            args.partitions,
            codec,
            data.messages,
            phases.bars(
                {
                    "publish": ("B0 publish input", args.records),
                    "loop": ("B0 consume-produce loop", args.records),
                }
            ),
        )
        results["b0"] = {**asdict(b0), "publish_rate": b0.publish_rate, "rate": b0.rate}
        phases.say(f"B0: {b0.rate:,.0f} records/s ({b0.loop_s:.1f} s)")
    if args.skip_throughput and args.skip_latency:
        return

    ensure_topics(settings.kafka, topic_specs(model, namespace, args.partitions, 1))
    work.mkdir(parents=True, exist_ok=True)  # faust creates the data dir, but not its parents
    env = hub_env(settings)
    profile_dir = OUT / "profile" / namespace if args.profile else None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    processes = [
        HubProcess.mdhub(
            name,
            command,
            env,
            logs,
            profile_dir / f"{name}.prof" if profile_dir is not None else None,
        )
        for name, command in (("worker", "worker"), ("projector", "project"))
    ]
    for proc in processes:
        cleanup.callback(proc.stop)
        proc.start()
    phases.say(
        f"hub: namespace {namespace}, worker pid {processes[0].pid}, projector pid "
        f"{processes[1].pid}, logs in {logs}"
    )
    warm_started = time.perf_counter()
    hub_dataset_runs: list[Dataset] = [warmup]
    producer = Producer(producer_config(settings.kafka))
    key, value = warmup.messages[0]
    producer.produce(topic_name(namespace, ENTITY, Stage.SOURCE), value, key)
    producer.flush(30)
    del producer  # destroyed now: alive when the stack stops, it logs every reconnection attempt
    wait_until_projected(client, settings, 1, processes, args.start_timeout)
    results["warmup_s"] = time.perf_counter() - warm_started
    phases.say(f"hub: worker and projector ready after {results['warmup_s']:.1f} s")

    pids = {**{proc.name: proc.pid for proc in processes}, **servers, "benchmark": os.getpid()}
    for child, command in child_processes(processes[0].pid).items():
        # the helper that prepares inputs ahead (mdhub.stream.ahead), and the resource tracker
        # that multiprocessing starts with it
        name = "worker's resource tracker" if "resource_tracker" in command else "worker helper"
        pids[name if name not in pids else f"{name} {child}"] = child
    if not args.skip_throughput:
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        worker_pid = processes[0].pid
        main_before = cpu_seconds(worker_pid, thread=worker_pid)
        hub = run_hub(
            settings,
            client,
            data,
            processes,
            args.stall_timeout,
            phases.bars(
                {
                    "publish": ("hub publish", args.records),
                    "projected": ("hub golden versions in Redis", data.expected_versions),
                }
            ),
        )
        hub_dataset_runs.append(data)
        results["hub"] = {**asdict(hub), "rate": hub.rate, "complete": hub.complete}
        results["hub"]["cpu_s"] = {
            name: round(after - before, 1)
            for name, pid in pids.items()
            if (before := cpu_before[name]) is not None and (after := cpu_seconds(pid)) is not None
        }
        main_after = cpu_seconds(worker_pid, thread=worker_pid)
        if main_before is not None and main_after is not None:
            # the thread of faust's event loop and the resolve agent: it bounds one worker
            results["hub"]["worker_main_thread_cpu_s"] = round(main_after - main_before, 1)
        if not hub.complete:
            missing = hub.expected_versions - hub.projected_versions
            results["notes"].append(
                f"the hub settled with {missing:,} of {hub.expected_versions:,} golden versions "
                "missing (the router, worker and projector groups had committed all their input): "
                "the end-to-end time runs to the last version that arrived, so it flatters the hub "
                "slightly"
            )
            phases.say(f"[bold red]hub: {missing:,} golden versions never reached Redis[/]")
        if "b0" in results:
            results["hub"]["ratio_to_b0"] = hub.rate / results["b0"]["rate"]
        phases.say(f"hub: {hub.rate:,.0f} records/s end to end ({hub.total_s:.1f} s); checking")
        check = verify(settings, client, hub_dataset_runs)
        results["hub"]["verification"] = {**asdict(check), "ok": check.ok}
        if not check.ok:
            phases.say(f"[bold red]hub checks FAILED[/]: {check}")

    if not args.skip_latency:
        phases.say(f"latency: {args.latency_rate:,.0f} new keys/s for {args.latency_seconds:g} s")
        lat = run_latency(
            settings,
            client,
            latency_data,
            args.latency_rate,
            processes,
            phases.bars(
                {
                    "sent": ("latency publish", len(latency_data.messages)),
                    "seen": ("latency seen in Redis", len(latency_data.messages)),
                }
            ),
            settled=lambda: groups_caught_up(settings),
            trace=args.latency_trace,
        )
        if args.latency_trace is not None:
            phases.say(f"latency: each record's times in {args.latency_trace}")
        results["latency"] = {**asdict(lat), "achieved_rate": lat.achieved_rate}
        if lat.seen < lat.sent:
            results["notes"].append(
                f"{lat.sent - lat.seen:,} of {lat.sent:,} records of the latency phase never "
                "reached Redis (the hub had committed all its input); percentiles are over the rest"
            )
        hub_rate = results.get("hub", {}).get("rate")
        if hub_rate and args.latency_rate > 0.8 * hub_rate:
            results["notes"].append(
                f"the latency rate ({args.latency_rate:,.0f}/s) is {args.latency_rate / hub_rate:.0%} "
                f"of the hub's measured throughput ({hub_rate:,.0f}/s): the latencies include "
                "queueing; try a lower --latency-rate for the unloaded figure"
            )
        phases.say(
            f"latency: p50 {lat.p50_ms:.1f} ms, p95 {lat.p95_ms:.1f} ms, p99 {lat.p99_ms:.1f} ms, "
            f"max {lat.max_ms:.1f} ms ({lat.seen:,} of {lat.sent:,} seen)"
        )

    for proc in processes:
        code = proc.stop()
        results.setdefault("exit_codes", {})[proc.name] = code
    results["log_problems"] = scan_logs([proc.log_path for proc in processes])
    results["logs"] = str(logs)
    if profile_dir is not None:
        for proc in processes:
            _profile_summary(profile_dir / f"{proc.name}.prof", phases.progress.console)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit code."""
    args = parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # a log file: room for the table
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "date": utc_now_text(),
        "command": " ".join(["python benchmarks/run.py", *(argv or sys.argv[1:])]).strip(),
        "load_average": {"start": " ".join(f"{x:.2f}" for x in load_average())},
        "notes": [],
    }
    code = 0
    cleanup = ExitStack()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    try:
        with progress:
            run(args, _Phases(progress), cleanup, results)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; stopping what the benchmark started[/]")
        code = 130
    except Exception as exc:  # the process edge: report, clean up, exit non-zero
        console.print(f"[bold red]benchmark failed:[/] {exc}", soft_wrap=True)
        code = 1
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            cleanup.close()
        except Exception as exc:
            console.print(f"[bold red]clean-up failed:[/] {exc}")
            code = code or 1
    results["load_average"]["end"] = " ".join(f"{x:.2f}" for x in load_average())
    busy = float(results["load_average"]["start"].split()[0])
    if busy > 0.5 * len(os.sched_getaffinity(0)):
        results["notes"].append(
            f"the machine was already busy when the benchmark started (load average {busy:.2f} "
            f"on {len(os.sched_getaffinity(0))} CPUs): other processes competed with every phase, "
            "so the figures are lower and noisier than on an idle machine"
        )
    results["duration_s"] = time.perf_counter() - started
    results["exit_code"] = code
    write_json(OUT / "last.json", results)
    if code != 0 or "machine" not in results:
        console.print(f"nothing written to RESULTS.md; partial results in {OUT / 'last.json'}")
        return code
    print_table(console, results)
    if args.profile or args.no_results:
        console.print(f"RESULTS.md left alone; figures in {OUT / 'last.json'}")
    else:
        update_results_md(RESULTS_MD, results)
        console.print(f"figures added to {RESULTS_MD}")
    console.print(f"the benchmark took {results['duration_s']:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
