"""trajforge's own trajectory rows (JSONL or Parquet, e.g. another run's `verified/` or a published dataset):
taken as they are, less what verify and curate wrote (checks, judgments, passed, score, split), which the
run's own verify and curate redo."""

from pipeline.ingest.build import Unmappable

REDONE = {"checks": None, "judgments": None, "passed": None, "score": None, "split": None}


def row_of(record) -> dict:
    if not isinstance(record, dict) or "messages" not in record:
        raise Unmappable("not a trajectory row (no 'messages')")
    return {**record, **REDONE}
