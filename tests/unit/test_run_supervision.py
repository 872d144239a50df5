"""`mdhub run` restarts a worker that exits to be restarted, and stops on any other exit."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from mdhub.commands import run as run_module
from mdhub.errors import StackError
from mdhub.stream.exits import EXIT_OUTPUT_FAILED, EXIT_STALLED, EXIT_STREAM_GAP


class FakeProc:
    def __init__(self, code: int | None) -> None:
        self.code = code

    def poll(self) -> int | None:
        return self.code


def child(tmp_path: Path, code: int | None) -> run_module._Child:
    log = tmp_path / "worker.log"
    log.write_text("last words\n", encoding="utf-8")
    return run_module._Child(
        "worker",
        FakeProc(code),
        log,
        log.open("ab"),
        ["worker", "--loglevel", "info"],
        {"A": "1"},  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("code", [EXIT_OUTPUT_FAILED, EXIT_STALLED, EXIT_STREAM_GAP])
def test_a_worker_exiting_to_be_restarted_is_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    spawned: list[tuple[Any, ...]] = []

    def fake_spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Any:
        spawned.append((name, args, env, log_dir))
        return child(tmp_path, None)

    monkeypatch.setattr(run_module, "_spawn", fake_spawn)
    children = [child(tmp_path, code)]
    run_module._check_alive(children)
    children[0].handle.close()
    assert spawned == [("worker", ["worker", "--loglevel", "info"], {"A": "1"}, tmp_path)]
    assert children[0].proc.poll() is None  # the new one runs in its place


def test_any_other_exit_stops_the_hub_with_the_log_tail(tmp_path: Path) -> None:
    failed = child(tmp_path, 1)
    with pytest.raises(StackError) as raised:
        run_module._check_alive([failed])
    failed.handle.close()
    assert str(raised.value).startswith("the worker exited with code 1; last lines of ")
    assert str(raised.value).endswith("last words")


@pytest.mark.parametrize("sig", run_module.STOP_SIGNALS)
def test_sigterm_and_sighup_stop_the_hub_as_ctrl_c_does(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    cleaned: list[str] = []
    with pytest.raises(KeyboardInterrupt), run_module._stopped_by_signals():
        try:
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler interrupts this at once
            cleaned.append("not interrupted")
        finally:
            cleaned.append("children and stack stopped")
    assert cleaned == ["children and stack stopped"]
    assert signal.getsignal(sig) == before  # the previous handler is back
