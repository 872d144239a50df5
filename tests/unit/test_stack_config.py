"""The local stack without servers: configuration files, ids, pid files, ports, install decisions."""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mdhub.stack
from mdhub.errors import StackError
from mdhub.settings import Settings, StackSettings
from mdhub.stack import (
    ServerStatus,
    StackStatus,
    commands,
    kafka,
    kafka_classpath,
    process,
    redis,
    stack_status,
    stack_up,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _settings(tmp_path: Path, **overrides: Any) -> StackSettings:
    ports = {
        "kafka_port": _free_port(),
        "kafka_controller_port": _free_port(),
        "redis_port": _free_port(),
    }
    return StackSettings(state_dir=tmp_path / "state", **(ports | overrides))


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


@pytest.fixture
def listener() -> Iterator[int]:
    """A port held by a listening socket of this test (a 'foreign' process for mdhub)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _wait_until(condition: Any, seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


# --- public surface ---------------------------------------------------------------------------


def test_public_surface_is_exactly_all() -> None:
    assert sorted(mdhub.stack.__all__) == [
        "Report",
        "ServerStatus",
        "StackStatus",
        "kafka_classpath",
        "stack_down",
        "stack_status",
        "stack_up",
    ]
    for name in mdhub.stack.__all__:
        assert hasattr(mdhub.stack, name), name


# --- server.properties and log4j ----------------------------------------------------------------


def test_server_properties_describe_a_single_kraft_node(tmp_path: Path) -> None:
    settings = StackSettings(
        state_dir=tmp_path / "st", kafka_port=19500, kafka_controller_port=19501
    )
    props = _properties(kafka.render_server_properties(settings))

    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19501"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19500,CONTROLLER://127.0.0.1:19501"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19500"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert props["log.dirs"] == str((tmp_path / "st").resolve() / "kafka" / "data")
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["offsets.topic.num.partitions"] == "4"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["transaction.state.log.num.partitions"] == "4"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.cleaner.backoff.ms"] == "1000"
    assert props["num.partitions"] == "1"


def test_server_properties_escape_paths_for_java(tmp_path: Path) -> None:
    settings = StackSettings(state_dir=tmp_path / "dir\\with ü")
    text = kafka.render_server_properties(settings)

    text.encode("ascii")  # Java reads .properties as ISO-8859-1: everything else is escaped
    log_dirs = _properties(text)["log.dirs"]
    assert "dir\\\\with \\u00fc" in log_dirs


def _launch_argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> list[str]:
    """The command line launch_kafka would start (storage already formatted, nothing started)."""
    settings = StackSettings(state_dir=tmp_path / "st", **overrides)
    paths = kafka.kafka_paths(settings)
    paths.data_dir.mkdir(parents=True)
    (paths.data_dir / "meta.properties").write_text("formatted\n")
    started: list[list[str]] = []

    def start(argv: list[str], **kwargs: Any) -> int:
        started.append(argv)
        return 4242

    monkeypatch.setattr(kafka, "find_java", lambda: "/opt/java/bin/java")
    monkeypatch.setattr(kafka, "start_detached", start)
    pid = kafka.launch_kafka(settings, "a.jar:b.jar", process.Deadline(10), lambda line: None)
    assert pid == 4242
    return started[0]


def test_the_broker_jvm_gets_the_heap_and_the_quick_compiler_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = _launch_argv(tmp_path, monkeypatch)

    assert argv[0] == "/opt/java/bin/java"
    assert argv[1:4] == ["-Xms512m", "-Xmx1g", "-XX:TieredStopAtLevel=1"]
    assert argv[-2:] == [
        "kafka.Kafka",
        str(kafka.kafka_paths(StackSettings(state_dir=tmp_path / "st")).config),
    ]


def test_broker_jvm_options_are_configurable_and_may_be_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = _launch_argv(tmp_path, monkeypatch, kafka_jvm_options="-XX:+AlwaysPreTouch -Dx='a b'")
    assert argv[3:5] == ["-XX:+AlwaysPreTouch", "-Dx=a b"]

    plain = _launch_argv(tmp_path / "plain", monkeypatch, kafka_jvm_options="")
    assert not any(a.startswith("-XX:Tiered") for a in plain)


def test_unbalanced_quotes_in_jvm_options_name_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(StackError, match="MDHUB_STACK__KAFKA_JVM_OPTIONS"):
        _launch_argv(tmp_path, monkeypatch, kafka_jvm_options="-Dx='open")


def test_log4j_writes_one_file_into_kafka_logs_dir() -> None:
    props = _properties(kafka.render_log4j_properties())

    assert props["log4j.rootLogger"] == "INFO, server"
    assert props["log4j.appender.server.File"] == "${kafka.logs.dir}/server.log"


# --- cluster id --------------------------------------------------------------------------------


def test_new_cluster_id_is_22_chars_of_unpadded_urlsafe_base64_of_a_uuid() -> None:
    ids = {kafka.new_cluster_id() for _ in range(500)}

    assert len(ids) == 500
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id), cluster_id
        assert not cluster_id.startswith("-")  # the storage tool would read it as an option
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_cluster_id_is_generated_once_and_kept(tmp_path: Path) -> None:
    paths = kafka.kafka_paths(StackSettings(state_dir=tmp_path))

    first = kafka.load_cluster_id(paths)
    second = kafka.load_cluster_id(paths)

    assert first == second
    assert paths.cluster_id_file.read_text().strip() == first


def test_a_corrupt_cluster_id_is_reported(tmp_path: Path) -> None:
    paths = kafka.kafka_paths(StackSettings(state_dir=tmp_path))
    paths.root.mkdir(parents=True)
    paths.cluster_id_file.write_text("not-an-id\n")

    with pytest.raises(StackError, match="not a Kafka cluster id"):
        kafka.load_cluster_id(paths)


# --- pid files and processes -------------------------------------------------------------------


def test_pid_file_round_trip(tmp_path: Path) -> None:
    pid_file = tmp_path / "sub" / "x.pid"

    assert process.read_pid(pid_file) is None
    process.write_pid(pid_file, 4242)
    assert process.read_pid(pid_file) == 4242
    assert pid_file.read_text() == "4242\n"
    process.remove_pid(pid_file)
    assert not pid_file.exists()
    process.remove_pid(pid_file)  # removing twice is fine


@pytest.mark.parametrize("content", ["", "abc", "-5", "0", "12 13", "\xff"])
def test_unreadable_pid_file_means_no_pid(tmp_path: Path, content: str) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(content, encoding="latin-1")

    assert process.read_pid(pid_file) is None


def test_is_running_checks_the_command_line_marker() -> None:
    me = os.getpid()
    own_cmdline = Path(f"/proc/{me}/cmdline").read_bytes().replace(b"\0", b" ").decode()

    assert process.is_running(me, own_cmdline.split()[0])
    assert not process.is_running(me, "kafka.Kafka /nowhere/server.properties")
    assert not process.is_running(None, "anything")


def test_an_exited_child_that_nobody_reaped_counts_as_dead() -> None:
    child = subprocess.Popen(["true"])
    try:
        # It stays a zombie (kill(pid, 0) still succeeds) until we wait for it.
        assert _wait_until(lambda: not process.process_alive(child.pid))
        assert Path(f"/proc/{child.pid}").exists()
    finally:
        child.wait()


def test_start_detached_then_stop(tmp_path: Path) -> None:
    pid_file = tmp_path / "sleep.pid"
    pid = process.start_detached(
        ["sleep", "60"], cwd=tmp_path, output=tmp_path / "sleep.out", pid_file=pid_file
    )

    assert process.read_pid(pid_file) == pid
    # right after the fork the child may not have exec'd `sleep` yet
    assert _wait_until(lambda: process.is_running(pid, "sleep"))
    assert os.getsid(pid) == pid  # its own session: the terminal's Ctrl-C does not reach it
    assert process.stop_process(pid, grace_s=10) is True
    assert not process.process_alive(pid)


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    output = tmp_path / "stubborn.out"
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    pid = process.start_detached(
        [sys.executable, "-c", code], cwd=tmp_path, output=output, pid_file=tmp_path / "s.pid"
    )
    assert _wait_until(lambda: "ready" in output.read_text())

    started = time.monotonic()
    assert process.stop_process(pid, grace_s=0.5) is False
    assert not process.process_alive(pid)
    assert time.monotonic() - started < 5


def test_log_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))

    assert process.log_tail(log, 3) == "line 97\nline 98\nline 99"
    assert process.log_tail(tmp_path / "missing.log") == ""


# --- ports --------------------------------------------------------------------------------------


def test_a_port_held_by_a_foreign_process_is_refused_with_the_setting_to_change(
    listener: int,
) -> None:
    with pytest.raises(StackError) as caught:
        process.check_port_free(listener, "MDHUB_STACK__KAFKA_PORT", "Kafka")

    message = str(caught.value)
    assert f"127.0.0.1:{listener}" in message
    assert "MDHUB_STACK__KAFKA_PORT=" in message


def test_a_free_port_passes_the_check() -> None:
    process.check_port_free(_free_port(), "MDHUB_STACK__KAFKA_PORT", "Kafka")


def test_up_refuses_a_kafka_port_taken_by_a_foreign_process(tmp_path: Path, listener: int) -> None:
    settings = _settings(tmp_path, kafka_port=listener)

    with pytest.raises(StackError, match=f"{listener}.*MDHUB_STACK__KAFKA_PORT"):
        stack_up(settings)

    assert not (settings.state_dir / "kafka" / "kafka.pid").exists()
    assert not (settings.state_dir / "redis" / "redis.pid").exists()


def test_up_refuses_a_controller_port_taken_by_a_foreign_process(
    tmp_path: Path, listener: int
) -> None:
    settings = _settings(tmp_path, kafka_controller_port=listener)

    with pytest.raises(StackError, match="MDHUB_STACK__KAFKA_CONTROLLER_PORT"):
        stack_up(settings)


def test_up_refuses_a_redis_port_taken_by_a_foreign_process(tmp_path: Path, listener: int) -> None:
    settings = _settings(tmp_path, redis_port=listener)

    with pytest.raises(StackError, match=f"{listener}.*MDHUB_STACK__REDIS_PORT"):
        stack_up(settings)

    assert not (settings.state_dir / "kafka" / "kafka.pid").exists()


def test_status_of_a_fresh_state_dir_is_stopped(tmp_path: Path, listener: int) -> None:
    settings = _settings(tmp_path, redis_port=listener)

    status = stack_status(settings)

    assert status.stopped and not status.ready
    assert status.kafka == ServerStatus(
        "kafka", False, None, f"127.0.0.1:{settings.kafka_port}", False, "not running"
    )
    assert not status.redis.running
    assert "used by another process" in status.redis.detail


def test_a_stale_pid_file_is_not_a_running_server(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    # Our own pid is alive, but it is not a Kafka broker of this state directory.
    process.write_pid(settings.state_dir / "kafka" / "kafka.pid", os.getpid())

    status = stack_status(settings).kafka

    assert not status.running
    assert status.pid is None
    assert "stale pid file" in status.detail


# --- jars ---------------------------------------------------------------------------------------


def _no_maven(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = __import__("shutil").which
    monkeypatch.setattr(
        "mdhub.stack.classpath.shutil.which",
        lambda name, *a, **k: None if name == "mvn" else real_which(name, *a, **k),
    )


def test_kafka_home_libs_are_used_instead_of_maven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_maven(monkeypatch)
    home = tmp_path / "kafka_2.13-3.9.2"
    (home / "libs").mkdir(parents=True)
    (home / "libs" / "kafka_2.13-3.9.2.jar").write_bytes(b"")

    from_setting = kafka_classpath(_settings(tmp_path, kafka_home=home))
    monkeypatch.setenv("KAFKA_HOME", str(home))
    from_env = kafka_classpath(_settings(tmp_path))

    assert from_setting == from_env == f"{home.resolve()}/libs/*"


def test_a_kafka_home_without_jars_is_reported(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="not a Kafka distribution"):
        kafka_classpath(_settings(tmp_path, kafka_home=tmp_path))


def test_missing_maven_says_to_install_it_or_set_kafka_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    _no_maven(monkeypatch)

    with pytest.raises(StackError, match=r"Install Maven.*KAFKA_HOME"):
        kafka_classpath(_settings(tmp_path))


def test_jars_fetched_once_are_not_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    settings = _settings(tmp_path, kafka_version="3.9.2")
    lib = settings.state_dir.resolve() / "kafka" / "lib" / "3.9.2"
    lib.mkdir(parents=True)
    (lib / ".mdhub-fetched").write_text("3.9.2\n")
    _no_maven(monkeypatch)  # a fetch would fail now
    reports: list[str] = []

    assert kafka_classpath(settings, reports.append) == f"{lib}/*"
    assert reports == []


def test_pom_template_names_the_runtime_dependencies() -> None:
    from importlib import resources

    pom = resources.files("mdhub.stack").joinpath("kafka-runtime.xml").read_text()

    assert "<packaging>pom</packaging>" in pom
    assert "<kafka.version>@KAFKA_VERSION@</kafka.version>" in pom
    for artifact in ("kafka_2.13", "kafka-tools", "slf4j-reload4j", "reload4j"):
        assert f"<artifactId>{artifact}</artifactId>" in pom


# --- redis-server discovery and installation ----------------------------------------------------


class _FakeRun:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append((argv, kwargs.get("env") or {}))
        return subprocess.CompletedProcess(argv, 0, "", "")


def _no_redis(monkeypatch: pytest.MonkeyPatch, *, root: bool, installs: bool = True) -> _FakeRun:
    found: list[str | None] = [None]
    fake = _FakeRun()

    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        if installs and argv[:2] == ["apt-get", "install"]:
            found[0] = "/usr/bin/redis-server"
        return fake(argv, **kwargs)

    monkeypatch.setattr(redis, "find_redis_server", lambda: found[0])
    monkeypatch.setattr("mdhub.stack.redis.os.geteuid", lambda: 0 if root else 1000)
    monkeypatch.setattr(
        "mdhub.stack.redis.shutil.which",
        lambda name, *a, **k: "/usr/bin/apt-get" if name == "apt-get" else None,
    )
    monkeypatch.setattr("mdhub.stack.redis.subprocess.run", run)
    return fake


def test_missing_redis_is_installed_with_apt_get_as_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _no_redis(monkeypatch, root=True)
    reports: list[str] = []

    binary = redis.ensure_redis_server(_settings(tmp_path), reports.append)

    assert binary == "/usr/bin/redis-server"
    assert [argv for argv, _ in fake.calls] == [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "redis-server"],
    ]
    assert all(env["DEBIAN_FRONTEND"] == "noninteractive" for _, env in fake.calls)
    assert any("installing" in line for line in reports)


@pytest.mark.parametrize("root,install_missing", [(False, True), (True, False)])
def test_missing_redis_that_cannot_be_installed_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: bool, install_missing: bool
) -> None:
    fake = _no_redis(monkeypatch, root=root)

    with pytest.raises(StackError, match=r"install redis-server \(e\.g\. apt-get install"):
        redis.ensure_redis_server(_settings(tmp_path, install_missing=install_missing), print)
    assert fake.calls == []


def test_an_install_that_yields_no_redis_server_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_redis(monkeypatch, root=True, installs=False)

    with pytest.raises(StackError, match="not on PATH"):
        redis.ensure_redis_server(_settings(tmp_path), print)


def test_redis_command_line_persists_nothing_and_has_64_databases(tmp_path: Path) -> None:
    settings = _settings(tmp_path, redis_port=16399)
    argv = redis.redis_argv(settings, "/usr/bin/redis-server")

    pairs = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert pairs == {
        "--port": "16399",
        "--bind": "127.0.0.1",
        "--dir": str(settings.state_dir.resolve() / "redis"),
        "--save": "",
        "--appendonly": "no",
        "--daemonize": "no",
        "--databases": "64",
    }


# --- status values and the command group --------------------------------------------------------


def test_stack_status_json_view() -> None:
    status = StackStatus(
        kafka=ServerStatus("kafka", True, 10, "127.0.0.1:9", True, "ready"),
        redis=ServerStatus("redis", True, 11, "127.0.0.1:8", False, "running but not answering"),
    )

    assert not status.ready
    assert status.to_dict()["redis_url"] == "redis://127.0.0.1:8/0"
    assert status.to_dict()["kafka"]["pid"] == 10


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mdhub")
    commands.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_stack_command_group_has_up_down_status() -> None:
    parser = _parser()

    for name in ("up", "down", "status"):
        args = parser.parse_args(["stack", name])
        assert callable(args.handler)
    assert parser.parse_args(["stack", "status", "--json"]).json is True
    with pytest.raises(SystemExit):
        parser.parse_args(["stack"])


def test_status_command_prints_json_and_fails_when_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(stack=_settings(tmp_path))
    args = _parser().parse_args(["stack", "status", "--json"])

    code = args.handler(args, settings)

    printed = json.loads(capsys.readouterr().out)
    assert code == 1
    assert printed["ready"] is False
    assert printed["kafka"]["running"] is False
    assert printed["bootstrap_servers"] == f"127.0.0.1:{settings.stack.kafka_port}"


def test_down_on_a_stopped_stack_is_harmless(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(stack=_settings(tmp_path))
    args = _parser().parse_args(["stack", "down"])

    assert args.handler(args, settings) == 0
    assert "nothing was running" in capsys.readouterr().out
