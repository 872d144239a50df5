"""Bring the local stack up, take it down, and say how it is."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace

from mdhub.errors import StackError
from mdhub.settings import StackSettings
from mdhub.stack import kafka, redis
from mdhub.stack.classpath import kafka_classpath
from mdhub.stack.process import Deadline
from mdhub.stack.status import Report, StackStatus, silent

__all__ = ["stack_down", "stack_status", "stack_up"]


@contextmanager
def _os_errors_as_stack_errors(settings: StackSettings) -> Iterator[None]:
    """Turn a file-system failure (full disk, permissions) into a StackError that says where."""
    try:
        yield
    except OSError as exc:
        raise StackError(
            f"the local stack could not use its files: {exc}. Check the state directory "
            f"{settings.state_dir.resolve()} (MDHUB_STACK__STATE_DIR)"
        ) from exc


@contextmanager
def _state_lock(settings: StackSettings, report: Report) -> Iterator[None]:
    """Serialise ``up`` and ``down`` on one state directory (two ``up`` would race for ports)."""
    state_dir = settings.state_dir.resolve()
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        handle = (state_dir / "stack.lock").open("a")
    except OSError as exc:
        raise StackError(
            f"cannot use the state directory {state_dir} ({exc}); choose another with "
            "MDHUB_STACK__STATE_DIR"
        ) from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report(f"waiting for another mdhub stack command on {state_dir}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stack_status(settings: StackSettings) -> StackStatus:
    """Report whether Kafka and Redis run and answer. Changes nothing.

    Args:
        settings: the stack settings (state directory and ports).

    Returns:
        The state of both servers.
    """
    return StackStatus(kafka=kafka.kafka_status(settings), redis=redis.redis_status(settings))


def stack_up(settings: StackSettings, report: Report | None = None) -> StackStatus:
    """Start Kafka (KRaft, one node) and Redis as detached processes and wait until both answer.

    Idempotent: servers that already run are left alone, so a second call returns at once. On
    failure, the servers this call started are stopped again.

    Args:
        settings: the stack settings.
        report: receives one line per step (fetching jars, formatting, starting, waiting).

    Returns:
        The state of both servers, both running and reachable, with the ones this call started
        in ``started``.

    Raises:
        StackError: a port is taken, a program is missing, or a server did not come up; the
            message says what to do and carries the server's last log lines.
    """
    report = report or silent
    with _state_lock(settings, report), _os_errors_as_stack_errors(settings):
        before = stack_status(settings)
        if before.ready:
            report("Kafka and Redis are already running")
            return before
        # Check everything that can fail cheaply before starting anything.
        if not before.kafka.running:
            kafka.check_kafka_ports(settings)
        if not before.redis.running:
            redis.check_redis_port(settings)
        redis_server = None if before.redis.running else redis.ensure_redis_server(settings, report)
        classpath = None if before.kafka.running else kafka_classpath(settings, report)

        deadline = Deadline(settings.start_timeout_s)
        started: list[str] = []
        try:
            kafka_pid = before.kafka.pid
            if classpath is not None:
                kafka_pid = kafka.launch_kafka(settings, classpath, deadline, report)
                started.append("kafka")
            # Redis starts in well under a second, so it comes up while the JVM boots.
            if redis_server is not None:
                redis_pid = redis.launch_redis(settings, redis_server, report)
                started.append("redis")
                redis.wait_redis_ready(settings, redis_pid, deadline)
            elif before.redis.pid is not None and not before.redis.reachable:
                redis.wait_redis_ready(settings, before.redis.pid, deadline)
            if kafka_pid is not None and not before.kafka.reachable:
                kafka.wait_kafka_ready(settings, kafka_pid, deadline, report)
        except BaseException:
            # Includes KeyboardInterrupt: a half-started stack is worse than none. The original
            # error is the one worth reading, so a failure to clean up does not replace it.
            with suppress(StackError):
                _stop(settings, started, silent)
            raise
        return replace(stack_status(settings), started=tuple(started))


def _stop(settings: StackSettings, names: list[str], report: Report) -> None:
    errors: list[str] = []
    for name, stop in (("kafka", kafka.stop_kafka), ("redis", redis.stop_redis)):
        if name in names:
            try:
                stop(settings, report)
            except StackError as exc:
                errors.append(str(exc))
    if errors:
        raise StackError("; ".join(errors))


def stack_down(
    settings: StackSettings,
    report: Report | None = None,
    only: Sequence[str] = ("kafka", "redis"),
) -> None:
    """Stop Kafka and Redis if they run (SIGTERM, then SIGKILL after a grace period).

    Idempotent: stopping a stopped stack does nothing. Data stays in the state directory.

    Args:
        settings: the stack settings.
        report: receives one line per server stopped.
        only: the servers to stop (``StackStatus.started`` stops what one ``stack_up`` started).

    Raises:
        StackError: a process could not be stopped.
    """
    report = report or silent
    with _state_lock(settings, report), _os_errors_as_stack_errors(settings):
        _stop(settings, list(only), report)
