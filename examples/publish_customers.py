"""Publish a few customers from a source system with the mdhub SDK.

Settings come from the MDHUB_* environment, as for the `mdhub` command (e.g.
MDHUB_KAFKA__BOOTSTRAP_SERVERS, MDHUB_NAMESPACE, MDHUB_MODEL). With the hub running
(`make run`), watch the result with `mdhub tail --entity customer`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys

from mdhub.client import AsyncPublisher, Publisher
from mdhub.errors import MdhubError, ValidationError

CUSTOMERS: list[dict[str, object]] = [
    {
        "first_name": "Grace",
        "last_name": "Hopper",
        "email": "grace@navy.example",
        "country": "US",
        "birth_date": dt.date(1906, 12, 9),
        "tags": ["vip"],
    },
    {"first_name": "Alan", "last_name": "Turing", "country": "United Kingdom"},
    {"first_name": "Katherine", "last_name": "Johnson", "lifetime_value": 12500.5},
]


def records(prefix: str, count: int) -> list[tuple[str, dict[str, object]]]:
    """``count`` customers keyed ``<prefix>-1``, ``<prefix>-2``, ..."""
    return [
        (f"{prefix}-{i + 1}", {**CUSTOMERS[i % len(CUSTOMERS)], "city": f"City {i + 1}"})
        for i in range(count)
    ]


def publish(source: str, batch: list[tuple[str, dict[str, object]]], show_invalid: bool) -> None:
    with Publisher("customer", source) as publisher:
        pending = [publisher.publish(key, values) for key, values in batch]
        if show_invalid:
            try:
                publisher.publish("BAD-1", {"first_name": "No", "email": "no-at-sign"})
            except ValidationError as exc:
                print(f"not sent: {exc}")
                for reason in exc.reasons:
                    print(f"  {reason.code:<12} {reason.attribute or '-':<12} {reason.message}")
        for item in pending:
            delivery = item.result(timeout=30)
            status = "ok" if delivery.ok else f"FAILED: {delivery.error}"
            print(
                f"{delivery.key} -> {delivery.topic}[{delivery.partition}]@{delivery.offset} {status}"
            )
    # leaving the block flushed and raised PublishError if anything failed


async def publish_async(source: str, batch: list[tuple[str, dict[str, object]]]) -> None:
    async with AsyncPublisher("customer", source) as publisher:
        deliveries = await asyncio.gather(*(publisher.publish(k, v) for k, v in batch))
        for delivery in deliveries:
            print(f"{delivery.key} -> {delivery.topic}[{delivery.partition}]@{delivery.offset}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", default="crm", help="source system (default: crm)")
    parser.add_argument("--count", type=int, default=3, help="how many customers (default: 3)")
    parser.add_argument("--prefix", default="EX", help="source keys are <prefix>-<n> (default: EX)")
    parser.add_argument("--asyncio", action="store_true", help="use AsyncPublisher")
    parser.add_argument(
        "--show-invalid",
        action="store_true",
        help="also try an invalid record and print why it is refused",
    )
    args = parser.parse_args(argv)
    batch = records(args.prefix, args.count)
    try:
        if args.asyncio:
            asyncio.run(publish_async(args.source, batch))
        else:
            publish(args.source, batch, args.show_invalid)
    except MdhubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
