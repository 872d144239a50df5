"""The ``mdhub stack`` command group: ``up``, ``down`` and ``status``."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mdhub.errors import StackError
from mdhub.settings import Settings
from mdhub.stack.lifecycle import stack_down, stack_status, stack_up
from mdhub.stack.status import ServerStatus, StackStatus

__all__ = ["register"]

_STATE_HELP = (
    "Files (configuration, data, logs, pid files) live in MDHUB_STACK__STATE_DIR; ports come from "
    "MDHUB_STACK__KAFKA_PORT, MDHUB_STACK__KAFKA_CONTROLLER_PORT and MDHUB_STACK__REDIS_PORT."
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``stack`` command group to the ``mdhub`` parser.

    Each subcommand sets ``handler(args, settings) -> int`` (the exit code) as a default.

    Args:
        subparsers: the object ``add_subparsers()`` returned for the ``mdhub`` parser.
    """
    stack = subparsers.add_parser(
        "stack",
        help="run a local Kafka and Redis for development and tests (no Docker)",
        description=(
            "Run Apache Kafka (KRaft, one node) and Redis on this machine as background processes, "
            "without Docker. Kafka's jars are fetched once from Maven Central with mvn (or taken "
            "from KAFKA_HOME); redis-server is installed with apt-get when missing and allowed. "
            + _STATE_HELP
        ),
    )
    commands = stack.add_subparsers(dest="stack_command", metavar="COMMAND", required=True)

    up = commands.add_parser(
        "up",
        help="start Kafka and Redis and wait until both answer",
        description=(
            "Start Kafka and Redis in the background and wait until Kafka answers a metadata "
            "request and Redis answers PING (at most MDHUB_STACK__START_TIMEOUT_S). Servers that "
            "already run are left alone, so running it twice is harmless. " + _STATE_HELP
        ),
    )
    up.set_defaults(handler=_up)

    down = commands.add_parser(
        "down",
        help="stop Kafka and Redis",
        description=(
            "Stop the Kafka and Redis that 'mdhub stack up' started (SIGTERM, then SIGKILL after "
            "a grace period). Data stays in the state directory. Harmless when nothing runs."
        ),
    )
    down.set_defaults(handler=_down)

    status = commands.add_parser(
        "status",
        help="show whether Kafka and Redis run and answer",
        description=(
            "Show, for Kafka and Redis, whether the process runs, its pid and address, and "
            "whether it answers. Exit code 0 when both run and answer, 1 otherwise."
        ),
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(handler=_status)


def _fail(error: StackError) -> int:
    # soft_wrap: the message may end with log lines, which read better unbroken.
    Console(stderr=True).print(Text.assemble(("error: ", "bold red"), str(error)), soft_wrap=True)
    return 1


def _up(args: argparse.Namespace, settings: Settings) -> int:
    console = Console()
    try:
        with console.status("mdhub stack up", spinner="dots") as spinner:

            def report(message: str) -> None:
                console.print(Text.assemble(("• ", "cyan"), message))
                spinner.update(Text(message))

            status = stack_up(settings.stack, report=report)
    except StackError as exc:
        return _fail(exc)
    console.print(Text.assemble(("Kafka ", "bold"), status.bootstrap_servers))
    console.print(Text.assemble(("Redis ", "bold"), status.redis_url))
    _hint_settings(console, settings, status)
    return 0


def _hint_settings(console: Console, settings: Settings, status: StackStatus) -> None:
    """Point out settings that do not lead the hub to the stack just started."""
    hints = []
    if settings.kafka.bootstrap_servers != status.bootstrap_servers:
        hints.append(f"MDHUB_KAFKA__BOOTSTRAP_SERVERS={status.bootstrap_servers}")
    if not settings.redis.url.startswith(f"redis://{status.redis.address}/"):
        hints.append(f"MDHUB_REDIS__URL={status.redis_url}")
    if hints:
        console.print(
            Text("to use this stack, set: " + " ".join(hints), style="yellow"), soft_wrap=True
        )


def _down(args: argparse.Namespace, settings: Settings) -> int:
    console = Console()
    stopped: list[str] = []

    def report(message: str) -> None:
        stopped.append(message)
        console.print(Text.assemble(("• ", "cyan"), message))

    try:
        with console.status("mdhub stack down", spinner="dots"):
            stack_down(settings.stack, report=report)
    except StackError as exc:
        return _fail(exc)
    console.print("Kafka and Redis are stopped" if stopped else "nothing was running")
    return 0


def _yes_no(value: bool) -> Text:
    return Text("yes", style="green") if value else Text("no", style="red")


def _row(server: ServerStatus) -> list[str | Text]:
    state = Text("running", style="green") if server.running else Text("stopped", style="dim")
    return [
        server.name,
        state,
        "-" if server.pid is None else str(server.pid),
        server.address,
        _yes_no(server.reachable),
        server.detail,
    ]


def _status(args: argparse.Namespace, settings: Settings) -> int:
    status = stack_status(settings.stack)
    worker = _worker_state(settings, status.bootstrap_servers) if status.kafka.reachable else None
    if args.json:
        print(json.dumps({**status.to_dict(), "worker": worker}, indent=2))
    else:
        table = Table(title=f"mdhub stack ({settings.stack.state_dir.resolve()})")
        for column in ("server", "state", "pid", "address", "reachable", "detail"):
            table.add_column(column)
        table.add_row(*_row(status.kafka))
        table.add_row(*_row(status.redis))
        Console().print(table)
        if worker is not None:
            Console().print(
                f"stream workers (group {worker['group']}): {worker['state']}, "
                f"{worker['members']} member(s), {worker['assigned_partitions']} partition(s) assigned"
            )
    return 0 if status.ready else 1


def _worker_state(settings: Settings, bootstrap: str) -> dict[str, object] | None:
    """The hub's worker group as the readiness check sees it (None when it cannot be read)."""
    from mdhub.errors import MdhubError
    from mdhub.kafka.lag import group_assignment
    from mdhub.naming import group_name
    from mdhub.settings import KafkaSettings

    group = group_name(settings.namespace, "worker")
    kafka = KafkaSettings(bootstrap_servers=bootstrap, request_timeout_s=5)
    try:
        state, members, assigned = group_assignment(kafka, group, None)
    except MdhubError:
        return None
    return {"group": group, "state": state, "members": members, "assigned_partitions": assigned}
