"""Every figure of the run report, as plain JSON, read from the run directory itself: the stage folders'
manifests and done-markers, a few columns of their shards (never whole rows), curate's manifest and report,
and the history of stage commands (for what only a command knows: LLM requests, retries, seconds).
"""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import facets, rundir
from pipeline.report import history
from pipeline.stages import PREVIOUS, ROW_STAGES, STAGE_DIRS
from pipeline.verify import committee, step_values

EXAMPLE_CHARS = 300


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def done_files(run_dir: Path, stage: str) -> list[Path]:
    """The shards of a row stage made with its current stage hash (a shard of an older config is not counted)."""
    folder = Path(run_dir) / STAGE_DIRS[stage]
    manifest = _json(folder / "_manifest.json")
    return [folder / name for name, info in sorted(manifest.get("shards", {}).items()) if info.get("stage_hash") == manifest.get("stage_hash")]


def _tables(files: list[Path], columns: list[str]):
    for path in files:
        yield facets.read_columns(path, columns)


def stage_table(run_dir: Path, commands: dict) -> list[dict]:
    """One entry per stage that ran, in pipeline order: its shards and rows (counted from every finished shard,
    whichever command wrote it) and the summed figures of its commands."""
    out = []
    for stage in ROW_STAGES:
        folder = run_dir / STAGE_DIRS[stage]
        manifest = _json(folder / "_manifest.json")
        if not manifest:
            continue
        done = {name: info for name, info in manifest["shards"].items() if info["stage_hash"] == manifest["stage_hash"]}
        entry = {"stage": stage, "shards_done": len(done), "shards": manifest["num_shards"], "rows_out": sum(i["rows"] for i in done.values())}
        if stage in PREVIOUS:
            before = _json(run_dir / STAGE_DIRS[PREVIOUS[stage]] / "_manifest.json").get("shards", {})
            entry["rows_in"] = sum(before.get(name, {}).get("rows", 0) for name in done)
        if stage != "synthesize":
            tables = list(_tables([folder / name for name in sorted(done)], ["error", "passed", "meta"]))
            entry["errors"] = sum(t.num_rows - t.column("error").null_count for t in tables)
            entry["waiting_retry"] = sum(pc.sum(pc.match_substring(pc.cast(t.column("meta"), pa.string()), '"transient":').cast("int64")).as_py() or 0
                                         for t in tables)
            if stage == "verify":
                entry["passed"] = sum(pc.sum(pc.fill_null(t.column("passed"), False).cast("int64")).as_py() or 0 for t in tables)
        out.append({**entry, **commands.get(stage, {})})
    manifest = _json(run_dir / STAGE_DIRS["curate"] / "_manifest.json")
    if manifest:
        curated = _json(run_dir / STAGE_DIRS["curate"] / "_report.json")
        out.append({"stage": "curate", "shards_done": 1, "shards": 1, "rows_in": curated.get("funnel", {}).get("verified"),
                    "rows_out": sum(manifest.get("splits", {}).values()), **commands.get("curate", {})})
    if "publish" in commands:
        out.append({"stage": "publish", **commands["publish"]})
    return out


def _value_counts(values: pa.Array) -> Counter:
    found = pc.value_counts(pc.drop_null(values)) if len(values) else None
    return Counter(dict(zip(found.field("values").to_pylist(), found.field("counts").to_pylist()))) if found else Counter()


