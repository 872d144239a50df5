"""Per-operation costs of the worker's hot path, in process: Avro codecs and pair scoring.

    python benchmarks/micro.py [--records 20000] [--seed 42] [--repeat 3]

Feeds the benchmark's candidate changes (``dataset.py``, as ``make bench`` publishes them) through
the resolve stage in memory, then times, on what that left behind:

- encoding and decoding the golden records with the compiled Avro writer and reader
  (``mdhub.serde.compiled``) and with plain fastavro, microseconds per record;
- scoring the candidate pairs the blocking index yields for the last 3,000 source records, in full
  and with the early exit of ``no_match`` rules, microseconds per pair.

Each figure is the best of ``--repeat`` rounds (CPU time). No servers needed.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import fastavro

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from dataset_check import APPENDED_MS  # noqa: E402

from mdhub.domain.matching import compare  # noqa: E402
from mdhub.modelfile import load_model  # noqa: E402
from mdhub.serde.catalog import SchemaCatalog  # noqa: E402
from mdhub.stream.pipeline import EntityPipeline, Message  # noqa: E402
from mdhub.stream.replay import LocalResolveStage  # noqa: E402

from dataset import ENTITY, generate_run  # noqa: E402

REPO = HERE.parent


def best_us(fn: Callable[[], None], count: int, repeat: int) -> float:
    """Best CPU microseconds per item over ``repeat`` rounds of ``fn`` (which does ``count``)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best / count * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/micro.py", description=__doc__.split("\n\n", 1)[0]
    )
    parser.add_argument("--records", type=int, default=20_000, help="changes fed (default 20000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3, help="rounds per figure (default 3)")
    args = parser.parse_args(argv)

    catalog = SchemaCatalog.load(REPO / "schemas")
    entity = load_model(REPO / "config" / "model.yaml").entity(ENTITY)
    run = generate_run(
        entity,
        catalog.codec(f"mdhub.{ENTITY}.CandidateChange"),
        catalog.codec(f"mdhub.{ENTITY}.Attributes"),
        args.records,
        0,
        seed=args.seed,
    )
    pipeline = EntityPipeline(entity, catalog, "micro")
    stage = LocalResolveStage(pipeline)
    messages = [m for data in run.in_hub_order for m in data.messages]
    started = time.process_time()
    for i, (key, value) in enumerate(messages):
        stage.feed(Message(pipeline.source_topic, 0, i, APPENDED_MS + i, key, value))
        stage.outputs.clear()
    fed = time.process_time() - started
    print(
        f"resolve stage: {len(messages):,} changes in {fed:.1f} CPU s ({len(messages) / fed:,.0f}/s)"
    )

    codec = pipeline.golden_codec
    encoded = [v for k, v in stage.store.items() if not k.startswith(b"__")][-2000:]
    records = [codec.decode(v) for v in encoded]
    schema = codec.schema

    def compiled_writes() -> None:
        for record in records:
            codec.encode(record)

    def fastavro_writes() -> None:
        for record in records:
            fastavro.schemaless_writer(io.BytesIO(), schema, record)

    def compiled_reads() -> None:
        for value in encoded:
            codec.decode(value)

    def fastavro_reads() -> None:
        for value in encoded:
            fastavro.schemaless_reader(io.BytesIO(value[10:]), schema, None)

    n, r = len(records), args.repeat
    size = sum(map(len, encoded)) / n
    print(f"golden record ({size:,.0f} B), {n:,} records:")
    print(
        f"  encode: compiled {best_us(compiled_writes, n, r):.1f} us, fastavro {best_us(fastavro_writes, n, r):.1f} us"
    )
    print(
        f"  decode: compiled {best_us(compiled_reads, n, r):.1f} us, fastavro {best_us(fastavro_reads, n, r):.1f} us"
    )

    spec = entity.matching
    assert spec is not None
    index = stage.index
    pairs = []
    for summary in list(index.summaries.values())[-3000:]:
        seen = {summary.ref}
        for key in summary.keys:
            for ref in index.block(key):
                if ref not in seen:
                    seen.add(ref)
                    pairs.append((summary.features, index.summaries[ref].features))
    decided = sum(compare(spec, a, b, early_exit=True).partial for a, b in pairs)

    def scored(early_exit: bool) -> Callable[[], None]:
        def run_pairs() -> None:
            for a, b in pairs:
                compare(spec, a, b, early_exit=early_exit)

        return run_pairs

    p = len(pairs)
    print(f"candidate pairs: {p:,} ({decided / max(p, 1):.0%} decided early by a no_match rule)")
    print(
        f"  full {best_us(scored(False), p, r):.2f} us/pair, early exit {best_us(scored(True), p, r):.2f} us/pair"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
