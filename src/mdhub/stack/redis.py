"""A throw-away Redis server run as a detached ``redis-server`` process.

Nothing is persisted (``--save ""``, no AOF): the hub rebuilds its Redis views from Kafka. Files
live under ``<state_dir>/redis/`` (``redis.pid``, ``redis.log``). 64 databases let every test
take its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import redis as redis_py

from mdhub.errors import StackError
from mdhub.settings import StackSettings
from mdhub.stack.process import (
    LOOPBACK,
    Deadline,
    check_port_free,
    is_running,
    log_tail,
    port_open,
    process_alive,
    read_pid,
    remove_pid,
    start_detached,
    stop_process,
)
from mdhub.stack.status import Report, ServerStatus

__all__ = [
    "check_redis_port",
    "ensure_redis_server",
    "find_redis_server",
    "launch_redis",
    "redis_argv",
    "redis_status",
    "stop_redis",
    "wait_redis_ready",
]

_MARKER = "redis-server"
_FALLBACK = Path("/usr/bin/redis-server")
_APT_TIMEOUT_S = 900.0
_STOP_GRACE_S = 20.0
_HOW_TO_INSTALL = "install redis-server (e.g. apt-get install redis-server)"


def _root(settings: StackSettings) -> Path:
    return settings.state_dir.resolve() / "redis"


def _pid_file(settings: StackSettings) -> Path:
    return _root(settings) / "redis.pid"


def _log_file(settings: StackSettings) -> Path:
    return _root(settings) / "redis.log"


def _address(settings: StackSettings) -> str:
    return f"{LOOPBACK}:{settings.redis_port}"


def find_redis_server() -> str | None:
    """``redis-server`` on ``PATH``, else ``/usr/bin/redis-server``, else ``None``."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    if os.access(_FALLBACK, os.X_OK):
        return str(_FALLBACK)
    return None


def _apt_get(args: list[str], report: Report) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    argv = ["apt-get", *args]
    report("running " + " ".join(argv))
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=_APT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(f"{' '.join(argv)} failed ({exc}); {_HOW_TO_INSTALL}") from exc
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise StackError(
            f"{' '.join(argv)} failed (exit {done.returncode}); {_HOW_TO_INSTALL}\n{output}"
        )


def ensure_redis_server(settings: StackSettings, report: Report) -> str:
    """Find ``redis-server``, installing it with apt-get when allowed.

    It is installed only when ``settings.install_missing`` is true, this process runs as root and
    ``apt-get`` exists.

    Args:
        settings: the stack settings (``install_missing``).
        report: receives progress lines (the install is announced).

    Returns:
        The path of ``redis-server``.

    Raises:
        StackError: it is missing and cannot be installed; the message says how to install it.
    """
    found = find_redis_server()
    if found is not None:
        return found
    if not settings.install_missing:
        raise StackError(
            f"redis-server is not installed; {_HOW_TO_INSTALL}. (Automatic installation is off: "
            "MDHUB_STACK__INSTALL_MISSING=false)"
        )
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        why = "not running as root" if os.geteuid() != 0 else "apt-get is not available"
        raise StackError(
            f"redis-server is not installed and cannot be installed automatically ({why}); "
            f"{_HOW_TO_INSTALL}"
        )
    report("redis-server is missing: installing it with apt-get")
    _apt_get(["update", "-qq"], report)
    _apt_get(["install", "-y", "-qq", "redis-server"], report)
    found = find_redis_server()
    if found is None:
        raise StackError(f"apt-get installed redis-server but it is not on PATH; {_HOW_TO_INSTALL}")
    return found


def check_redis_port(settings: StackSettings) -> None:
    """Raise unless the Redis port is free.

    Raises:
        StackError: another process holds the port; the message names the setting to change.
    """
    check_port_free(settings.redis_port, "MDHUB_STACK__REDIS_PORT", "Redis")


