"""``mdhub api``: the API process's composition root."""

from __future__ import annotations

import argparse
import sys

from mdhub.errors import RedisUnavailableError
from mdhub.settings import Settings

__all__ = ["register", "run_api"]


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 1..65535, got {port}")
    return port


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``api`` subcommand to the ``mdhub`` command line."""
    parser = subparsers.add_parser(
        "api",
        help="serve the REST read API",
        description=(
            "Serve golden records, cross-references, match explanations and the review queue from "
            "the Redis read views; take steward commands (accept/reject a potential match, link, "
            "split, merge...) and send them to the commands topic; serve consumer lag as "
            "Prometheus metrics on /metrics and a live dashboard on /dashboard. A Redis or Kafka "
            "that is down does not stop the API: it answers 503 until they are back; /readyz "
            "checks Redis and Kafka."
        ),
    )
    parser.add_argument(
        "--host", default=None, help="interface to listen on (default: MDHUB_API__HOST)"
    )
    parser.add_argument(
        "--port", type=_port, default=None, help="port to listen on (default: MDHUB_API__PORT)"
    )
    parser.set_defaults(handler=run_api)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run_api(args: argparse.Namespace, settings: Settings) -> int:
    """Load the model, connect the read views and serve the API until interrupted.

    Raises:
        ModelError: the entity-model file is invalid.
        SchemaError: the schema directory lacks the steward-command schema.
        ConfigError: the Redis URL is invalid.
    """
    # Imported here so that `mdhub --help` and the other subcommands do not pay for them.
    import uvicorn

    from mdhub.api.app import create_app
    from mdhub.api.dashboard import DashboardSampler, create_dashboard_router
    from mdhub.cache.views import RedisGoldenCache
    from mdhub.kafka.lag import check_worker
    from mdhub.modelfile import load_model
    from mdhub.ops.monitor import LagMonitor
    from mdhub.serde.catalog import SchemaCatalog
    from mdhub.stewarding import CommandSender

    hub = load_model(settings.model_file)
    # steward commands; the producer connects on the first command, so Kafka may be down now
    send_command = CommandSender.from_settings(
        settings,
        SchemaCatalog.load(settings.schemas_dir),
        timeout_s=settings.kafka.request_timeout_s,
    )
    host: str = args.host if args.host is not None else settings.api.host
    port: int = args.port if args.port is not None else settings.api.port
    cache = RedisGoldenCache.from_url(
        settings.redis.url, settings.namespace, settings.redis.socket_timeout_s
    )
    # consumer lag for /metrics, sampled in a background thread from start-up on
    monitor = LagMonitor.for_kafka(
        settings.kafka,
        settings.namespace,
        window_s=settings.api.lag_window_s,
        interval_s=settings.api.lag_interval_s,
    )
    monitor.start()
    # the dashboard's stage-topic rates, Kafka and Redis health and lag history (its own thread)
    sampler = DashboardSampler.for_hub(
        settings.kafka,
        settings.namespace,
        hub.entities.keys(),
        cache.ping,
        read_lag=monitor.report,
        count_reviews=lambda entity: cache.list_reviews(entity, offset=0, limit=1)[0],
    )
    sampler.start()
    try:
        try:
            cache.ping()
        except RedisUnavailableError as exc:
            print(f"warning: {exc}; the API answers 503 until it is back", file=sys.stderr)
        app = create_app(
            cache,
            hub.entities.keys(),
            ops=monitor,
            worker_check=lambda: check_worker(settings.kafka, settings.namespace),
            send_command=send_command,
        )
        app.include_router(create_dashboard_router(sampler, monitor))
        url = _url(host, port)
        print(
            f"mdhub API starting on {url} (docs: {url}/docs, dashboard: {url}/dashboard)",
            flush=True,
        )
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        sampler.stop()
        monitor.stop()
        cache.close()
    return 0
