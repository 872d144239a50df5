"""The ``mdhub`` command: the CLI's composition root."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from rich.markup import escape

from mdhub import __version__
from mdhub.commands.context import err_console
from mdhub.errors import ConfigError, MdhubError, UnavailableError
from mdhub.settings import load_settings

__all__ = ["main"]

EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every sub-command."""
    from mdhub.api import commands as api_commands
    from mdhub.commands import core, data, evaluate, generate, processes, reconcile, run, steward
    from mdhub.commands import explain as explain_command
    from mdhub.commands import lag as lag_command
    from mdhub.stack import commands as stack_commands

    parser = argparse.ArgumentParser(
        prog="mdhub",
        description=(
            "mdhub, a message-driven master data hub. Source systems publish candidate changes to "
            "Kafka; the hub validates and merges them into versioned golden records on a compacted "
            "topic, with read views in Redis. Settings come from MDHUB_* environment variables."
        ),
        epilog="Start with `mdhub run` (everything, with sample data) or `mdhub stack up`.",
    )
    parser.add_argument("--version", action="version", version=f"mdhub {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run.register(sub)
    stack_commands.register(sub)
    core.register(sub)
    processes.register(sub)
    api_commands.register(sub)
    data.register(sub)
    reconcile.register(sub)
    lag_command.register(sub)
    steward.register(sub)
    explain_command.register(sub)
    generate.register(sub)
    evaluate.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings()
        code = int(args.handler(args, settings))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except ConfigError as exc:
        err_console.print(f"[bold red]configuration error:[/] {escape(str(exc))}", soft_wrap=True)
        return EXIT_CONFIG
    except UnavailableError as exc:
        err_console.print(f"[bold red]unavailable:[/] {escape(str(exc))}", soft_wrap=True)
        err_console.print("This is retryable: start the servers (`mdhub stack up`) and try again.")
        return EXIT_UNAVAILABLE
    except MdhubError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return EXIT_ERROR
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