def _ping(settings: StackSettings, timeout: float) -> str | None:
    """PING the server; ``None`` when it answered, else why not."""
    client = redis_py.Redis(
        host=LOOPBACK,
        port=settings.redis_port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    try:
        client.ping()
    except (redis_py.RedisError, OSError) as exc:
        return str(exc) or type(exc).__name__
    finally:
        client.close()
    return None


def redis_status(settings: StackSettings, *, timeout: float = 2.0) -> ServerStatus:
    """The server's state: our process alive? does it answer PING?

    Args:
        settings: the stack settings.
        timeout: seconds to wait for PONG.
    """
    pid = read_pid(_pid_file(settings))
    if pid is None or not is_running(pid, _MARKER):
        if pid is not None:
            detail = f"not running (stale pid file {_pid_file(settings)})"
        elif port_open(settings.redis_port):
            detail = f"not running; port {settings.redis_port} is used by another process"
        else:
            detail = "not running"
        return ServerStatus("redis", False, None, _address(settings), False, detail)
    problem = _ping(settings, timeout)
    detail = "ready" if problem is None else f"running but not answering: {problem}"
    return ServerStatus("redis", True, pid, _address(settings), problem is None, detail)


def redis_argv(settings: StackSettings, binary: str) -> list[str]:
    """The ``redis-server`` command line: loopback only, nothing persisted, 64 databases."""
    return [
        binary,
        "--port",
        str(settings.redis_port),
        "--bind",
        LOOPBACK,
        "--dir",
        str(_root(settings)),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--databases",
        "64",
    ]


def launch_redis(settings: StackSettings, binary: str, report: Report) -> int:
    """Start ``redis-server`` detached. The caller has checked the port (:func:`check_redis_port`).

    Returns:
        The server's pid.

    Raises:
        StackError: the program could not be executed.
    """
    root = _root(settings)
    root.mkdir(parents=True, exist_ok=True)
    report(f"starting Redis on {_address(settings)}")
    return start_detached(
        redis_argv(settings, binary),
        cwd=root,
        output=_log_file(settings),
        pid_file=_pid_file(settings),
    )


def _death_error(settings: StackSettings, what: str) -> StackError:
    tail = log_tail(_log_file(settings), 30)
    message = f"Redis {what}."
    if tail:
        message += f"\n--- {_log_file(settings)} (last lines) ---\n{tail}"
    return StackError(message)


def wait_redis_ready(settings: StackSettings, pid: int, deadline: Deadline) -> ServerStatus:
    """Wait until the server answers PING, racing against its death.

    Raises:
        StackError: it exited, or did not answer before the deadline (then it is stopped).
    """
    problem = "no answer yet"
    while not deadline.expired():
        if not process_alive(pid):
            remove_pid(_pid_file(settings))
            raise _death_error(settings, "exited during start-up")
        answer = _ping(settings, timeout=min(0.5, max(0.05, deadline.remaining())))
        if answer is None:
            return ServerStatus("redis", True, pid, _address(settings), True, "ready")
        problem = answer
        time.sleep(min(0.05, deadline.remaining()))
    error = _death_error(
        settings,
        f"did not answer PING within {deadline.seconds:.0f} s ({problem}); it was stopped",
    )
    if is_running(pid, _MARKER):
        stop_process(pid, grace_s=5.0)
    remove_pid(_pid_file(settings))
    raise error


def stop_redis(settings: StackSettings, report: Report) -> None:
    """Stop the server if it runs (SIGTERM, SIGKILL after a grace period); remove its pid file.

    Raises:
        StackError: the process could not be stopped.
    """
    pid = read_pid(_pid_file(settings))
    if pid is not None and is_running(pid, _MARKER):
        report(f"stopping Redis (pid {pid})")
        if not stop_process(pid, grace_s=_STOP_GRACE_S):
            report(f"Redis did not stop within {_STOP_GRACE_S:.0f} s and was killed")
    remove_pid(_pid_file(settings))
