"""What a person filters trajectories by, computed in Arrow from a shard's columns: the kind of a row's error,
the checks it failed, the committee's verdict, whether it is a reflection or feedback retry and of which row.

The viewer's filters and the run report's failure tables read the same columns through these functions, so a
count in the report is the count the viewer shows for that filter. Only the leaf columns named in `COLUMNS`
are read (not whole steps or messages), and everything is vectorized: no Python object per row.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import UserError

# Parquet leaf paths: reading `steps.list.element.error` reads that field of every step and nothing else.
COLUMNS = ["id", "task_id", "source", "domain", "format", "instruction", "passed", "score", "error", "split", "meta",
           "checks.list.element.name", "checks.list.element.passed", "checks.list.element.detail",
           "steps.list.element.error", "steps.list.element.tool_name", "judgments.list.element.passed"]
TOOL_ERROR = "tool error"
VERDICTS = ("pass", "fail", "no quorum", "not judged")


def read_columns(path, columns: list[str] = COLUMNS) -> pa.Table:
    """The facet columns a shard has (curated shards have `split`, earlier stages do not); an unreadable file is
    a UserError naming it."""
    try:
        parquet = pq.ParquetFile(path)
        present = set(parquet.schema_arrow.names)
        return parquet.read(columns=[c for c in columns if c.split(".")[0] in present])
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise UserError(f"{path}: not a readable Parquet file ({exc}); re-run its stage to redo it") from None


def error_kind(errors: pa.Array) -> pa.Array:
    """A row error without its particulars: "step 3: unparseable reply: Expecting ',' ..." -> "unparseable
    reply", "LLM request failed: timeout: no response in time" -> "LLM request failed: timeout",
    "no final answer within max_steps=4" -> "no final answer within max_steps". Null where there is no error."""
    bare = pc.replace_substring_regex(errors, r"^step \d+: ", "")
    kind = pc.struct_field(pc.extract_regex(bare, r"^(?P<kind>LLM request failed: \w+|[^:=(]*)"), [0])
    return pc.utf8_rtrim_whitespace(kind)


def _lists(values: pa.Array, owners: np.ndarray, rows: int) -> pa.Array:
    """A list array of `rows` rows: row r holds the `values` whose owner is r, in their order."""
    order = np.argsort(owners, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(owners, minlength=rows))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values.take(pa.array(order, pa.int64())))


def _scatter(values: pa.Array, owners: np.ndarray, rows: int, default: str) -> pa.Array:
    """A string per row: `values[i]` for row `owners[i]`, `default` for rows no value belongs to."""
    index = np.full(rows, len(values), dtype=np.int64)
    index[owners] = np.arange(len(owners))
    return pa.concat_arrays([values.cast(pa.string()), pa.array([default], pa.string())]).take(pa.array(index))


def _leaves(table: pa.Table, column: str, fields: list[str]):
    """(struct fields of every element, parent row of each) of a list<struct> column."""
    lists = table.column(column).combine_chunks()
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists)
    return [pc.struct_field(flat, name) for name in fields], parents


def failing(table: pa.Table) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """Every failed check of the table's rows: (name, detail, row index), row by row in check order."""
    if "checks" not in table.column_names:
        return pa.array([], pa.string()), pa.array([], pa.string()), np.zeros(0, dtype=np.int64)
    (names, passed, detail), parents = _leaves(table, "checks", ["name", "passed", "detail"])
    failed = pc.invert(pc.fill_null(passed, True))
    return pc.filter(names, failed), pc.filter(detail, failed), pc.filter(parents, failed).to_numpy().astype(np.int64)


def failed_checks(table: pa.Table) -> pa.Array:
    """Per row, the names of its checks that did not pass (an empty list before verify)."""
    names, _, rows = failing(table)
    return _lists(names, rows, table.num_rows)


def tool_errors(table: pa.Table) -> tuple[pa.Array, np.ndarray]:
    """The errors tool calls returned: (error text, row index), in step order."""
    (step_error, tool), parents = _leaves(table, "steps", ["error", "tool_name"])
    failed = pc.and_(pc.is_valid(step_error), pc.is_valid(tool))
    return pc.filter(step_error, failed), pc.filter(parents, failed).to_numpy().astype(np.int64)


def error_kinds(table: pa.Table) -> pa.Array:
    """Per row, the kinds of error it holds: its row error's kind, plus "tool error" when a tool call returned
    an error (tau2-bench users filter by both)."""
    kind = error_kind(table.column("error").combine_chunks())
    has_kind = pc.is_valid(kind)
    tool_failed = np.unique(tool_errors(table)[1])
    values = pa.concat_arrays([pc.filter(kind, has_kind), pa.array([TOOL_ERROR] * len(tool_failed), pa.string())])
    owners = np.concatenate([np.flatnonzero(has_kind.to_numpy(zero_copy_only=False)), tool_failed]).astype(np.int64)
    return _lists(values, owners, table.num_rows)


def verdict(table: pa.Table) -> pa.Array:
    """The judge committee's verdict per row: pass, fail, no quorum (too few judges voted) or not judged."""
    if "checks" not in table.column_names:
        return pa.array(["not judged"] * table.num_rows, pa.string())
    (names, passed, detail), parents = _leaves(table, "checks", ["name", "passed", "detail"])
    committee = pc.equal(names, "committee")
    no_quorum = pc.starts_with(pc.fill_null(pc.filter(detail, committee), ""), "no quorum")
    label = pc.if_else(no_quorum, "no quorum", pc.if_else(pc.fill_null(pc.filter(passed, committee), False), "pass", "fail"))
    return _scatter(label, pc.filter(parents, committee).to_numpy(), table.num_rows, "not judged")


def outcome(table: pa.Table) -> pa.Array:
    """passed / failed / not verified (sample's rows carry no verdict yet)."""
    passed = table.column("passed").combine_chunks() if "passed" in table.column_names else pa.nulls(table.num_rows, pa.bool_())
    return pc.if_else(pc.is_null(passed), "not verified", pc.if_else(passed, "passed", "failed"))


def lineage(table: pa.Table) -> tuple[pa.Array, pa.Array]:
    """(kind, parent id) per row: "reflection" and "feedback" rows name the row they were made from; others
    are "sampled" with a null parent. Read from the canonical JSON of `meta` without parsing it per row."""
    meta = pc.fill_null(table.column("meta").combine_chunks().cast(pa.string()), "")
    parent = pc.struct_field(pc.extract_regex(meta, r'"parent_id":"(?P<id>[^"]+)"'), [0])
    kind = pc.if_else(pc.match_substring(meta, '"reflection":{'), "reflection",
                      pc.if_else(pc.match_substring(meta, '"feedback_round":'), "feedback", "sampled"))
    return kind, parent
