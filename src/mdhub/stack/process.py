"""Detached server processes: pid files, start-up that outlives the caller, readiness and stop.

The servers are started in their own session (``start_new_session``) so that they keep running
after ``mdhub stack up`` exits and ignore the terminal's Ctrl-C. A pid file names each one; the pid
is only trusted when ``/proc/<pid>/cmdline`` still carries a marker of ours, so a recycled pid is
never signalled.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mdhub.errors import StackError

__all__ = [
    "LOOPBACK",
    "Deadline",
    "check_port_free",
    "is_running",
    "log_tail",
    "port_open",
    "process_alive",
    "read_pid",
    "remove_pid",
    "start_detached",
    "stop_process",
    "wait_for_port",
    "write_pid",
]

LOOPBACK = "127.0.0.1"

# Popen objects of the servers this Python process started. Holding them lets us reap a child that
# exits (otherwise it lingers as a zombie that still answers kill(pid, 0)) and keeps Popen.__del__
# from complaining about a child that is meant to outlive us.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class Deadline:
    """A point in monotonic time that several waits share."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.remaining() <= 0.0


def read_pid(path: Path) -> int | None:
    """Read a pid file.

    Args:
        path: the pid file.

    Returns:
        The pid, or ``None`` when the file is missing, empty or not a positive integer.
    """
    try:
        text = path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    return pid if pid > 0 else None


def write_pid(path: Path, pid: int) -> None:
    """Write ``pid`` to ``path`` atomically (a reader never sees a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{pid}\n", encoding="ascii")
    tmp.replace(path)


def remove_pid(path: Path) -> None:
    """Remove a pid file if it exists."""
    path.unlink(missing_ok=True)


def _proc_state(pid: int) -> str | None:
    """The one-letter state from ``/proc/<pid>/stat``, or ``None`` without procfs or process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain ") ".
    _, _, rest = stat.rpartition(")")
    fields = rest.split()
    return fields[0] if fields else None


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie that has exited counts as dead)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _CHILDREN[pid]
            return False
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists but belongs to someone else
    return _proc_state(pid) not in {"Z", "X"}


def _cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", errors="replace")


def is_running(pid: int | None, marker: str) -> bool:
    """Whether ``pid`` is alive and still the process we started.

    Args:
        pid: the pid from our pid file, or ``None``.
        marker: a string our server's command line contains (checked where ``/proc`` exists, so
            that a pid the kernel has recycled for another program is not mistaken for ours).
    """
    if pid is None or not process_alive(pid):
        return False
    cmdline = _cmdline(pid)
    return cmdline is None or marker in cmdline


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_port_free(port: int, setting: str, server: str) -> None:
    """Raise unless ``port`` can be bound on the loopback interface.

    Args:
        port: the TCP port a server is about to listen on.
        setting: the environment variable that chooses this port, named in the error.
        server: what wants the port (for the message).

    Raises:
        StackError: another process holds the port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR so that a port in TIME_WAIT (a server we just stopped) counts as free, as it
        # does for the servers themselves; a listening socket still makes bind() fail.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise StackError(f"cannot check {LOOPBACK}:{port} for {server}: {exc}") from exc
            raise StackError(
                f"{server} cannot listen on {LOOPBACK}:{port}: the port is already in use by "
                f"another process (not one mdhub started). Stop that process or choose another "
                f"port, e.g. {setting}={_suggest_port(port)}"
            ) from exc


def _suggest_port(taken: int) -> int:
    for candidate in range(taken + 1, min(taken + 100, 65536)):
        if not port_open(candidate, timeout=0.05):
            return candidate
    return taken + 1


def start_detached(
    argv: Sequence[str],
    *,
    cwd: Path,
    output: Path,
    pid_file: Path,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start a server that outlives this process; write its pid file.

    Args:
        argv: the command line.
        cwd: the working directory of the server.
        output: file that receives the server's stdout and stderr (truncated first).
        pid_file: where the pid is written.
        env: the environment; the current one when ``None``.

    Returns:
        The pid.

    Raises:
        StackError: the program could not be executed.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as out:
        try:
            child = subprocess.Popen(
                list(argv),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                start_new_session=True,
            )
        except OSError as exc:
            raise StackError(f"cannot run {argv[0]}: {exc}") from exc
    _CHILDREN[child.pid] = child
    write_pid(pid_file, child.pid)
    return child.pid


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def wait_for_port(
    port: int,
    *,
    pid: int,
    deadline: Deadline,
    on_death: Callable[[], StackError],
    host: str = LOOPBACK,
) -> bool:
    """Wait until ``host:port`` accepts connections, racing against the death of ``pid``.

    Args:
        port: the port the server opens when it is ready.
        pid: the server's pid.
        deadline: when to give up.
        on_death: builds the error to raise when the process exits first (with its log tail).
        host: the address to connect to.

    Returns:
        ``True`` when the port opened, ``False`` when the deadline passed first.

    Raises:
        StackError: the one ``on_death`` builds, when the process exits before the port opens.
    """
    delay = 0.05
    while not deadline.expired():
        if not process_alive(pid):
            raise on_death()
        if port_open(port, host, timeout=min(0.5, max(0.05, deadline.remaining()))):
            return True
        time.sleep(min(delay, deadline.remaining()))
        delay = min(delay * 1.5, 0.5)
    return False


def _wait_exit(pid: int, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not process_alive(pid):
            return True
        time.sleep(0.05)
    return not process_alive(pid)


def stop_process(pid: int, *, grace_s: float = 20.0) -> bool:
    """Stop a server: SIGTERM, wait up to ``grace_s``, then SIGKILL.

    Args:
        pid: the server's pid (the caller has checked it is ours).
        grace_s: how long a clean shutdown may take.

    Returns:
        ``True`` when the process exited on SIGTERM, ``False`` when it had to be killed.

    Raises:
        StackError: the process cannot be signalled or survives SIGKILL.
    """
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    except PermissionError as exc:
        raise StackError(f"not allowed to stop process {pid}: {exc}") from exc
    if _wait_exit(pid, grace_s):
        return True
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    if not _wait_exit(pid, 5.0):
        raise StackError(f"process {pid} survived SIGKILL; stop it by hand (kill -9 {pid})")
    return False
