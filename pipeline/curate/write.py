"""Curate's second pass: stream the kept rows of each verified shard into data/{split}-{k:05d}-of-{n:05d}.parquet.

Only one verified shard is in memory at a time. Rows keep their verified order; a split's files roll over every
`rows_per_shard` rows and are written in row groups sized for the Hub's dataset viewer, with a page index.
"""

import math
from contextlib import suppress
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import rows as rowlib
from pipeline import shards
from pipeline.errors import UserError

PARQUET_OPTIONS = {"compression": "zstd", "write_page_index": True}


def shard_file(split: str, k: int, n: int) -> str:
    return f"{split}-{k:05d}-of-{n:05d}.parquet"


class SplitWriter:
    """Appends tables to a split's numbered files, flushing a row group whenever `group_rows` rows are buffered."""

    def __init__(self, folder: Path, split: str, total_rows: int, rows_per_shard: int, group_rows: int, schema: pa.Schema):
        self.folder, self.split, self.schema = folder, split, schema
        self.rows_per_shard, self.group_rows = rows_per_shard, group_rows
        self.files = max(1, math.ceil(total_rows / rows_per_shard))
        self.names: list[str] = []
        self.writer, self.in_file, self.pending, self.pending_rows = None, 0, [], 0

    def _open(self) -> None:
        name = shard_file(self.split, len(self.names), self.files)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.writer = pq.ParquetWriter(self.folder / name, self.schema, **PARQUET_OPTIONS)
        self.names.append(name)
        self.in_file = 0

    def _flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.concat_tables(self.pending), row_group_size=self.group_rows)
            self.pending, self.pending_rows = [], 0

    def write(self, table: pa.Table) -> None:
        start = 0
        while start < table.num_rows:
            if self.writer is None or self.in_file == self.rows_per_shard:
                self.close_file()
                self._open()
            take = min(table.num_rows - start, self.rows_per_shard - self.in_file, self.group_rows - self.pending_rows)
            self.pending.append(table.slice(start, take))
            self.pending_rows += take
            self.in_file += take
            start += take
            if self.pending_rows == self.group_rows or self.in_file == self.rows_per_shard:
                self._flush()

    def close_file(self) -> None:
        if self.writer is not None:
            self._flush()
            self.writer.close()
            self.writer = None

    def close(self) -> list[str]:
        self.close_file()
        return self.names

    def abort(self) -> None:
        """After a failed write (a full disk): let the open file go without raising again (its folder is removed)."""
        writer, self.writer = self.writer, None
        if writer is not None:
            with suppress(OSError):
                writer.close()
            writer.is_open = False  # else pyarrow's __del__ closes it again and prints the error with a traceback


def check_schema(path: Path, table: pa.Table) -> None:
    """Verify validated every row; curate only checks that a shard still has the trajectory schema."""
    if not table.schema.equals(rowlib.TRAJECTORY, check_metadata=False):
        raise UserError(f"{path}: columns do not have the trajectory types (re-run `trajforge verify`)")


def write_splits(paths: list[Path], shard_of: np.ndarray, row_of: np.ndarray, split_of: np.ndarray, folder: Path,
                 rows_per_shard: int, group_rows: int, stage_hash: str, progress) -> dict[str, list[str]]:
    """Kept rows (given by their shard, row and split, in catalog order) -> split files; returns file names."""
    schema = rowlib.TRAJECTORY.with_metadata({shards.HASH_KEY: stage_hash})
    writers = {split: SplitWriter(folder, split, int((split_of == split).sum()), rows_per_shard, group_rows, schema)
               for split in sorted(set(split_of.tolist()))}
    try:
        for k, path in enumerate(paths):
            mine = shard_of == k
            if not mine.any():
                continue
            table = rowlib.conform(shards.read_parquet(path), "trajectory")
            check_schema(path, table)
            for split, writer in writers.items():
                rows = row_of[mine & (split_of == split)]
                if len(rows):
                    part = table.take(pa.array(rows))
                    writer.write(part.set_column(part.schema.get_field_index("split"), "split", pa.repeat(pa.scalar(split), len(rows))))
            progress(int(mine.sum()))
        return {split: writer.close() for split, writer in writers.items()}
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
