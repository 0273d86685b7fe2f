"""The one reader of trace shards (JSONL as written, Parquet after ``rl-reason compact``).

``read_traces`` streams every record. ``TraceSource`` streams them with a *locator* (file, byte
offset, length) so a second pass can re-read only the records it needs: a million-trace export holds
small per-prompt summaries in memory, never the traces themselves. A truncated last line (a crash
mid-write) is skipped and counted; a corrupt line elsewhere is skipped, counted and logged.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from orjson import JSONDecodeError as _OrjsonError
from orjson import loads as _loads

from rl_reason.traces.parquet import row_to_record

# orjson parses trace lines about 3x faster than json.
_DECODE_ERRORS = (json.JSONDecodeError, UnicodeDecodeError, _OrjsonError)
log = logging.getLogger(__name__)


def trace_files(directory: str | Path) -> list[Path]:
    """Shards under ``directory`` (or the one file given): each JSONL shard, and the Parquet of a shard
    whose JSONL is gone (compacted). The JSONL is what the trainer writes, so it wins while it exists."""
    directory = Path(directory)
    if directory.is_file():
        return [directory]
    if not directory.is_dir():
        raise FileNotFoundError(f"trace directory not found: {directory}")
    jsonl = sorted(directory.glob("*.jsonl"))
    written = {p.stem for p in jsonl}
    files = sorted(jsonl + [p for p in directory.glob("*.parquet") if p.stem not in written])
    if not files:
        raise FileNotFoundError(f"no trace shards (*.jsonl, *.parquet) in {directory}")
    return files


class TraceSource:
    """Iterate records with locators, then fetch any record again by its locator."""

    def __init__(self, directory: str | Path):
        self.files = trace_files(directory)
        self.skipped = {"truncated": 0, "corrupt": 0}
        self.unterminated = 0  # last lines that parse but lack their "\n" (read, and counted)
        self._handles: dict[int, object] = {}
        self._row_groups: OrderedDict = OrderedDict()

    def __iter__(self) -> Iterator[tuple[tuple, dict]]:
        for i, path in enumerate(self.files):
            if path.suffix == ".parquet":
                yield from self._iter_parquet(i, path)
            else:
                yield from self._iter_jsonl(i, path)

    def _iter_jsonl(self, i: int, path: Path):
        offset = 0
        with open(path, "rb") as f:
            for line in f:  # bytes split on b"\n" only (see rl_reason.traces.schema)
                start, offset = offset, offset + len(line)
                if not line.strip():
                    continue
                try:
                    record = _loads(line)
                except _DECODE_ERRORS:
                    cut_short = not line.endswith(b"\n")
                    self.skipped["truncated" if cut_short else "corrupt"] += 1
                    if not cut_short:
                        log.warning("%s: skipping a corrupt trace line at byte %d", path, start)
                    continue
                if not line.endswith(b"\n"):  # a last line that parses but was never terminated
                    self.unterminated += 1
                yield (i, start, len(line)), record

    def _iter_parquet(self, i: int, path: Path):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        for rg in range(pf.num_row_groups):
            for j, row in enumerate(pf.read_row_group(rg).to_pylist()):
                yield (i, rg, j), row_to_record(row)

    def fetch(self, locator: tuple) -> dict:
        i = locator[0]
        path = self.files[i]
        if path.suffix == ".parquet":
            return self._fetch_parquet(locator)
        f = self._handles.get(i)
        if f is None:
            f = self._handles[i] = open(path, "rb")
        f.seek(locator[1])
        return _loads(f.read(locator[2]))

    def _fetch_parquet(self, locator: tuple) -> dict:
        import pyarrow.parquet as pq

        i, rg, j = locator
        rows = self._row_groups.get((i, rg))
        if rows is None:
            # Prompts are visited in first-seen order, so reads are nearly sequential: a few row groups suffice.
            rows = pq.ParquetFile(self.files[i]).read_row_group(rg).to_pylist()
            self._row_groups[(i, rg)] = rows
            while len(self._row_groups) > 4:
                self._row_groups.popitem(last=False)
        else:
            self._row_groups.move_to_end((i, rg))
        return row_to_record(rows[j])

    def close(self) -> None:
        for f in self._handles.values():
            f.close()
        self._handles.clear()
        self._row_groups.clear()


class ListSource:
    """The same interface over records already in memory (``select_records`` and tests)."""

    def __init__(self, records):
        self.records = list(records)
        self.skipped = {"truncated": 0, "corrupt": 0}
        self.unterminated = 0

    def __iter__(self):
        for i, r in enumerate(self.records):
            yield (i,), r

    def fetch(self, locator: tuple) -> dict:
        return self.records[locator[0]]

    def close(self) -> None:
        pass


def read_traces(directory: str | Path, stats: dict | None = None) -> Iterator[dict]:
    """Every record of every shard under ``directory`` (or of one shard file). ``stats`` (a dict) gets
    the counts of lines skipped as ``truncated`` or ``corrupt``, and of ``unterminated`` last lines."""
    source = TraceSource(directory)
    try:
        for _, record in source:
            yield record
    finally:
        source.close()
        if stats is not None:
            for key, n in {**source.skipped, "unterminated": source.unterminated}.items():
                stats[key] = stats.get(key, 0) + n


def read_shard(path: str | Path) -> Iterator[dict]:
    """The records of one shard file."""
    return read_traces(path)
