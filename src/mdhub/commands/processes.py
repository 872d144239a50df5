"""``mdhub worker`` and ``mdhub project``: the long-running processes of the hub."""

from __future__ import annotations

import argparse
import logging
import signal
from typing import Any

from mdhub.commands.context import Context
from mdhub.errors import ConfigError
from mdhub.kafka.admin import existing_topics
from mdhub.runtime import tune_gc
from mdhub.settings import Settings
from mdhub.topology import topic_specs

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add ``worker`` and ``project``."""
    worker = sub.add_parser(
        "worker",
        help="run a stream worker (validate, merge, publish golden records)",
        description="Run a faust stream worker for every entity type: source topic -> validate -> "
        "merge -> golden, changes and rejected topics. Run more workers to scale out; they share "
        "the consumer group <namespace>-worker. Stop with Ctrl-C or SIGTERM.",
    )
    worker.add_argument(
        "--loglevel", default="warning", choices=["debug", "info", "warning", "error"]
    )
    worker.set_defaults(handler=run_worker)
    project = sub.add_parser(
        "project",
        help="project golden and changes topics into the Redis read views",
        description="Consume the golden and changes topics (group <namespace>-projector) and keep "
        "the Redis views (golden records, xrefs, history) current with version-guarded writes. "
        "Stop with Ctrl-C or SIGTERM.",
    )
    project.set_defaults(handler=run_project)


def _require_topics(ctx: Context) -> None:
    kafka = ctx.settings.kafka
    specs = topic_specs(
        ctx.model, ctx.settings.namespace, kafka.partitions, kafka.replication_factor
    )
    present = existing_topics(kafka)
    missing = [s.name for s in specs if s.name not in present]
    if missing:
        raise ConfigError(
            f"{len(missing)} topic(s) missing on {kafka.bootstrap_servers}, e.g. {missing[0]}; "
            "run `mdhub topics ensure` first"
        )
    wrong = [
        f"{s.name} has {present[s.name]}"
        for s in specs
        if present.get(s.name, s.partitions) != s.partitions
    ]
    if wrong:
        raise ConfigError(
            f"partition counts differ from MDHUB_KAFKA__PARTITIONS={kafka.partitions}: "
            + ", ".join(wrong[:3])
        )


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Start the faust worker (blocks until stopped)."""
    import mode.loop

    # uvloop halves the event loop's cost per message; the worker is CPU-bound on one core
    mode.loop.use("uvloop")
    import faust

    from mdhub.stream.app import create_app

    ctx = Context(settings)
    _require_topics(ctx)
    app = create_app(settings, ctx.model, ctx.catalog)
    ctx.console.print(
        f"mdhub worker: group {app.conf.id}, entities {', '.join(ctx.model.entities)}, "
        f"Kafka {settings.kafka.bootstrap_servers}"
    )
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True, redirect_stdouts=False)
    # faust's terminal spinner sets the root logger to DEBUG, which costs ~5% CPU in log records
    worker.spinner = None
    tune_gc()
    worker.execute_from_commandline()
    return 0


def run_project(args: argparse.Namespace, settings: Settings) -> int:
    """Run the projector (blocks until stopped)."""
    from mdhub.cache.projector import Projector
    from mdhub.cache.views import RedisGoldenCache

    ctx = Context(settings)
    _require_topics(ctx)
    cache = RedisGoldenCache.from_url(
        settings.redis.url, settings.namespace, settings.redis.socket_timeout_s
    )
    projector = Projector(settings, list(ctx.model.entities.values()), ctx.catalog, cache)

    def _stop(signum: int, frame: object) -> None:
        projector.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    logging.getLogger("mdhub.projector").setLevel(logging.INFO)
    tune_gc()
    ctx.console.print(
        f"mdhub projector: Kafka {settings.kafka.bootstrap_servers} -> {settings.redis.url}"
    )
    projector.run()
    ctx.console.print(
        f"projector stopped after {projector.consumed} messages ({projector.applied} views written)"
    )
    return 0