def funnel(run_dir: Path) -> dict:
    """Rows per source at each stage: sampled -> ended without error -> passed verify -> kept by curate."""
    by_source: dict[str, Counter] = {}

    def add(step: str, counts: Counter) -> None:
        for source, n in counts.items():
            by_source.setdefault(source, Counter())[step] += n

    for table in _tables(done_files(run_dir, "sample"), ["source"]):
        add("sampled", _value_counts(table.column("source").combine_chunks()))
    for table in _tables(done_files(run_dir, "verify"), ["source", "error", "passed"]):
        source = table.column("source").combine_chunks()
        add("ended without error", _value_counts(pc.filter(source, pc.is_null(table.column("error")))))
        add("passed verify", _value_counts(pc.filter(source, pc.fill_null(table.column("passed"), False))))
    for table in _tables(rundir.stage_files(run_dir, "curate") if (run_dir / "dataset" / "_manifest.json").exists() else [], ["source"]):
        add("kept", _value_counts(table.column("source").combine_chunks()))
    steps = ("sampled", "ended without error", "passed verify", "kept")
    sources = {s: {step: counts.get(step, 0) for step in steps} for s, counts in sorted(by_source.items())}
    tasks = sum(info["rows"] for info in _json(run_dir / "tasks" / "_manifest.json").get("shards", {}).values())
    total = {"tasks": tasks, **{step: sum(c[step] for c in sources.values()) for step in steps}}
    return {"steps": list(steps), "by_source": sources, "total": total}


def _clip(text: str | None) -> str | None:
    return text if text is None or len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + " …"


def failures(run_dir: Path) -> dict:
    """Rows failing each check and rows with each kind of error, with the first such row as the example."""
    stage = "verify" if done_files(run_dir, "verify") else "sample"
    checks, kinds = Counter(), Counter()
    check_example, kind_example = {}, {}
    rows = 0
    columns = ["id", "error", "checks.list.element.name", "checks.list.element.passed", "checks.list.element.detail",
               "steps.list.element.error", "steps.list.element.tool_name"]
    for table in _tables(done_files(run_dir, stage), columns):
        rows += table.num_rows
        ids = table.column("id").combine_chunks()
        names, details, owners = facets.failing(table)
        checks.update(_value_counts(names))
        for name in set(pc.unique(names).to_pylist()) - check_example.keys():
            first = pc.index(names, name).as_py()
            check_example[name] = {"id": ids[int(owners[first])].as_py(), "detail": _clip(details[first].as_py())}
        per_row = facets.error_kinds(table)
        flat, flat_rows = pc.list_flatten(per_row), pc.list_parent_indices(per_row).to_numpy()
        kinds.update(_value_counts(flat))
        tool_text, tool_rows = facets.tool_errors(table)
        for kind in set(pc.unique(flat).to_pylist()) - kind_example.keys():
            row = int(flat_rows[pc.index(flat, kind).as_py()])
            text = tool_text[int(np.argmax(tool_rows == row))] if kind == facets.TOOL_ERROR else table.column("error")[row]
            kind_example[kind] = {"id": ids[row].as_py(), "detail": _clip(text.as_py())}
    share = lambda n: round(n / rows, 4) if rows else None  # noqa: E731
    return {"stage": stage, "rows": rows,
            "checks": [{"name": n, "rows": c, "share": share(c), "example": check_example[n]} for n, c in checks.most_common()],
            "errors": [{"kind": k, "rows": c, "share": share(c), "example": kind_example[k]} for k, c in kinds.most_common()]}


def quantiles(values: np.ndarray) -> dict:
    if not len(values):
        return {}
    q = np.quantile(values, [0.5, 0.9, 0.99])
    return {"p50": float(q[0]), "p90": float(q[1]), "p99": float(q[2]), "max": float(values.max()), "mean": float(values.mean())}


def latencies(run_dir: Path) -> np.ndarray:
    parts = [pc.drop_null(pc.struct_field(t.column("usage").combine_chunks(), "seconds")).to_numpy()
             for t in _tables(done_files(run_dir, "sample"), ["usage.seconds"])]
    return np.concatenate(parts) if parts else np.zeros(0)


