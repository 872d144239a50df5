"""Describe the machine and software a benchmark ran on."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import confluent_kafka
import redis

__all__ = ["describe_machine", "hub_source", "load_average", "utc_now_text"]


def utc_now_text() -> str:
    """The current time as ``date -u`` prints it."""
    return dt.datetime.now(dt.UTC).strftime("%a %b %d %H:%M:%S UTC %Y")


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    return os.getloadavg()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_machine(client: redis.Redis, kafka_version: str) -> dict[str, Any]:
    """CPU, memory and the versions that matter to the figures."""
    try:
        redis_server = str(client.info("server").get("redis_version", "unknown"))
    except redis.RedisError:
        redis_server = "unknown"
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        # which build: interpreters of one version differ in speed (a distribution's is linked
        # statically and profile-optimised, a default pyenv build is neither)
        "python_binary": os.path.realpath(sys.executable),
        "kafka": kafka_version,
        "redis_server": redis_server,
        "confluent_kafka": _version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "faust_streaming": _version("faust-streaming"),
        "aiokafka": _version("aiokafka"),
        "fastavro": _version("fastavro"),
        "redis_py": _version("redis"),
    }


def hub_source(src: Path) -> dict[str, str]:
    """Identify the hub's code that was measured: a digest of every ``.py`` under ``src`` and the
    most recently modified file (the tree may hold uncommitted work)."""
    digest = hashlib.sha256()
    newest, newest_mtime = "", 0.0
    for path in sorted(src.rglob("*.py")):
        data = path.read_bytes()
        digest.update(str(path.relative_to(src)).encode() + b"\0" + data + b"\0")
        mtime = path.stat().st_mtime
        if mtime > newest_mtime:
            newest, newest_mtime = str(path.relative_to(src)), mtime
    changed = dt.datetime.fromtimestamp(newest_mtime, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return {"sha256": digest.hexdigest()[:16], "newest_file": newest, "newest_change": changed}
