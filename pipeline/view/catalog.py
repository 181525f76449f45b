"""The viewer's query layer: one Arrow table per stage with the columns people filter by, read straight from the
run directory's Parquet shards (no copy), and filters, counts and pages computed on it with pyarrow and numpy.

A catalog holds one small entry per row (ids, source, domain, format, outcome, failed checks, error kinds,
verdict, lineage, the instruction for text search) plus where the row lives (file, row). Whole rows are read
only for the one row a page shows. A catalog is rebuilt when a shard file of its stage appears, changes or goes.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import facets, rundir
from pipeline.stages import STAGE_DIRS
from pipeline import rows as rowlib

TASK_COLUMNS = ["id", "source", "domain", "instruction", "difficulty"]
# filter name -> catalog column; check and error hold a list per row (a row matches if any entry does)
FACETS = {"source": "source", "domain": "domain", "format": "format", "outcome": "outcome", "check": "failed_checks",
          "error": "error_kinds", "verdict": "verdict", "kind": "kind", "split": "split"}
LIST_FACETS = ("check", "error")
PAGE_SIZE = 50


@dataclass(frozen=True)
class Filters:
    """A list view's filters, as they appear in its URL (`?outcome=failed&check=answer&q=refund&page=2`)."""

    source: str | None = None
    domain: str | None = None
    format: str | None = None
    outcome: str | None = None
    check: str | None = None
    error: str | None = None
    verdict: str | None = None
    kind: str | None = None
    split: str | None = None
    q: str | None = None
    page: int = 1

    @classmethod
    def from_query(cls, params) -> "Filters":
        values = {f.name: params.get(f.name) or None for f in fields(cls) if f.name != "page"}
        page = params.get("page") or "1"
        return cls(**values, page=max(1, int(page)) if page.isdigit() else 1)

    def active(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "page" and getattr(self, f.name)}

    def query(self, **changes) -> str:
        """The query string of these filters with `changes` (None removes a filter); a new filter starts at page 1."""
        changed = replace(self, **changes) if "page" in changes else replace(self, **changes, page=1)
        pairs = changed.active()
        if changed.page > 1:
            pairs["page"] = changed.page
        return urlencode(pairs)

    def link(self, name: str, value) -> str:
        """The query string with one filter set (or removed, with None), for the links templates draw."""
        return self.query(**{name: value})


@dataclass
class Page:
    total: int  # rows matching the filters
    rows: list[dict]  # this page's catalog entries
    facets: dict[str, list[tuple[str, int]]]  # filter -> (value, rows matching it and the other filters)
    page: int
    pages: int


def _signature(files: list[Path]) -> tuple:
    return tuple((p.name, (s := p.stat()).st_size, s.st_mtime_ns) for p in files)


def _entries(path: Path, number: int, stage: str) -> pa.Table:
    """The catalog entries of one shard: facet columns and where each row lives."""
    if stage == "synthesize":
        table = facets.read_columns(path, TASK_COLUMNS)
        columns = {name: table.column(name) for name in TASK_COLUMNS}
    else:
        table = facets.read_columns(path)
        kind, parent = facets.lineage(table)
        columns = {name: table.column(name) for name in ("id", "task_id", "source", "domain", "format", "instruction", "score")}
        columns.update(outcome=facets.outcome(table), failed_checks=facets.failed_checks(table), error_kinds=facets.error_kinds(table),
                       verdict=facets.verdict(table), kind=kind, parent_id=parent,
                       split=table.column("split") if "split" in table.column_names else pa.nulls(table.num_rows, pa.string()),
                       steps=pc.fill_null(pc.list_value_length(table.column("steps")), 0))
    columns["_file"] = pa.array(np.full(table.num_rows, number, dtype=np.int32))
    columns["_row"] = pa.array(np.arange(table.num_rows, dtype=np.int64))
    return pa.table({name: (c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c) for name, c in columns.items()})


