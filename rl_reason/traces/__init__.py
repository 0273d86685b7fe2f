"""Traces: every scored completion, one JSON object per line per rank; the writer, the reader,
and compaction to Parquet."""
