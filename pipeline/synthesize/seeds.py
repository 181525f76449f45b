"""Seed import: tasks from a JSONL or Parquet file, or a dataset loaded with `datasets` (a local folder or a
Hub name), mapped onto the task schema by a field mapping in the config.

```yaml
synthesize:
  seeds:
    - name: gsm                      # rows get source "seed:gsm"
      path: data/gsm_sample.jsonl    # .jsonl, .parquet, or anything datasets.load_dataset accepts
      split: train                   # for datasets
      limit: 500
      defaults: {domain: arithmetic, tools: [calculator]}
      mapping: {instruction: question, ground_truth.answer: answer}   # task field -> source field (dotted)
```
A task field without a mapping is taken from the source field of the same name, else from `defaults`.
A row that still misses a field, or breaks the task schema, is skipped and counted, with the reason logged.
"""

import json
import logging
from functools import lru_cache
from pathlib import Path

from pipeline import schema
from pipeline.errors import UserError
from pipeline.jsonutil import dotted_get

log = logging.getLogger("trajforge")
TASK_FIELDS = ("domain", "instruction", "tools", "environment", "ground_truth", "solution", "difficulty", "meta")
BASE_DEFAULTS = {"environment": {}, "solution": None, "difficulty": 1, "meta": {}}


def _read_jsonl(path: Path) -> list:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
    return rows


@lru_cache(maxsize=8)
def load_rows(path: str, split: str, limit: int | None) -> tuple:
    """The seed rows of one source (cached: every shard of a run reads the same source)."""
    source = Path(path)
    try:
        if source.suffix == ".jsonl":
            rows = _read_jsonl(source)
        elif source.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows = pq.read_table(source).to_pylist()
        else:
            import datasets

            rows = list(datasets.load_dataset(path, split=split))
    except FileNotFoundError:
        raise UserError(f"{path}: no such seed file or dataset") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read seeds ({str(exc).splitlines()[0]})") from None
    return tuple(rows[:limit] if limit else rows)


def _get(row: dict, dotted: str):
    try:
        return dotted_get(row, dotted)
    except KeyError:
        raise KeyError(dotted) from None


def _set(target: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


def check_mapping(spec: dict, position: int) -> None:
    """Fail early when the mapping names a source field the first row does not have."""
    rows = load_rows(spec["path"], spec["split"], spec.get("limit"))
    if not rows:
        raise UserError(f"synthesize.seeds[{position}]: {spec['path']} has no rows")
    for target, source in spec["mapping"].items():
        if target.split(".")[0] not in TASK_FIELDS:
            raise UserError(f"synthesize.seeds[{position}].mapping.{target}: not a task field ({', '.join(TASK_FIELDS)})")
        try:
            _get(rows[0], source)
        except KeyError:
            raise UserError(f"synthesize.seeds[{position}].mapping.{target}: field {source!r} is not in {spec['path']} "
                            f"(fields: {', '.join(map(str, rows[0]))})") from None


def map_row(raw, spec: dict) -> dict:
    """Task content (no id or provenance) from one seed row; raises KeyError naming a mapped field that is missing."""
    if not isinstance(raw, dict):
        raise KeyError("(row is not an object)")
    task = {**BASE_DEFAULTS, **spec["defaults"]}
    for field in TASK_FIELDS:
        if field in raw and field not in spec["mapping"]:
            task[field] = raw[field]
    for target, source in spec["mapping"].items():
        _set(task, target, _get(raw, source))
    task["meta"] = {**task.get("meta", {}), "seed_name": spec["name"]}
    return task


def seed_content(spec: dict, index: int) -> tuple[dict | None, str | None]:
    """(task content, None), or (None, reason) for a row that cannot become a valid task."""
    raw = load_rows(spec["path"], spec["split"], spec.get("limit"))[index]
    try:
        content = {"source": f"seed:{spec['name']}", **map_row(raw, spec)}
    except KeyError as exc:
        return None, f"missing field {exc.args[0]}"
    probe = {"id": "probe", **content, "config_hash": "", "pipeline_version": ""}
    problems = schema.errors("task", probe)
    return (None, "; ".join(problems[:3])) if problems else (content, None)


def skip(spec: dict, index: int, reason: str) -> None:
    log.warning("synthesize: seed row %d of %s skipped: %s", index, spec["path"], reason)
