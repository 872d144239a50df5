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
            "Serve golden records and cross-references from the Redis read views. "
            "A Redis that is down does not stop the API: it answers 503 until Redis is back."
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
        ConfigError: the Redis URL is invalid.
    """
    # Imported here so that `mdhub --help` and the other subcommands do not pay for them.
    import uvicorn

    from mdhub.api.app import create_app
    from mdhub.cache.views import RedisGoldenCache
    from mdhub.modelfile import load_model

    hub = load_model(settings.model_file)
    host: str = args.host if args.host is not None else settings.api.host
    port: int = args.port if args.port is not None else settings.api.port
    cache = RedisGoldenCache.from_url(
        settings.redis.url, settings.namespace, settings.redis.socket_timeout_s
    )
    try:
        try:
            cache.ping()
        except RedisUnavailableError as exc:
            print(f"warning: {exc}; the API answers 503 until it is back", file=sys.stderr)
        app = create_app(cache, hub.entities.keys())
        url = _url(host, port)
        print(f"mdhub API starting on {url} (docs: {url}/docs)", flush=True)
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        cache.close()
    return 0
