"""A single-node Apache Kafka broker in KRaft combined mode, run as a detached ``java`` process.

Everything lives under ``<state_dir>/kafka/``::

    server.properties   log4j.properties   cluster-id   kafka.pid   kafka.out
    data/               the log directory (topics and the KRaft metadata log)
    logs/               server.log
    lib/<version>/      the jars (see :mod:`mdhub.stack.classpath`)
"""

from __future__ import annotations

import base64
import logging
import re
import shlex
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException

from mdhub.errors import StackError
from mdhub.kafka.admin import shared_admin
from mdhub.settings import StackSettings
from mdhub.stack.classpath import find_java
from mdhub.stack.process import (
    LOOPBACK,
    Deadline,
    check_port_free,
    is_running,
    log_tail,
    port_open,
    read_pid,
    remove_pid,
    start_detached,
    stop_process,
    wait_for_port,
)
from mdhub.stack.status import Report, ServerStatus

__all__ = [
    "KafkaPaths",
    "check_kafka_ports",
    "kafka_paths",
    "kafka_status",
    "launch_kafka",
    "load_cluster_id",
    "new_cluster_id",
    "render_log4j_properties",
    "render_server_properties",
    "stop_kafka",
    "wait_kafka_ready",
]

_LOG = logging.getLogger(__name__)
_CLUSTER_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{21}$")
_STOP_GRACE_S = 20.0


@dataclass(frozen=True, slots=True)
class KafkaPaths:
    """Where the broker keeps its files (absolute paths)."""

    root: Path

    @property
    def config(self) -> Path:
        """``server.properties``."""
        return self.root / "server.properties"

    @property
    def log4j(self) -> Path:
        """``log4j.properties``."""
        return self.root / "log4j.properties"

    @property
    def data_dir(self) -> Path:
        """``log.dirs``: topic partitions and the metadata log."""
        return self.root / "data"

    @property
    def logs_dir(self) -> Path:
        """The broker's own logs (``server.log``)."""
        return self.root / "logs"

    @property
    def server_log(self) -> Path:
        """The main broker log."""
        return self.logs_dir / "server.log"

    @property
    def output(self) -> Path:
        """The JVM's stdout and stderr."""
        return self.root / "kafka.out"

    @property
    def pid_file(self) -> Path:
        """The broker's pid."""
        return self.root / "kafka.pid"

    @property
    def cluster_id_file(self) -> Path:
        """The cluster id, generated once."""
        return self.root / "cluster-id"


def kafka_paths(settings: StackSettings) -> KafkaPaths:
    """The broker's files for these settings."""
    return KafkaPaths(settings.state_dir.resolve() / "kafka")


def _address(settings: StackSettings) -> str:
    return f"{LOOPBACK}:{settings.kafka_port}"


def _marker(paths: KafkaPaths) -> str:
    # The broker's command line ends with its config file, unique to this state directory.
    return str(paths.config)


def _escape(value: str) -> str:
    """Escape a value for a Java ``.properties`` file (read as ISO-8859-1)."""
    if "\n" in value or "\r" in value:
        raise StackError(f"a line break cannot appear in a Kafka setting: {value!r}")
    out = []
    for ch in value.replace("\\", "\\\\"):
        code = ord(ch)
        if code < 0x80:
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:  # a surrogate pair, as Java's char is UTF-16
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    return "".join(out)


def render_server_properties(settings: StackSettings) -> str:
    """The broker's ``server.properties``: one node that is both broker and controller.

    Args:
        settings: ports and state directory.

    Returns:
        The file's text.
    """
    paths = kafka_paths(settings)
    port, ctrl = settings.kafka_port, settings.kafka_controller_port
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{LOOPBACK}:{ctrl}",
        "listeners": f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{ctrl}",
        # 127.0.0.1, not localhost: librdkafka may try ::1 first.
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(paths.data_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        # Internal topics must fit one node (the defaults of 3 and 2 leave the group and
        # transaction coordinators unavailable); few partitions make start-up fast.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "group.initial.rebalance.delay.ms": "0",
        # Compacted topics get cleaned within seconds (tests of tombstones and rebuilds).
        "log.cleaner.backoff.ms": "1000",
    }
    lines = [
        "# Written by `mdhub stack up` on every start; edits are overwritten.",
        "# Change ports with MDHUB_STACK__KAFKA_PORT / MDHUB_STACK__KAFKA_CONTROLLER_PORT.",
    ]
    lines += [f"{key}={_escape(value)}" for key, value in properties.items()]
    return "\n".join(lines) + "\n"


