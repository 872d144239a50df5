import gc
import logging

import pytest

from mdhub import runtime
from mdhub.runtime import GC_THRESHOLDS, tune_gc


def test_tune_gc_raises_thresholds_and_freezes_startup_objects() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
        tune_gc()
        assert gc.callbacks.count(runtime._timer) == 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
        if runtime._timer in gc.callbacks:
            gc.callbacks.remove(runtime._timer)


def test_a_slow_collection_is_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "SLOW_GC_S", 0.0)
    timer = runtime._GcTimer()
    with caplog.at_level(logging.WARNING, logger="mdhub.runtime"):
        timer("start", {"generation": 2})
        timer("stop", {"generation": 2, "collected": 7})
    assert "garbage collection of generation 2 took" in caplog.text
    assert "7 objects collected" in caplog.text


def test_a_quick_collection_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    timer = runtime._GcTimer()
    with caplog.at_level(logging.WARNING, logger="mdhub.runtime"):
        timer("start", {"generation": 0})
        timer("stop", {"generation": 0, "collected": 0})
    assert caplog.text == ""
