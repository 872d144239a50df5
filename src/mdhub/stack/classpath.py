"""Kafka's jars: from a Kafka distribution (``KAFKA_HOME``) or fetched once from Maven Central.

Maven resolves ``kafka-runtime.xml`` (the broker, the CLI tools and a logging backend) and copies
the jars into ``<state_dir>/kafka/lib/<version>/``; a marker file written after a successful copy
means later runs fetch nothing. Maven's own cache (``~/.m2``) makes a second state directory cheap.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from mdhub.errors import StackError
from mdhub.settings import StackSettings
from mdhub.stack.status import Report, silent

__all__ = ["find_java", "kafka_classpath", "kafka_lib_dir"]

_TEMPLATE = "kafka-runtime.xml"
_PLACEHOLDER = "@KAFKA_VERSION@"
_MARKER = ".mdhub-fetched"
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+-]*$")
_FETCH_TIMEOUT_S = 900.0


def _kafka_home(settings: StackSettings) -> Path | None:
    if settings.kafka_home is not None:
        return settings.kafka_home
    env = os.environ.get("KAFKA_HOME", "").strip()
    return Path(env) if env else None


def kafka_lib_dir(settings: StackSettings) -> Path:
    """The directory whose ``*.jar`` files make up Kafka's classpath (it may not exist yet).

    ``<kafka_home>/libs`` when ``settings.kafka_home`` (or else ``$KAFKA_HOME``) is set, otherwise
    ``<state_dir>/kafka/lib/<kafka_version>``.
    """
    home = _kafka_home(settings)
    if home is not None:
        return home.expanduser().resolve() / "libs"
    return settings.state_dir.resolve() / "kafka" / "lib" / settings.kafka_version


def kafka_classpath(settings: StackSettings, report: Report | None = None) -> str:
    """Kafka's classpath as a ``java -cp`` wildcard, fetching the jars first if needed.

    The same jars run the broker and Kafka's CLI tools (for instance
    ``org.apache.kafka.tools.consumer.group.ConsumerGroupCommand``).

    Args:
        settings: the stack settings (``kafka_home``, ``kafka_version``, ``state_dir``).
        report: receives a progress line when jars are fetched.

    Returns:
        ``'<dir>/*'``, to pass as one argument after ``-cp``.

    Raises:
        StackError: the distribution has no jars, Maven is missing, or the fetch failed.
    """
    report = report or silent
    lib = kafka_lib_dir(settings)
    home = _kafka_home(settings)
    if home is not None:
        if not any(lib.glob("kafka_*.jar")):
            source = "MDHUB_STACK__KAFKA_HOME" if settings.kafka_home is not None else "KAFKA_HOME"
            raise StackError(
                f"{lib} holds no kafka_*.jar: {source}={home} is not a Kafka distribution. "
                f"Point {source} at an unpacked Kafka (the directory containing libs/), or unset "
                f"it to fetch Kafka {settings.kafka_version} from Maven Central"
            )
        return f"{lib}/*"
    if _fetched_version(lib) != settings.kafka_version:
        try:
            _fetch_jars(settings, lib, report)
        except OSError as exc:
            raise StackError(
                f"cannot prepare {lib} for Kafka's jars: {exc}. Check the state directory "
                "(MDHUB_STACK__STATE_DIR)"
            ) from exc
    return f"{lib}/*"


def _fetched_version(lib: Path) -> str | None:
    try:
        return (lib / _MARKER).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _fetch_jars(settings: StackSettings, lib: Path, report: Report) -> None:
    version = settings.kafka_version
    if not _VERSION.match(version):
        raise StackError(
            f"MDHUB_STACK__KAFKA_VERSION={version!r} is not a version number (e.g. 3.9.2)"
        )
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "Maven (mvn) is not installed, and it is needed to fetch Kafka's jars from Maven "
            "Central. Install Maven (e.g. apt-get install maven), or set KAFKA_HOME (or "
            "MDHUB_STACK__KAFKA_HOME) to an unpacked Kafka distribution"
        )
    report(f"fetching Kafka {version} jars from Maven Central (first run only)")
    # A partial copy (an earlier fetch that failed) must not mix with this one.
    if lib.exists():
        shutil.rmtree(lib)
    lib.mkdir(parents=True)
    pom = lib.parent / f"kafka-runtime-{version}.pom.xml"
    template = resources.files("mdhub.stack").joinpath(_TEMPLATE).read_text(encoding="utf-8")
    pom.write_text(template.replace(_PLACEHOLDER, version), encoding="utf-8")
    argv = [
        mvn,
        "-B",
        "-q",
        "-Dstyle.color=never",
        "-f",
        str(pom),
        _DEPENDENCY_PLUGIN,
        "-DincludeScope=runtime",
        f"-DoutputDirectory={lib}",
    ]
    try:
        done = subprocess.run(
            argv,
            cwd=lib.parent,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_FETCH_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(
            f"fetching Kafka {version} jars with Maven took over {_FETCH_TIMEOUT_S:.0f} s; check "
            "network access to Maven Central (or a mirror in ~/.m2/settings.xml) and retry, or "
            "set KAFKA_HOME to an unpacked Kafka distribution"
        ) from exc
    if done.returncode != 0 or not any(lib.glob("kafka_*.jar")):
        output = "\n".join((done.stdout + done.stderr).strip().splitlines()[-30:])
        raise StackError(
            f"Maven could not fetch Kafka {version} (exit {done.returncode}); is the version "
            f"right (MDHUB_STACK__KAFKA_VERSION) and Maven Central reachable? Command: "
            f"{' '.join(argv)}\n{output}"
        )
    (lib / _MARKER).write_text(version + "\n", encoding="utf-8")


def find_java() -> str:
    """The ``java`` executable: ``$JAVA_HOME/bin/java``, else ``java`` on ``PATH``.

    Raises:
        StackError: no Java runtime was found.
    """
    java_home = os.environ.get("JAVA_HOME", "").strip()
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise StackError(
            "java is not installed; Kafka needs a Java 17+ runtime. Install one (e.g. apt-get "
            "install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    return found
