"""Trace records as Parquet rows and back, losslessly (``rl-reason compact`` writes them).

Columns: the schema-1 scalar fields typed; ``prompt`` as JSON text (it is a message list or a
string, depending on the dataset); ``rewards`` as a map; every other field in ``extra`` (JSON),
so fields a later schema adds survive. ``row_to_record`` turns a row back into the record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

TYPED = {
    "schema": pa.int64(),
    "run_id": pa.string(),
    "step": pa.int64(),
    "rank": pa.int64(),
    "mode": pa.string(),
    "group": pa.string(),
    "completion": pa.string(),
    "answer": pa.string(),
    "reward": pa.float64(),
    "advantage": pa.float64(),
    "group_mean": pa.float64(),
    "group_std": pa.float64(),
    "completion_tokens": pa.int64(),
    "truncated": pa.bool_(),
    "time": pa.float64(),
    "id": pa.string(),
    "source": pa.string(),
}
SCHEMA = pa.schema(
    [pa.field(k, t) for k, t in TYPED.items()]
    + [pa.field("prompt", pa.string()), pa.field("rewards", pa.map_(pa.string(), pa.float64())),
       pa.field("extra", pa.string())]
)
# May be numbers in some datasets: kept as text, with a type tag.
_JSON_AS_TEXT = {"answer", "id", "run_id", "group", "source"}


def record_to_row(record: dict) -> dict:
    row: dict = {}
    extra: dict = {}
    for key, value in record.items():
        if key in TYPED:
            if key in _JSON_AS_TEXT and value is not None and not isinstance(value, str):
                extra[f"__json__{key}"] = value  # a non-string value goes to extra so its type survives
                value = None
            elif TYPED[key] == pa.int64() and value is not None and not isinstance(value, int):
                extra[key] = value
                value = None
            row[key] = value
        elif key == "prompt":
            row["prompt"] = json.dumps(value, ensure_ascii=False)
        elif key == "rewards" and _numbers_by_name(value):
            row["rewards"] = [(k, None if v is None else float(v)) for k, v in value.items()]
        else:
            extra[key] = value
    row["extra"] = json.dumps(extra, ensure_ascii=False) if extra else None
    return row


def _numbers_by_name(value) -> bool:
    return isinstance(value, dict) and all(v is None or isinstance(v, (int, float)) for v in value.values())


def row_to_record(row: dict) -> dict:
    record = {k: row[k] for k in TYPED if row.get(k) is not None}
    if row.get("prompt") is not None:
        record["prompt"] = json.loads(row["prompt"])
    if row.get("rewards") is not None:
        record["rewards"] = dict(row["rewards"])
    for key, value in json.loads(row["extra"]).items() if row.get("extra") else ():
        record[key.removeprefix("__json__")] = value
    return record



def read_parquet_shard(path: str | Path):
    """The records of one compacted shard, in order (for ``rl_reason.traces.reader`` and analysis)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for rg in range(pf.num_row_groups):
        for row in pf.read_row_group(rg).to_pylist():
            yield row_to_record(row)
