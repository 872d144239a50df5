"""Show the figures, and keep them: ``benchmarks/out/last.json`` and ``benchmarks/RESULTS.md``.

RESULTS.md holds a "Latest run" section, replaced by every run, and a history table that gets one
row per run. Only measured values are written; a figure that was not measured shows as "-".
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_table", "scan_logs", "update_results_md", "write_json"]

_BEGIN = "<!-- bench:latest:begin -->"
_END = "<!-- bench:latest:end -->"
_HISTORY = "## History"
_HEADER = f"""# Benchmark results

Written by `python benchmarks/run.py` (`make bench`); see `python benchmarks/run.py --help` for
what each figure measures. Every figure here was measured by that script on the machine named
with it; nothing is edited by hand. The raw figures of the last run are in
`benchmarks/out/last.json` (not committed).

- **B0**: a bare confluent-kafka loop in one Python thread: consume, fastavro decode, fastavro
  encode, produce (idempotent, `acks=all`). No domain logic, state or Redis: the ceiling.
- **Hub end to end**: one `mdhub worker` (its router thread orders the source partitions into the
  resolve topic, its agent resolves identity and merges, its helper process parses phone numbers
  ahead of the agent) and one `mdhub project` process; from the
  first publish of the dataset to the moment the last golden version of every key is in Redis. The
  dataset holds no duplicates: every key is a golden record of its own.
- **Latency**: new keys published at a fixed rate; time from each publish to its golden version
  being readable in Redis.

## Latest run

{_BEGIN}
{_END}

{_HISTORY}

| date (UTC) | machine | load at start | hub code | changes | B0 rec/s | hub rec/s | hub/B0 | latency rate | p50 ms | p95 ms | p99 ms | max ms | checks |
| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
"""

_PROBLEM = re.compile(r"\b(ERROR|CRITICAL|Traceback|WARNING|Exception)\b")


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:,.{digits}f}"


def _get(results: dict[str, Any], *path: str) -> Any:
    node: Any = results
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x08\r]")
_STAMP = re.compile(r"^\[[^\]]*\] \[\d+\] ")
_NUMBER = re.compile(r"\d+(\.\d+)?")


def scan_logs(paths: list[Path], limit: int = 12) -> dict[str, Any]:
    """Count the warning/error lines of the hub's logs, by kind (numbers masked as N)."""
    found: dict[str, Any] = {}
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        kinds: dict[str, int] = {}
        examples: dict[str, str] = {}
        for raw in lines:
            line = _ANSI.sub("", raw).strip()
            if not _PROBLEM.search(line):
                continue
            kind = _NUMBER.sub("N", _STAMP.sub("", line))
            kinds[kind] = kinds.get(kind, 0) + 1
            examples.setdefault(kind, line)
        ordered = sorted(kinds.items(), key=lambda item: -item[1])[:limit]
        found[path.name] = {
            "lines": sum(kinds.values()),
            "kinds": [{"count": n, "example": examples[k]} for k, n in ordered],
        }
    return found


def write_json(path: Path, results: dict[str, Any]) -> None:
    """Write the results as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")


def _ceilings(results: dict[str, Any], hub: dict[str, Any]) -> list[tuple[str, str]]:
    """What the CPU seconds imply: the rate at which the worker's main thread, or all the
    processes together on the machine's CPUs, would have no time left (an upper bound)."""
    changes = results["parameters"]["records"]
    rows: list[tuple[str, str]] = []
    main = hub.get("worker_main_thread_cpu_s")
    if main:
        per_change = main / changes * 1e6
        rows.append(
            (
                "  worker main thread (faust's loop, the resolve agent)",
                f"{_num(per_change)} us CPU per change: at most {_num(1e6 / per_change)} changes/s",
            )
        )
    cpu = hub["cpu_s"]
    if "kafka" in cpu and "redis" in cpu:  # the servers were measured too (the stack is ours)
        per_change = sum(cpu.values()) / changes * 1e6
        nproc = results["machine"]["nproc"]
        rows.append(
            (
                "  all of these processes together",
                f"{_num(per_change)} us CPU per change: at most {_num(nproc * 1e6 / per_change)} "
                f"changes/s on {nproc} CPUs",
            )
        )
    return rows


