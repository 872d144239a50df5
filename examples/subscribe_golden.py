"""Keep a local copy of an entity's golden records with the mdhub SDK.

Joins a consumer group on the compacted golden topic. With --from-beginning a new group starts at
offset 0, so the copy is rebuilt from scratch; later runs of the same group continue where it
stopped. Each record's offset is committed only after it was applied. Settings come from the
MDHUB_* environment, as for the `mdhub` command.
"""

from __future__ import annotations

import argparse
import signal
import sys

from mdhub.client import GoldenRecord, GoldenStatus, Subscriber, Tombstone
from mdhub.errors import MdhubError


class LocalCopy:
    """Golden records by id, plus the redirects of merged ones."""

    def __init__(self) -> None:
        self.records: dict[str, GoldenRecord] = {}
        self.redirects: dict[str, str] = {}

    def apply(self, record: GoldenRecord | Tombstone) -> str:
        """Apply one message; return what happened."""
        if isinstance(record, Tombstone):
            self.records.pop(record.golden_id, None)
            self.redirects.pop(record.golden_id, None)
            return f"{record.golden_id} gone (tombstone)"
        gid = record.golden_id
        current = self.records.get(gid)
        if current is not None and record.version <= current.version:
            return f"{gid} v{record.version} ignored (have v{current.version})"
        if record.status is GoldenStatus.MERGED and record.merged_into:
            self.records.pop(gid, None)
            self.redirects[gid] = record.merged_into
            return f"{gid} merged into {record.merged_into}"
        if record.status is not GoldenStatus.ACTIVE:
            self.records.pop(gid, None)  # retired or erased: a tombstone follows
            return f"{gid} v{record.version} {record.status.value}"
        self.records[gid] = record
        return f"{gid} v{record.version} {dict(record.attributes)}"

    def resolve(self, golden_id: str) -> GoldenRecord | None:
        """The record for an id, following merge redirects."""
        seen = set()
        while golden_id in self.redirects and golden_id not in seen:
            seen.add(golden_id)
            golden_id = self.redirects[golden_id]
        return self.records.get(golden_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entity", default="customer", help="entity type (default: customer)")
    parser.add_argument("--group", default="example-golden-copy", help="consumer group id")
    parser.add_argument(
        "--from-beginning", action="store_true", help="a new group starts at offset 0 (rebuild)"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="stop after this many seconds without a record",
    )
    args = parser.parse_args(argv)
    copy = LocalCopy()
    try:
        with Subscriber(args.entity, args.group, from_beginning=args.from_beginning) as subscriber:
            signal.signal(signal.SIGTERM, lambda *_: subscriber.stop())
            signal.signal(signal.SIGINT, lambda *_: subscriber.stop())

            def handle(record: GoldenRecord | Tombstone) -> None:
                print(copy.apply(record), flush=True)

            handled = subscriber.run(handle, idle_timeout=args.idle_timeout)
    except MdhubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{handled} message(s) applied; {len(copy.records)} golden record(s) in the local copy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
