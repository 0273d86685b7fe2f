"""``rl-reason compact``: a finished run's JSONL trace shards into Parquet, losslessly.

Each ``rank-XXXXX.jsonl`` becomes ``rank-XXXXX.parquet`` beside it (written to a temporary file,
checked row for row, then renamed), and the JSONL is removed unless ``keep_jsonl``. Readers
(``rl_reason.traces.reader``) read a shard's JSONL while it exists and its Parquet only once the JSONL is
gone, so neither an interrupted compaction nor ``keep_jsonl`` ever doubles a record.

Columns: ``rl_reason.traces.parquet``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from rl_reason.traces.parquet import SCHEMA, record_to_row
from rl_reason.traces.reader import TraceSource


def compact_shard(path: Path, keep_jsonl: bool = False, batch_size: int = 10_000) -> tuple[Path, int]:
    import pyarrow.parquet as pq

    out = path.with_suffix(".parquet")
    tmp = path.with_suffix(".parquet.tmp")
    source = TraceSource(path)
    n = 0
    try:
        with pq.ParquetWriter(tmp, SCHEMA, compression="zstd") as writer:
            batch = []
            for _, record in source:
                batch.append(record_to_row(record))
                if len(batch) >= batch_size:
                    writer.write_table(pa.Table.from_pylist(batch, schema=SCHEMA))
                    n += len(batch)
                    batch.clear()
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=SCHEMA))
                n += len(batch)
        if pq.ParquetFile(tmp).metadata.num_rows != n:
            raise OSError(f"{tmp}: row count mismatch after writing")
        os.replace(tmp, out)
    finally:
        source.close()
        if tmp.exists():
            tmp.unlink()
    if not keep_jsonl:
        path.unlink()
    return out, n


def compact(traces_dir: str | Path, keep_jsonl: bool = False) -> dict:
    """Compact every JSONL shard of ``traces_dir``; returns ``{shard name: records}``."""
    traces_dir = Path(traces_dir)
    if not traces_dir.is_dir():
        raise FileNotFoundError(f"trace directory not found: {traces_dir}")
    shards = sorted(traces_dir.glob("*.jsonl"))
    if not shards:
        raise FileNotFoundError(f"no JSONL trace shards in {traces_dir}")
    return {out.name: n for out, n in (compact_shard(p, keep_jsonl) for p in shards)}