def _rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    b0 = results.get("b0")
    if b0:
        rows.append(("B0 publish of the input (acks=all)", f"{_num(b0['publish_rate'])} rec/s"))
        rows.append(
            (
                "B0 consume -> decode -> encode -> produce",
                f"{_num(b0['rate'])} rec/s ({_num(b0['loop_s'], 1)} s)",
            )
        )
    hub = results.get("hub")
    if hub:
        incomplete = (
            ""
            if hub.get("complete", True)
            else f"; INCOMPLETE: {hub['expected_versions'] - hub['projected_versions']:,} of "
            f"{hub['expected_versions']:,} golden versions never arrived"
        )
        rows.append(
            (
                "Hub end to end (publish -> last golden version in Redis)",
                f"{_num(hub['rate'])} rec/s ({_num(hub['total_s'], 1)} s{incomplete})",
            )
        )
        rows.append(("  of which publishing (acks=all)", f"{_num(hub['publish_s'], 1)} s"))
        if hub.get("cpu_s"):
            rows.append(
                (
                    "  CPU seconds used meanwhile (the worker's include its router thread)",
                    ", ".join(f"{name} {_num(sec, 1)}" for name, sec in hub["cpu_s"].items()),
                )
            )
            rows.extend(_ceilings(results, hub))
        if hub.get("ratio_to_b0") is not None:
            rows.append(("Hub / B0", _num(hub["ratio_to_b0"], 3)))
    lat = results.get("latency")
    if lat:
        rows.append(
            (
                f"Latency at {_num(lat['target_rate'])}/s (achieved {_num(lat['achieved_rate'])}/s)",
                f"p50 {_num(lat['p50_ms'], 1)} / p95 {_num(lat['p95_ms'], 1)} / "
                f"p99 {_num(lat['p99_ms'], 1)} / max {_num(lat['max_ms'], 1)} ms "
                f"({lat['seen']:,} of {lat['sent']:,} seen)",
            )
        )
        rows.append(
            (
                "  split at the golden record's Kafka timestamp",
                f"publish -> router -> worker produced p50 {_num(lat.get('worker_p50_ms'), 1)} / p95 "
                f"{_num(lat.get('worker_p95_ms'), 1)} ms; -> Redis p50 "
                f"{_num(lat.get('projector_p50_ms'), 1)} / p95 "
                f"{_num(lat.get('projector_p95_ms'), 1)} ms",
            )
        )
    return rows