@dataclass
class Catalog:
    stage: str
    files: list[Path]
    table: pa.Table
    signature: tuple = ()
    _list_owners: dict = field(default_factory=dict)

    @classmethod
    def build(cls, run_dir: Path, stage: str) -> "Catalog":
        files = rundir.stage_files(run_dir, stage)
        signature = _signature(files)
        with ThreadPoolExecutor(max_workers=4) as pool:  # Parquet decoding releases the GIL
            parts = list(pool.map(lambda item: _entries(item[1], item[0], stage), enumerate(files)))
        table = pa.concat_tables(parts) if parts else pa.table({})
        return cls(stage, files, table, signature)

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def has(self, facet: str) -> bool:
        return FACETS[facet] in self.table.column_names

    def _list_parts(self, column: str) -> tuple[pa.Array, np.ndarray]:
        """(flattened values, owning row of each) of a list column, computed once per catalog."""
        if column not in self._list_owners:
            lists = self.table.column(column).combine_chunks()
            self._list_owners[column] = (pc.list_flatten(lists), pc.list_parent_indices(lists).to_numpy())
        return self._list_owners[column]

    def _match(self, facet: str, value: str) -> np.ndarray:
        if facet in LIST_FACETS:
            values, owners = self._list_parts(FACETS[facet])
            mask = np.zeros(self.num_rows, dtype=bool)
            mask[owners[pc.equal(values, value).to_numpy(zero_copy_only=False)]] = True
            return mask
        return pc.fill_null(pc.equal(self.table.column(FACETS[facet]), value), False).to_numpy(zero_copy_only=False)

    def masks(self, filters: Filters) -> dict[str, np.ndarray]:
        """One boolean mask per active filter (an unknown filter of this stage matches nothing)."""
        out = {}
        for name, value in filters.active().items():
            if name == "q":
                text = self.table.column("instruction")
                out[name] = pc.fill_null(pc.match_substring(text, value, ignore_case=True), False).to_numpy(zero_copy_only=False)
            elif self.has(name):
                out[name] = self._match(name, value)
            else:
                out[name] = np.zeros(self.num_rows, dtype=bool)
        return out

    def counts(self, facet: str, mask: np.ndarray) -> list[tuple[str, int]]:
        """(value, rows) of one facet among the rows of `mask`, most frequent first."""
        if facet in LIST_FACETS:
            values, owners = self._list_parts(FACETS[facet])
            values = pc.filter(values, pa.array(mask[owners]))
        else:
            values = pc.filter(self.table.column(FACETS[facet]), pa.array(mask))
        found = pc.value_counts(pc.drop_null(values))
        pairs = zip(found.field("values").to_pylist(), found.field("counts").to_pylist())
        return sorted(pairs, key=lambda pair: (-pair[1], str(pair[0])))

    def select(self, filters: Filters, page_size: int = PAGE_SIZE) -> Page:
        masks = self.masks(filters)
        every = np.ones(self.num_rows, dtype=bool)
        matching = np.logical_and.reduce([every, *masks.values()])
        facet_counts = {}
        for facet in FACETS:
            if self.has(facet):  # each facet counts under the other filters, so its values show what picking one gives
                others = [m for name, m in masks.items() if name != facet]
                facet_counts[facet] = self.counts(facet, np.logical_and.reduce([every, *others]))
        positions = np.flatnonzero(matching)
        pages = max(1, -(-len(positions) // page_size))
        page = min(filters.page, pages)
        taken = positions[(page - 1) * page_size: page * page_size]
        rows = self.table.take(pa.array(taken, pa.int64())).to_pylist()
        return Page(len(positions), rows, facet_counts, page, pages)

    def position(self, row_id: str) -> int | None:
        index = pc.index(self.table.column("id"), row_id).as_py() if self.num_rows else -1
        return None if index < 0 else index

    def entries(self, column: str, value: str) -> list[dict]:
        """Catalog entries whose `column` equals `value` (e.g. every trajectory of a task)."""
        if column not in self.table.column_names:
            return []
        mask = pc.fill_null(pc.equal(self.table.column(column), value), False)
        return self.table.filter(mask).to_pylist()

    def read_row(self, row_id: str) -> dict | None:
        """The whole row `row_id`, JSON fields parsed; reads only the row group that holds it."""
        index = self.position(row_id)
        if index is None:
            return None
        entry = self.table.slice(index, 1).to_pylist()[0]
        parquet = pq.ParquetFile(self.files[entry["_file"]])
        start = 0
        for group in range(parquet.num_row_groups):
            size = parquet.metadata.row_group(group).num_rows
            if entry["_row"] < start + size:
                one = parquet.read_row_group(group).slice(entry["_row"] - start, 1)
                return rowlib.from_table(one, rundir.row_kind(self.stage))[0]
            start += size
        return None


class Catalogs:
    """The catalogs of a run directory, built on first use and rebuilt when their shard files change."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._built: dict[str, Catalog] = {}
        self._lock = threading.Lock()

    def stages(self) -> list[str]:
        return [s for s in STAGE_DIRS if rundir.stage_files(self.run_dir, s)]

    def get(self, stage: str) -> Catalog:
        with self._lock:
            for attempt in range(3):  # a shard replaced while it was read (a stage or curate running): read again
                try:
                    cached = self._built.get(stage)
                    if cached is None or cached.signature != _signature(rundir.stage_files(self.run_dir, stage)):
                        cached = self._built[stage] = Catalog.build(self.run_dir, stage)
                    return cached
                except (FileNotFoundError, pa.ArrowInvalid):
                    if attempt == 2:
                        raise
