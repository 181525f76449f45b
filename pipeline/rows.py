"""Arrow schemas for task and trajectory rows, and conversion between Python rows and Arrow tables.

Python rows are plain dicts whose JSON fields hold Python values; in Parquet those fields use the JSON
logical type (`pa.json_()`), which `datasets` reads back as `Json()`. `schemas/*.schema.json` is the source of
truth for row content; a test keeps these Arrow schemas in step with it.
"""

import json

import pyarrow as pa

from pipeline.jsonutil import canonical_json

STEP = pa.struct(
    [
        ("index", pa.int32()),
        ("message_index", pa.int32()),
        ("tool_call_id", pa.string()),
        ("action_type", pa.string()),
        ("thought", pa.string()),
        ("tool_name", pa.string()),
        ("tool_arguments", pa.string()),
        ("raw_action", pa.string()),
        ("observation", pa.string()),
        ("error", pa.string()),
        ("step_verdict", pa.struct([("label", pa.string()), ("score", pa.float64()), ("judge", pa.string()), ("rollouts", pa.int32())])),
        ("seconds", pa.float64()),
        ("completion_tokens", pa.int64()),
    ]
)

# Per assistant message, where the endpoint captures them (`capture` in its profile): null otherwise.
TOKENS = pa.struct(
    [
        ("message_index", pa.int32()),
        ("prompt_token_ids", pa.list_(pa.int64())),
        ("token_ids", pa.list_(pa.int64())),
        ("logprobs", pa.list_(pa.float64())),
        ("token_texts", pa.list_(pa.string())),
        ("missing", pa.list_(pa.string())),
    ]
)

TASK = pa.schema(
    [
        ("id", pa.string()),
        ("domain", pa.string()),
        ("source", pa.string()),
        ("instruction", pa.string()),
        ("tools", pa.list_(pa.string())),
        ("environment", pa.json_()),
        ("ground_truth", pa.json_()),
        ("solution", pa.json_()),
        ("difficulty", pa.int32()),
        ("meta", pa.json_()),
        ("config_hash", pa.string()),
        ("pipeline_version", pa.string()),
    ]
)

TRAJECTORY = pa.schema(
    [
        ("id", pa.string()),
        ("task_id", pa.string()),
        ("domain", pa.string()),
        ("source", pa.string()),
        ("format", pa.string()),
        ("instruction", pa.string()),
        ("messages", pa.list_(pa.json_())),
        ("tools", pa.list_(pa.json_())),
        ("train_mask", pa.list_(pa.bool_())),
        ("steps", pa.list_(STEP)),
        ("final_answer", pa.string()),
        ("ground_truth", pa.json_()),
        ("environment", pa.json_()),
        ("difficulty", pa.int32()),
        ("meta", pa.json_()),
        (
            "teacher",
            pa.struct(
                [
                    ("model", pa.string()),
                    ("endpoint", pa.string()),
                    ("mode", pa.string()),
                    ("temperature", pa.float64()),
                    ("seed", pa.int64()),
                    ("prompt_id", pa.string()),
                ]
            ),
        ),
        (
            "usage",
            pa.struct(
                [
                    ("prompt_tokens", pa.int64()),
                    ("completion_tokens", pa.int64()),
                    ("llm_calls", pa.int64()),
                    ("cost_usd", pa.float64()),
                    ("seconds", pa.float64()),
                    ("cached_tokens", pa.int64()),
                    ("reasoning_tokens", pa.int64()),
                ]
            ),
        ),
        ("tokens", pa.list_(TOKENS)),
        ("error", pa.string()),
        ("checks", pa.list_(pa.struct([("name", pa.string()), ("passed", pa.bool_()), ("detail", pa.string())]))),
        (
            "judgments",
            pa.list_(
                pa.struct(
                    [
                        ("judge", pa.string()),
                        ("model", pa.string()),
                        ("passed", pa.bool_()),
                        ("score", pa.float64()),
                        ("rationale", pa.string()),
                    ]
                )
            ),
        ),
        ("passed", pa.bool_()),
        ("score", pa.float64()),
        ("split", pa.string()),
        ("config_hash", pa.string()),
        ("pipeline_version", pa.string()),
    ]
)

SCHEMAS = {"task": TASK, "trajectory": TRAJECTORY}
# Columns added after run directories had files without them (the stage hashes stayed, so those files are
# still read): an older file reads as if they were null. Struct fields added later (usage.cached_tokens) read
# as null through the cast.
ADDED_COLUMNS = {"trajectory": ("tokens",)}


def conform(table: pa.Table, kind: str) -> pa.Table:
    """A table written before columns or struct fields were added, in today's `kind` schema (as is when it
    cannot be: the caller reports the mismatch)."""
    schema = SCHEMAS[kind]
    for name in ADDED_COLUMNS.get(kind, ()):
        if name not in table.column_names:
            table = table.append_column(schema.field(name), pa.nulls(table.num_rows, schema.field(name).type))
    if table.schema.equals(schema, check_metadata=False) or any(name not in table.column_names for name in schema.names):
        return table
    try:
        return table.select(schema.names).cast(schema.with_metadata(table.schema.metadata))
    except (pa.ArrowException, ValueError):
        return table


def _is_json(t: pa.DataType) -> bool:
    return isinstance(t, pa.JsonType)


def _storage_type(t: pa.DataType) -> pa.DataType:
    if _is_json(t):
        return pa.string()
    if pa.types.is_list(t):
        return pa.list_(_storage_type(t.value_type))
    return t


def storage_schema(schema: pa.Schema) -> pa.Schema:
    """The same schema with JSON columns as plain strings (what Python values are built against)."""
    return pa.schema([pa.field(f.name, _storage_type(f.type)) for f in schema])


def _json_columns(schema: pa.Schema) -> dict[str, bool]:
    """JSON column name -> whether it is a list of JSON values."""
    out = {}
    for f in schema:
        if _is_json(f.type):
            out[f.name] = False
        elif pa.types.is_list(f.type) and _is_json(f.type.value_type):
            out[f.name] = True
    return out


def to_table(rows: list[dict], kind: str, metadata: dict[str, str] | None = None) -> pa.Table:
    """Python rows -> Arrow table of the `kind` schema (JSON fields serialized canonically)."""
    return to_table_with_schema(rows, SCHEMAS[kind], metadata)


def to_table_with_schema(rows: list[dict], schema: pa.Schema, metadata: dict[str, str] | None = None) -> pa.Table:
    """Python rows -> Arrow table of any schema whose JSON columns use pa.json_() (export views use it too)."""
    json_cols = _json_columns(schema)
    encoded = []
    for row in rows:
        out = dict(row)
        for name, is_list in json_cols.items():
            value = out.get(name)
            if value is not None:
                out[name] = [canonical_json(v) for v in value] if is_list else canonical_json(value)
        encoded.append(out)
    table = pa.Table.from_pylist(encoded, schema=storage_schema(schema)).cast(schema)
    return table.replace_schema_metadata({k.encode(): v.encode() for k, v in (metadata or {}).items()})


def from_table(table: pa.Table, kind: str) -> list[dict]:
    """Arrow table -> Python rows with JSON fields parsed."""
    schema = SCHEMAS[kind]
    json_cols = _json_columns(schema)
    rows = table.select(schema.names).cast(storage_schema(schema)).to_pylist()
    for row in rows:
        for name, is_list in json_cols.items():
            value = row[name]
            if value is not None:
                row[name] = [json.loads(v) for v in value] if is_list else json.loads(value)
    return rows