def print_table(console: Console, results: dict[str, Any]) -> None:
    """Print the figures as a table, then the checks."""
    table = Table(title=f"mdhub benchmark, {results['date']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in _rows(results):
        table.add_row(name, value)
    console.print(table)
    console.print(_checks_text(results))


def _checks_text(results: dict[str, Any]) -> str:
    check = _get(results, "hub", "verification")
    if not check:
        return "checks: hub not run"
    return (
        f"checks: {'OK' if check['ok'] else 'FAILED'}: {check['keys']:,} keys, "
        f"{check['wrong_versions']:,} not at their final version; golden topic "
        f"{check['golden_messages']:,} messages, changes topic {check['changes_messages']:,} "
        f"(expected {check['expected_versions']:,} each); rejected {check['rejected_messages']:,}; "
        f"reviews {check['review_messages']:,}; committed lag: router {check['router_lag']:,}, "
        f"worker {check['worker_lag']:,}, projector {check['projector_lag']:,}"
    )


def _binary(machine: dict[str, Any]) -> str:
    binary = machine.get("python_binary")  # absent from results written before it was recorded
    return f" (`{binary}`)" if binary else ""


def _machine_text(results: dict[str, Any]) -> str:
    m = results["machine"]
    return (
        f"{m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, Linux {m['kernel']}; "
        f"Python {m['python']}{_binary(m)}; Kafka {m['kafka']}; Redis {m['redis_server']}; "
        f"confluent-kafka {m['confluent_kafka']} (librdkafka {m['librdkafka']}); "
        f"faust-streaming {m['faust_streaming']} (aiokafka {m['aiokafka']}); "
        f"fastavro {m['fastavro']}; redis-py {m['redis_py']}"
    )


def _latest_section(results: dict[str, Any]) -> str:
    p = results["parameters"]
    load = results["load_average"]
    src = results["hub_source"]
    lines = [
        f"- Date: {results['date']}; the benchmark took {_num(results['duration_s'])} s",
        f"- Machine: {_machine_text(results)}",
        f"- Load average (1/5/15 min) at start {load['start']}, at end {load['end']}",
        f"- Command: `{results['command']}`",
        f"- Hub code measured: sha256 {src['sha256']} of `src/**/*.py`, newest file "
        f"`{src['newest_file']}` changed {src['newest_change']}",
        f"- Parameters: {p['records']:,} candidate changes of customers ({p['keys']:,} keys, "
        f"{p['updates']:,} updates of existing keys), mean {_num(p['attribute_bytes'])} B of "
        f"attributes and {_num(p['value_bytes'])} B per message, seed {p['seed']}, "
        f"{p['partitions']} partitions per topic; stack: {p['stack']}; latency phase "
        f"{_num(p['latency_rate'])} new keys/s for {_num(p['latency_seconds'])} s; "
        f"MDHUB_* overrides: {p['mdhub_overrides'] or 'none'}",
        "",
        "| figure | value |",
        "| --- | ---: |",
        *(f"| {name} | {value} |" for name, value in _rows(results)),
        "",
        f"{_checks_text(results).replace('checks: ', 'Checks: ', 1)}.",
    ]
    problems = results.get("log_problems") or {}
    noted = {name: info for name, info in problems.items() if info["lines"]}
    if noted:
        lines += ["", "Warnings and errors in the hub's logs:", ""]
        for name, info in noted.items():
            lines.append(f"- `{name}`: {info['lines']:,} line(s):")
            lines.extend(
                f"  - {kind['count']:,} x `{kind['example'][:240]}`" for kind in info["kinds"][:6]
            )
    else:
        lines += ["", "No warning or error in the worker's and projector's logs."]
    for note in results.get("notes", []):
        lines.append(f"\nNote: {note}")
    return "\n".join(lines)


def _history_row(results: dict[str, Any]) -> str:
    m = results["machine"]
    check = _get(results, "hub", "verification")
    return (
        f"| {results['date']} | {m['nproc']} CPU {m['cpu_model']} | "
        f"{results['load_average']['start'].split()[0]} | "
        f"{_get(results, 'hub_source', 'sha256') or '-'} | "
        f"{results['parameters']['records']:,} | {_num(_get(results, 'b0', 'rate'))} | "
        f"{_num(_get(results, 'hub', 'rate'))} | {_num(_get(results, 'hub', 'ratio_to_b0'), 3)} | "
        f"{_num(_get(results, 'latency', 'target_rate'))} | "
        f"{_num(_get(results, 'latency', 'p50_ms'), 1)} | "
        f"{_num(_get(results, 'latency', 'p95_ms'), 1)} | "
        f"{_num(_get(results, 'latency', 'p99_ms'), 1)} | "
        f"{_num(_get(results, 'latency', 'max_ms'), 1)} | "
        f"{'-' if not check else ('ok' if check['ok'] else 'FAILED')} |"
    )


def update_results_md(path: Path, results: dict[str, Any]) -> None:
    """Replace the "Latest run" section and add a history row (creating the file if needed)."""
    text = path.read_text(encoding="utf-8") if path.exists() else _HEADER
    if _BEGIN not in text or _END not in text or _HISTORY not in text:
        # Not ours (or broken by hand): keep what it says above the history table.
        text = _HEADER.replace(_HISTORY, f"## Earlier notes\n\n{text.strip()}\n\n{_HISTORY}", 1)
    head, rest = text.split(_BEGIN, 1)
    _, tail = rest.split(_END, 1)
    text = f"{head}{_BEGIN}\n{_latest_section(results)}\n{_END}{tail}"
    path.write_text(text.rstrip("\n") + "\n" + _history_row(results) + "\n", encoding="utf-8")
