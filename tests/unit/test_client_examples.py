"""The example programs of examples/ start and explain themselves without a broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["publish_customers.py", "subscribe_golden.py"])
def test_example_has_help(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and "MDHUB_" in done.stdout


def test_the_local_copy_of_the_example_follows_versions_tombstones_and_redirects() -> None:
    import datetime as dt

    sys.path.insert(0, str(EXAMPLES))
    try:
        from subscribe_golden import LocalCopy  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(EXAMPLES))
    from mdhub.client import GoldenRecord, GoldenStatus, Tombstone

    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def golden(gid: str, version: int, **extra: object) -> GoldenRecord:
        fields: dict[str, object] = {
            "golden_id": gid,
            "entity": "customer",
            "version": version,
            "status": GoldenStatus.ACTIVE,
            "attributes": {"last_name": f"{gid}v{version}"},
            "lineage": {},
            "sources": (),
            "created_at": t0,
            "updated_at": t0,
            "content_hash": str(version),
        }
        fields.update(extra)
        return GoldenRecord(**fields)  # type: ignore[arg-type]

    copy = LocalCopy()
    copy.apply(golden("A", 2))
    assert "ignored" in copy.apply(golden("A", 1))  # a replayed older version changes nothing
    copy.apply(golden("B", 1))
    assert "merged into A" in copy.apply(
        golden("B", 2, status=GoldenStatus.MERGED, merged_into="A")
    )
    resolved = copy.resolve("B")
    assert resolved is not None and resolved.golden_id == "A"
    copy.apply(golden("A", 3, status=GoldenStatus.RETIRED))
    copy.apply(Tombstone("A"))
    assert copy.resolve("A") is None and copy.records == {}