def cost(run_dir: Path, commands: dict, kept_by_source: dict) -> dict:
    """Tokens and cost of the trajectories (per source, and per kept row), and the LLM spend of every stage."""
    stage = "verify" if done_files(run_dir, "verify") else "sample"  # verify's rows include its feedback retries
    per_source: dict[str, Counter] = {}
    for table in _tables(done_files(run_dir, stage), ["source", "usage.prompt_tokens", "usage.completion_tokens", "usage.cost_usd"]):
        usage = table.column("usage").combine_chunks()
        grouped = pa.table({"source": table.column("source"), **{f: pc.struct_field(usage, f) for f in ("prompt_tokens", "completion_tokens", "cost_usd")}})
        for item in grouped.group_by("source").aggregate([(f, "sum") for f in ("prompt_tokens", "completion_tokens", "cost_usd")]).to_pylist():
            counts = per_source.setdefault(item["source"], Counter())
            for f in ("prompt_tokens", "completion_tokens", "cost_usd"):
                counts[f] += item[f"{f}_sum"] or 0
    kept_total = sum(kept_by_source.values())

    def per_kept(counts: Counter, kept: int) -> dict:
        tokens = counts["prompt_tokens"] + counts["completion_tokens"]
        return {"prompt_tokens": int(counts["prompt_tokens"]), "completion_tokens": int(counts["completion_tokens"]),
                "cost_usd": counts["cost_usd"], "kept": kept, "tokens_per_kept": tokens / kept if kept else None,
                "cost_per_kept_usd": counts["cost_usd"] / kept if kept else None}

    total = sum(per_source.values(), Counter())
    spend = {stage: c.get("spent_usd", 0.0) for stage, c in commands.items() if "spent_usd" in c}
    spent = sum(spend.values())
    return {"total": per_kept(total, kept_total), "by_source": {s: per_kept(c, kept_by_source.get(s, 0)) for s, c in sorted(per_source.items())},
            "llm_spend_by_stage_usd": spend, "llm_spend_per_kept_usd": spent / kept_total if kept_total and spent else None}


def curation(run_dir: Path) -> dict:
    manifest = _json(run_dir / "dataset" / "_manifest.json")
    if not manifest:
        return {}
    curated = _json(run_dir / "dataset" / "_report.json")
    verified = curated.get("funnel", {}).get("verified")
    removed = manifest.get("removed", {})
    return {"verified": verified, "splits": manifest.get("splits", {}), "contaminated": curated.get("contaminated", []),
            "removed": [{"reason": r, "rows": n, "share": round(n / verified, 4) if verified else None} for r, n in removed.items()]}


def judges(run_dir: Path) -> dict:
    """Votes per judge and the committee's agreement figures over the verified rows that were judged."""
    votes: Counter = Counter()
    judged = []
    for table in _tables(done_files(run_dir, "verify"), ["judgments", "checks"]):
        lengths = pc.fill_null(pc.list_value_length(table.column("judgments")), 0)
        table = table.filter(pc.greater(lengths, 0))
        if not table.num_rows:
            continue
        flat = pc.list_flatten(table.column("judgments").combine_chunks())
        for judge, passed in zip(pc.struct_field(flat, "judge").to_pylist(), pc.struct_field(flat, "passed").to_pylist()):
            votes[(judge, {True: "pass", False: "fail", None: "abstained"}[passed])] += 1
        judged += zip(table.column("judgments").to_pylist(), table.column("checks").to_pylist())
    if not judged:
        return {}
    names = sorted({judge for judge, _ in votes})
    return {"votes": {j: {v: votes[(j, v)] for v in ("pass", "fail", "abstained")} for j in names}, **committee.run_stats(judged)}


def collect(run_dir: Path, report: dict) -> dict:
    """Everything the report shows, as plain JSON."""
    run_dir = Path(run_dir)
    commands = history.invocation_totals(run_dir, report)
    flow = funnel(run_dir)
    kept = {source: counts["kept"] for source, counts in flow["by_source"].items()}
    return {
        "stages": stage_table(run_dir, commands),
        "funnel": flow,
        "failures": failures(run_dir),
        "commands": commands,
        "cost": cost(run_dir, commands, kept),
        "latency_seconds": quantiles(latencies(run_dir)),
        "curate": curation(run_dir),
        "judges": judges(run_dir),
        "step_values": step_values.summary(done_files(run_dir, "verify")),
    }
