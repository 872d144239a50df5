"""Where a benchmark runs: its own local stack (or given servers) and the hub's processes.

Everything started here is stopped by the caller's ``ExitStack``, also on Ctrl-C or an error.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mdhub.errors import StackError
from mdhub.settings import KafkaSettings, RedisSettings, Settings, StackSettings, WorkerSettings
from mdhub.stack import stack_down, stack_status, stack_up
from mdhub.stack.kafka import kafka_paths

__all__ = [
    "HubProcess",
    "LocalStack",
    "child_processes",
    "cpu_seconds",
    "hub_env",
    "hub_settings",
    "passthrough_settings",
]

REPO = Path(__file__).resolve().parent.parent

# Settings the benchmark decides for its processes; every other MDHUB_* variable of the caller's
# environment is passed through to them (e.g. MDHUB_WORKER__BATCH_SIZE for an experiment).
_OWN = (
    "MDHUB_NAMESPACE",
    "MDHUB_KAFKA__BOOTSTRAP_SERVERS",
    "MDHUB_REDIS__URL",
    "MDHUB_WORKER__DATA_DIR",
    "MDHUB_KAFKA__PARTITIONS",
    "MDHUB_MODEL",
    "MDHUB_SCHEMAS_DIR",
)


def passthrough_settings() -> dict[str, str]:
    """The caller's ``MDHUB_*`` variables that reach the hub's processes unchanged."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("MDHUB_") and k not in _OWN}


def cpu_seconds(pid: int | None, thread: int | None = None) -> float | None:
    """CPU time (user + system) a live process has used, from ``/proc``: all its threads, or
    the one whose id is ``thread`` (the process id names its main thread)."""
    if pid is None:
        return None
    where = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        stat = Path(where).read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_processes(pid: int | None) -> dict[int, str]:
    """The live processes whose parent is ``pid``, with their command lines (from ``/proc``)."""
    if pid is None:
        return {}
    found: dict[int, str] = {}
    for entry in sorted(Path("/proc").iterdir(), key=lambda p: p.name):
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # ended meanwhile
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # field 4: the parent's id
            found[int(entry.name)] = command
    return found


class LocalStack:
    """A Kafka and Redis of the benchmark's own, in their own state directory and ports.

    Args:
        state_dir: the stack's files (configuration, data, logs).
        kafka_port: Kafka's client port; the KRaft controller uses ``controller_port``.
        redis_port: Redis's port.
        report: receives progress lines.
    """

    def __init__(
        self,
        state_dir: Path,
        kafka_port: int,
        controller_port: int,
        redis_port: int,
        report: Callable[[str], None],
    ) -> None:
        self.settings = StackSettings(
            state_dir=state_dir,
            kafka_port=kafka_port,
            kafka_controller_port=controller_port,
            redis_port=redis_port,
        )
        self.report = report
        self.started = False

    def up(self) -> tuple[str, str]:
        """Start the stack (a running one is reused); return ``(bootstrap, redis_url)``.

        A broker it starts starts empty. Each run deletes its own topics at its end, but an
        interrupted run leaves them, and deleted ones linger as ``-delete`` directories until the
        broker removes them, a minute after it starts: during the next run. One state directory
        held 454 directories named after earlier runs' ``bench*`` namespaces, more of test and
        profiling runs, and 210 of deleted topics not yet removed.
        """
        status = stack_status(self.settings)
        self.started = not status.ready
        if not status.kafka.running and not status.kafka.reachable:
            data = kafka_paths(self.settings).data_dir
            if data.exists():
                self.report(f"emptying {data} (topics of earlier runs)")
                shutil.rmtree(data)
        for attempt in range(4):
            try:
                status = stack_up(self.settings, self.report)
                return status.bootstrap_servers, status.redis_url
            except StackError as exc:
                # The default ports lie in Linux's ephemeral range: a client connection of another
                # process may hold one for a moment. Anything else is a real failure.
                if "already in use" not in str(exc) or attempt == 3:
                    raise
                self.report(f"{exc}; trying again in 5 s")
                time.sleep(5)
        raise AssertionError("unreachable")

    def down(self) -> None:
        """Stop the stack if :meth:`up` started it (one found running is left running)."""
        if self.started:
            stack_down(self.settings, self.report)
            self.started = False

    def pids(self) -> dict[str, int | None]:
        """The server processes (for CPU accounting)."""
        status = stack_status(self.settings)
        return {"kafka": status.kafka.pid, "redis": status.redis.pid}


def hub_settings(
    namespace: str, bootstrap: str, redis_url: str, partitions: int, data_dir: Path
) -> Settings:
    """The settings the hub's processes will read (built here for the benchmark's own clients)."""
    return Settings(
        namespace=namespace,
        model_file=REPO / "config" / "model.yaml",
        schemas_dir=REPO / "schemas",
        kafka=KafkaSettings(bootstrap_servers=bootstrap, partitions=partitions),
        redis=RedisSettings(url=redis_url),
        worker=WorkerSettings(data_dir=data_dir),
    )


def hub_env(settings: Settings) -> dict[str, str]:
    """The environment of a hub process: the caller's, with the benchmark's settings on top."""
    env = {k: v for k, v in os.environ.items() if k not in _OWN}
    env.update(
        {
            "MDHUB_NAMESPACE": settings.namespace,
            "MDHUB_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "MDHUB_REDIS__URL": settings.redis.url,
            "MDHUB_WORKER__DATA_DIR": str(settings.worker.data_dir),
            "MDHUB_KAFKA__PARTITIONS": str(settings.kafka.partitions),
            "MDHUB_MODEL": str(settings.model_file),
            "MDHUB_SCHEMAS_DIR": str(settings.schemas_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@dataclass
class HubProcess:
    """One ``python -m mdhub <command>`` child, logging to a file.

    It runs in a session of its own, so a Ctrl-C in the terminal reaches only the benchmark,
    which then stops it in order (SIGTERM, then SIGKILL after a grace period).
    """

    name: str
    argv: Sequence[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @classmethod
    def mdhub(
        cls,
        name: str,
        command: str,
        env: dict[str, str],
        log_dir: Path,
        profile_to: Path | None = None,
    ) -> HubProcess:
        """A hub command; with ``profile_to``, run under cProfile writing stats there on exit."""
        prefix = [sys.executable]
        if profile_to is not None:
            prefix += ["-m", "cProfile", "-o", str(profile_to)]
        return cls(name, [*prefix, "-m", "mdhub", command], env, log_dir / f"{name}.log")

    def start(self) -> None:
        """Start the process."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            list(self.argv),
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int | None:
        """The process id, once started."""
        return self.process.pid if self.process is not None else None

    def check_alive(self) -> None:
        """Raise ``RuntimeError`` with the end of the log if the process has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"the {self.name} exited with code {self.process.returncode}; "
                f"last lines of {self.log_path}:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 25) -> str:
        """The last lines of the log."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 20.0) -> int | None:
        """SIGTERM, wait up to ``grace_s``, then SIGKILL its process group; return the exit code."""
        proc = self.process
        if proc is None:
            return None
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(grace_s)
                except subprocess.TimeoutExpired:
                    # Our child leads its own session, so its process group is its pid.
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
            return proc.returncode
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def wait_exit(self, timeout_s: float) -> bool:
        """Wait for the process to exit by itself; return whether it did."""
        if self.process is None:
            return True
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return True
            time.sleep(0.1)
        return False