def render_log4j_properties() -> str:
    """The broker's log4j 1.x (reload4j) configuration: one rolling file in ``kafka.logs.dir``."""
    return (
        "# Written by `mdhub stack up`; kafka.logs.dir is set on the java command line.\n"
        "log4j.rootLogger=INFO, server\n"
        "log4j.appender.server=org.apache.log4j.RollingFileAppender\n"
        "log4j.appender.server.File=${kafka.logs.dir}/server.log\n"
        "log4j.appender.server.MaxFileSize=20MB\n"
        "log4j.appender.server.MaxBackupIndex=3\n"
        "log4j.appender.server.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.server.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        "log4j.logger.kafka.request.logger=WARN\n"
        "log4j.logger.state.change.logger=WARN\n"
        "log4j.logger.org.apache.kafka.clients=WARN\n"
    )


def new_cluster_id() -> str:
    """A new KRaft cluster id: a UUID4 as 22 characters of URL-safe base64, without padding.

    Like Kafka's own ids it never starts with ``-``, which the storage tool would read as an
    option.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text


def load_cluster_id(paths: KafkaPaths) -> str:
    """The cluster id kept in the state directory, created on first use.

    Raises:
        StackError: the stored id is not a valid cluster id.
    """
    try:
        stored = paths.cluster_id_file.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        stored = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise StackError(f"cannot read {paths.cluster_id_file}: {exc}") from exc
    if stored:
        if not _CLUSTER_ID.match(stored):
            raise StackError(
                f"{paths.cluster_id_file} holds {stored!r}, not a Kafka cluster id (22 characters "
                f"of URL-safe base64). Delete {paths.root} to start Kafka from scratch"
            )
        return stored
    cluster_id = new_cluster_id()
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.cluster_id_file.write_text(cluster_id + "\n", encoding="ascii")
    return cluster_id


def check_kafka_ports(settings: StackSettings) -> None:
    """Raise unless the client and controller ports are free.

    Raises:
        StackError: a port is held by another process; the message names the setting to change.
    """
    check_port_free(settings.kafka_port, "MDHUB_STACK__KAFKA_PORT", "Kafka")
    check_port_free(
        settings.kafka_controller_port, "MDHUB_STACK__KAFKA_CONTROLLER_PORT", "Kafka's controller"
    )


def _probe(settings: StackSettings, timeout: float) -> str | None:
    """Ask the broker for metadata; ``None`` when it answered, else why not."""
    if not port_open(settings.kafka_port, timeout=min(timeout, 0.5)):
        return f"nothing listens on {_address(settings)}"
    admin = shared_admin(  # one per address: probes time out while the broker starts
        {
            "bootstrap.servers": _address(settings),
            "socket.connection.setup.timeout.ms": max(1000, int(timeout * 1000)),
            # Route librdkafka's own log lines (connection refused...) away from stderr.
            "logger": _LOG,
        }
    )
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        return error.str() if isinstance(error, KafkaError) else str(error)
    if not metadata.brokers:
        return "the broker answered without any broker in its metadata"
    return None


def kafka_status(settings: StackSettings, *, timeout: float = 3.0) -> ServerStatus:
    """The broker's state: our process alive? does it answer a metadata request?

    Args:
        settings: the stack settings.
        timeout: seconds to wait for the metadata answer.
    """
    paths = kafka_paths(settings)
    pid = read_pid(paths.pid_file)
    running = is_running(pid, _marker(paths))
    if not running:
        if pid is not None:
            detail = f"not running (stale pid file {paths.pid_file})"
        elif port_open(settings.kafka_port):
            detail = f"not running; port {settings.kafka_port} is used by another process"
        else:
            detail = "not running"
        return ServerStatus("kafka", False, None, _address(settings), False, detail)
    problem = _probe(settings, timeout)
    detail = "ready" if problem is None else f"running but not answering: {problem}"
    return ServerStatus("kafka", True, pid, _address(settings), problem is None, detail)


def _write_config(settings: StackSettings, paths: KafkaPaths) -> None:
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    paths.logs_dir.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(render_server_properties(settings), encoding="latin-1")
    paths.log4j.write_text(render_log4j_properties(), encoding="latin-1")


def _jvm_logging(paths: KafkaPaths) -> list[str]:
    return [
        f"-Dlog4j.configuration={paths.log4j.as_uri()}",
        f"-Dkafka.logs.dir={paths.logs_dir}",
    ]


def _format_storage(
    settings: StackSettings, paths: KafkaPaths, java: str, classpath: str, deadline: Deadline
) -> None:
    argv = [
        java,
        "-Xmx256m",
        "-Djava.net.preferIPv4Stack=true",
        *_jvm_logging(paths),
        "-cp",
        classpath,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        load_cluster_id(paths),
        "-c",
        str(paths.config),
        "--ignore-formatted",
    ]
    try:
        done = subprocess.run(
            argv,
            cwd=paths.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=max(1.0, deadline.remaining()),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(
            f"formatting Kafka's storage did not finish within {deadline.seconds:.0f} s "
            "(MDHUB_STACK__START_TIMEOUT_S)"
        ) from exc
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).strip().splitlines()[-30:])
        raise StackError(
            f"formatting Kafka's storage in {paths.data_dir} failed (exit {done.returncode}). "
            f"If the directory was formatted by another cluster, delete {paths.root} and retry."
            f"\n{output}"
        )


def launch_kafka(
    settings: StackSettings, classpath: str, deadline: Deadline, report: Report
) -> int:
    """Write the configuration, format the storage once, and start the broker detached.

    The caller has checked the ports (:func:`check_kafka_ports`); readiness is
    :func:`wait_kafka_ready`'s job.

    Args:
        settings: the stack settings.
        classpath: Kafka's classpath (:func:`mdhub.stack.kafka_classpath`).
        deadline: bounds the storage format.
        report: receives progress lines.

    Returns:
        The broker's pid.

    Raises:
        StackError: Java is missing, the format failed or the JVM could not be started.
    """
    paths = kafka_paths(settings)
    java = find_java()
    _write_config(settings, paths)
    if not (paths.data_dir / "meta.properties").exists():
        report("formatting Kafka storage (KRaft)")
        _format_storage(settings, paths, java, classpath, deadline)
    try:
        heap = shlex.split(settings.kafka_heap)
    except ValueError as exc:
        raise StackError(f"MDHUB_STACK__KAFKA_HEAP={settings.kafka_heap!r}: {exc}") from exc
    try:
        options = shlex.split(settings.kafka_jvm_options)
    except ValueError as exc:
        raise StackError(
            f"MDHUB_STACK__KAFKA_JVM_OPTIONS={settings.kafka_jvm_options!r}: {exc}"
        ) from exc
    argv = [
        java,
        *heap,
        *options,
        "-XX:+UseG1GC",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.net.preferIPv4Stack=true",
        "-Djava.awt.headless=true",
        *_jvm_logging(paths),
        "-cp",
        classpath,
        "kafka.Kafka",
        str(paths.config),
    ]
    # Keep the previous run's log aside so that a start-up failure shows only this run's lines.
    if paths.server_log.exists():
        paths.server_log.replace(paths.server_log.with_name("server.log.previous"))
    report(f"starting Kafka on {_address(settings)}")
    return start_detached(argv, cwd=paths.root, output=paths.output, pid_file=paths.pid_file)


def _death_error(paths: KafkaPaths, what: str) -> StackError:
    if not is_running(read_pid(paths.pid_file), _marker(paths)):
        remove_pid(paths.pid_file)
    parts = [f"Kafka {what}."]
    output = log_tail(paths.output, 15)
    if output:
        parts.append(f"--- {paths.output} (last lines) ---\n{output}")
    server_log = log_tail(paths.server_log, 30)
    if server_log:
        parts.append(f"--- {paths.server_log} (last lines) ---\n{server_log}")
    return StackError("\n".join(parts))


def wait_kafka_ready(
    settings: StackSettings, pid: int, deadline: Deadline, report: Report
) -> ServerStatus:
    """Wait until the broker opens its client port and answers a metadata request.

    Args:
        settings: the stack settings.
        pid: the broker's pid; its death ends the wait with an error.
        deadline: when to give up.
        report: receives progress lines.

    Returns:
        The broker's status (running and reachable).

    Raises:
        StackError: the broker exited, or did not answer before the deadline (then it is
            stopped); the message carries the tail of its logs.
    """
    paths = kafka_paths(settings)
    started = time.monotonic()
    report(f"waiting for Kafka on {_address(settings)}")
    opened = wait_for_port(
        settings.kafka_port,
        pid=pid,
        deadline=deadline,
        on_death=lambda: _death_error(paths, "exited during start-up"),
    )
    problem: str | None = "its client port never opened"
    while opened and not deadline.expired():
        if not is_running(pid, _marker(paths)):
            raise _death_error(paths, "exited during start-up")
        problem = _probe(settings, timeout=min(5.0, max(0.5, deadline.remaining())))
        if problem is None:
            report(f"Kafka is ready ({time.monotonic() - started:.1f} s)")
            return ServerStatus("kafka", True, pid, _address(settings), True, "ready")
        time.sleep(min(0.2, deadline.remaining()))
    error = _death_error(
        paths,
        f"did not become ready within {deadline.seconds:.0f} s ({problem}); it was stopped. "
        "Raise MDHUB_STACK__START_TIMEOUT_S on a slow machine",
    )
    if is_running(pid, _marker(paths)):
        stop_process(pid, grace_s=5.0)
    remove_pid(paths.pid_file)
    raise error


def stop_kafka(settings: StackSettings, report: Report) -> None:
    """Stop the broker if it runs (SIGTERM, SIGKILL after a grace period); remove its pid file.

    Raises:
        StackError: the process could not be stopped.
    """
    paths = kafka_paths(settings)
    pid = read_pid(paths.pid_file)
    if pid is not None and is_running(pid, _marker(paths)):
        report(f"stopping Kafka (pid {pid})")
        if not stop_process(pid, grace_s=_STOP_GRACE_S):
            report(f"Kafka did not stop within {_STOP_GRACE_S:.0f} s and was killed")
    remove_pid(paths.pid_file)
