import gc

from mdhub.runtime import GC_THRESHOLDS, tune_gc


def test_tune_gc_raises_thresholds_and_freezes_startup_objects() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
