"""Streaming access to a run's trace shards (JSONL as written, Parquet after ``rl-reason compact``).

``rl_reason.traces.read_shard`` loads a whole shard into memory; a million-trace export cannot.
Here a first pass streams every record with a *locator* (file, byte offset, length) and the second
pass re-reads only the records it needs, so memory holds small per-prompt summaries, never the
traces themselves. A truncated last line (a crash mid-write) is skipped, as in ``traces``.
"""

from __future__ import annotations

import json
import logging

try:  # orjson parses trace lines about 3x faster than json; the pipeline works without it
    from orjson import JSONDecodeError as _OrjsonError
    from orjson import loads as _loads

    _DECODE_ERRORS: tuple = (json.JSONDecodeError, UnicodeDecodeError, _OrjsonError)
except ImportError:  # pragma: no cover
    _loads = json.loads
    _DECODE_ERRORS = (json.JSONDecodeError, UnicodeDecodeError)
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def trace_files(directory: str | Path) -> list[Path]:
    """Shards under ``directory`` (or the one file given): Parquet, plus JSONL shards not yet compacted."""
    directory = Path(directory)
    if directory.is_file():
        return [directory]
    if not directory.is_dir():
        raise FileNotFoundError(f"trace directory not found: {directory}")
    parquet = sorted(directory.glob("*.parquet"))
    compacted = {p.stem for p in parquet}
    jsonl = [p for p in sorted(directory.glob("*.jsonl")) if p.stem not in compacted]
    files = sorted(parquet + jsonl)
    if not files:
        raise FileNotFoundError(f"no trace shards (*.jsonl, *.parquet) in {directory}")
    return files


class TraceSource:
    """Iterate records with locators, then fetch any record again by its locator."""

    def __init__(self, directory: str | Path):
        self.files = trace_files(directory)
        self.skipped = {"truncated": 0, "corrupt": 0}
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
            for line in f:
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
                yield (i, start, len(line)), record

    def _iter_parquet(self, i: int, path: Path):
        import pyarrow.parquet as pq

        from rl_reason.compact import row_to_record

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

        from rl_reason.compact import row_to_record

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

    def __iter__(self):
        for i, r in enumerate(self.records):
            yield (i,), r

    def fetch(self, locator: tuple) -> dict:
        return self.records[locator[0]]

    def close(self) -> None:
        pass
