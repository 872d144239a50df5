"""``mdhub run``: the whole hub on this machine, with sample data, in one command."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from rich.markup import escape

from mdhub.commands.context import Context
from mdhub.errors import KafkaUnavailableError, MdhubError, StackError
from mdhub.kafka.admin import ensure_topics
from mdhub.naming import Stage, topic_name
from mdhub.settings import Settings, load_settings
from mdhub.stream.exits import RESTARTABLE
from mdhub.topology import topic_specs

__all__ = ["register"]

SAMPLE_DIR = Path("config/sample")


def register(sub: Any) -> None:
    """Add ``run``."""
    run = sub.add_parser(
        "run",
        help="start everything locally (Kafka, Redis, topics, worker, projector, API) with sample data",
        description="Start the local stack (no Docker), ensure topics, run a worker, the projector "
        "and the API as child processes, publish the sample data of config/sample/ (a customer "
        "known to all three sources, updates, a delete and bad records) and a generated data set "
        "with known duplicates (`mdhub generate`), and print where to look. Ctrl-C (or SIGTERM, "
        "SIGHUP) stops it all, with the Kafka and Redis it started (unless --keep-stack); "
        "servers that ran before are left running.",
    )
    run.add_argument(
        "--sample-dir",
        type=Path,
        default=SAMPLE_DIR,
        help="sample files: <entity>.<source>.{jsonl,csv}",
    )
    run.add_argument("--no-sample", action="store_true", help="do not publish sample data")
    run.add_argument(
        "--people",
        type=int,
        default=300,
        help="people in the generated customer data set published with the samples (0: none; "
        "default 300)",
    )
    run.add_argument(
        "--keep-stack", action="store_true", help="leave Kafka and Redis running on exit"
    )
    run.add_argument(
        "--exit-after-sample",
        action="store_true",
        help="stop everything once the sample data is visible in the API (for scripted checks)",
    )
    run.set_defaults(handler=run_all)


log = logging.getLogger("mdhub.run")


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]
    args: list[str]
    env: dict[str, str]


def _spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> _Child:
    log = log_dir / f"{name}.log"
    handle = log.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mdhub", *args],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return _Child(name, proc, log, handle, args, env)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _check_alive(children: list[_Child]) -> None:
    """Restart a child that exited with a restartable code; raise when one exited otherwise."""
    for i, child in enumerate(children):
        code = child.proc.poll()
        if code is None:
            continue
        if code in RESTARTABLE:  # restarted, as a supervisor's restart policy would
            child.handle.close()
            log.warning("the %s exited (%s); restarting it", child.name, RESTARTABLE[code])
            children[i] = _spawn(child.name, child.args, child.env, child.log.parent)
            continue
        raise StackError(
            f"the {child.name} exited with code {code}; last lines of {child.log}:\n{_tail(child.log)}"
        )


def _stop_children(children: list[_Child], grace: float = 20.0) -> None:
    for child in children:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()
        child.handle.close()


def _samples(sample_dir: Path, ctx: Context) -> list[tuple[str, str, Path]]:
    found = []
    for path in sorted(sample_dir.glob("*.*.*")):
        entity, source = path.name.split(".")[:2]
        if entity in ctx.model.entities and path.suffix in (".jsonl", ".csv"):
            found.append((entity, source, path))
    return found


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Stop ``mdhub run`` as Ctrl-C does: children and stack stopped, not left behind."""


@contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """Turn SIGTERM (a process manager, ``kill``) and SIGHUP (the terminal closed) into the
    KeyboardInterrupt of Ctrl-C while the hub runs, so its clean-up runs for them too; the
    previous handlers come back afterwards."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_all(args: argparse.Namespace, settings: Settings) -> int:
    """Run the hub until Ctrl-C (or SIGTERM, SIGHUP)."""
    with _stopped_by_signals():
        return _run_all(args, settings)


def _run_all(args: argparse.Namespace, settings: Settings) -> int:
    from mdhub.cache.views import RedisGoldenCache
    from mdhub.kafka.admin import release_admins
    from mdhub.kafka.offsets import close_readers
    from mdhub.stack import stack_down, stack_up

    ctx = Context(settings)
    console = ctx.console
    ctx.model  # noqa: B018 - a bad model stops start-up before anything is started
    ctx.catalog  # noqa: B018
    console.rule("mdhub")
    status = stack_up(settings.stack, report=lambda line: console.print(f"  {escape(line)}"))
    env = {
        **os.environ,
        "MDHUB_KAFKA__BOOTSTRAP_SERVERS": status.bootstrap_servers,
        "MDHUB_REDIS__URL": status.redis_url,
    }
    os.environ.update(env)
    settings = load_settings()
    ctx = Context(settings, console)
    children: list[_Child] = []
    try:
        specs = topic_specs(
            ctx.model,
            settings.namespace,
            settings.kafka.partitions,
            settings.kafka.replication_factor,
        )
        with console.status("ensuring topics"):
            reports = ensure_topics(settings.kafka, specs)
        created = sum(r.action == "created" for r in reports)
        console.print(f"  topics: {len(reports)} in the registry, {created} created")
        log_dir = settings.stack.state_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        children = [
            _spawn("worker", ["worker", "--loglevel", "info"], env, log_dir),
            _spawn("projector", ["project"], env, log_dir),
            _spawn("api", ["api"], env, log_dir),
        ]
        console.print(f"  started worker, projector and API (logs in {escape(str(log_dir))})")
        cache = RedisGoldenCache.from_url(
            settings.redis.url, settings.namespace, settings.redis.socket_timeout_s
        )
        examples: list[tuple[str, str, str]] = []
        if not args.no_sample:
            examples = _publish_samples(args, ctx, children)
            _wait_for_views(ctx, children)
        api = f"http://{settings.api.host}:{settings.api.port}"
        console.rule("mdhub is running")
        console.print(f"API            {api}   (OpenAPI docs: {api}/docs)", soft_wrap=True)
        console.print(f"Dashboard      {api}/dashboard   (lag, throughput, health)", soft_wrap=True)
        console.print(f"Kafka          {status.bootstrap_servers}    Redis {status.redis_url}")
        shown = 0
        for entity, source, key in examples:
            golden_id = cache.get_xref(entity, source, key)
            if shown < 6 and golden_id is not None:
                doc = cache.get_golden(entity, golden_id) or {}
                refs = sorted({s["source"] for s in doc.get("sources", ()) if not s["deleted"]})
                console.print(
                    f"{source}:{key:8} {api}/v1/{entity}/golden/{golden_id}  ({' + '.join(refs)})",
                    soft_wrap=True,
                )
                shown += 1
        if examples:
            entity, source, key = examples[0]
            golden_id = cache.get_xref(entity, source, key)
            if golden_id is not None:
                console.print(
                    f"explain        {api}/v1/{entity}/golden/{golden_id}/explain", soft_wrap=True
                )
                console.print(
                    f"history        {api}/v1/{entity}/golden/{golden_id}/history", soft_wrap=True
                )
        console.print(f"review queue   {api}/v1/customer/review   (mdhub steward review customer)")
        first = next(iter(ctx.model.entities))
        console.print(f"tail golden    mdhub tail --entity {first} --from-beginning")
        console.print(f"tail changes   mdhub tail --entity {first} --changes --from-beginning")
        console.print(f"tail rejects   mdhub tail --entity {first} --rejected --from-beginning")
        console.print(f"publish        mdhub publish --entity {first} --source crm FILE.jsonl")
        if args.exit_after_sample:
            return 0
        console.print("Press Ctrl-C to stop.")
        while True:
            _check_alive(children)
            time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("stopping ...")
        return 0
    finally:
        _stop_children(children)
        # this process's Kafka clients would log every reconnection attempt once Kafka is gone
        close_readers()
        release_admins()
        if args.keep_stack:
            console.print("  Kafka and Redis left running (`mdhub stack down` stops them)")
        else:
            if status.started:
                stack_down(
                    settings.stack,
                    report=lambda line: console.print(f"  {escape(line)}"),
                    only=status.started,
                )
            if before := [
                name for name in ("Kafka", "Redis") if name.lower() not in status.started
            ]:
                console.print(
                    f"  {' and '.join(before)} ran before `mdhub run` started: left running "
                    "(`mdhub stack down` stops them)"
                )
        console.print("stopped")


def _generated(people: int, ctx: Context) -> list[tuple[str, str, Path]]:
    """Generate a customer data set with known duplicates into .mdhub/generated/."""
    from mdhub.testdata import Difficulty, generate

    out = Path(".mdhub/generated")
    data = generate(ctx.entity("customer"), people, Difficulty.preset("default"), seed=7)
    paths = data.write(out, "customer")
    ctx.console.print(
        f"  generated {len(data.records)} customer records of {people} people into {out}/ "
        "(true entities in customer.truth.csv)"
    )
    found = []
    for path in paths:
        entity, source = path.name.split(".")[:2]
        if source in ctx.entity(entity).sources and path.suffix in (".jsonl", ".csv"):
            found.append((entity, source, path))
    return found


def _publish_samples(
    args: argparse.Namespace, ctx: Context, children: list[_Child]
) -> list[tuple[str, str, str]]:
    from mdhub.kafka.producer import HubProducer
    from mdhub.publishing import parse_records, read_file
    from mdhub.serde.generate import fullname

    samples = _samples(args.sample_dir, ctx)
    if args.people > 0 and "customer" in ctx.model.entities:
        samples += _generated(args.people, ctx)
    if not samples:
        ctx.console.print(f"  no sample files in {escape(str(args.sample_dir))}")
        return []
    producer = HubProducer(ctx.settings.kafka)
    examples: list[tuple[str, str, str]] = []
    for entity_name, source, path in samples:
        entity = ctx.entity(entity_name)
        codec = ctx.catalog.codec(fullname(entity_name, "CandidateChange"))
        parsed = parse_records(entity, source, read_file(path), codec)
        if parsed.errors:
            raise MdhubError(f"{path}: " + "; ".join(str(e) for e in parsed.errors[:5]))
        topic = topic_name(ctx.settings.namespace, entity_name, Stage.SOURCE)
        for _, change, value in parsed.changes:
            producer.produce(topic, change.source_ref.encode(), value)
            if path.parent == args.sample_dir:
                examples.append((entity_name, source, change.source_key))
        producer.deliver_all(60.0)
        ctx.console.print(
            f"  published {len(parsed.changes)} {entity_name} change(s) from {escape(str(path))}"
        )
    _check_alive(children)
    return list(dict.fromkeys(examples))


def _wait_for_views(ctx: Context, children: list[_Child]) -> None:
    """Wait until the worker has processed every source message and the projector has caught up."""
    from mdhub.kafka.lag import group_lag
    from mdhub.naming import group_name

    ns, kafka = ctx.settings.namespace, ctx.settings.kafka
    stages = [
        *(
            (
                group_name(ns, f"router-{e}"),
                [topic_name(ns, e, Stage.SOURCE), topic_name(ns, e, Stage.COMMANDS)],
            )
            for e in ctx.model.entities
        ),
        (group_name(ns, "worker"), [topic_name(ns, e, Stage.RESOLVE) for e in ctx.model.entities]),
        (
            group_name(ns, "projector"),
            [
                topic_name(ns, e, s)
                for e in ctx.model.entities
                for s in (Stage.GOLDEN, Stage.CHANGES)
            ],
        ),
    ]
    deadline = time.monotonic() + 180
    with ctx.console.status(
        "waiting for the worker and the projector to process the sample data"
    ) as status:
        while time.monotonic() < deadline:
            _check_alive(children)
            try:
                lags = {
                    group: sum(group_lag(kafka, group, topics).values()) for group, topics in stages
                }
            except KafkaUnavailableError as exc:  # a busy broker may time out: ask again
                status.update(f"waiting: {exc}")
                time.sleep(1.0)
                continue
            if not any(lags.values()):
                return
            status.update("waiting: " + ", ".join(f"{g} lag {n}" for g, n in lags.items()))
            time.sleep(0.5)
    ctx.console.print(
        "[yellow]the sample data has not been fully processed yet; see the worker log[/]"
    )
