"""The run report: runs/<name>/report.json and report.html with PNG plots.

Built from the stage folders' Parquet columns (never whole rows), so it is cheap to regenerate at any point
with `trajforge report RUN_DIR`; stage summaries that the runner recorded in report.json are kept.
"""

import fcntl
import html
import json
import os
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pyarrow.compute as pc

from pipeline.verify import committee
import pyarrow.parquet as pq



def _read(folder: Path, columns: list[str]):
    files = sorted(folder.glob("part-*.parquet")) or sorted(folder.glob("data/*.parquet"))
    tables = []
    for path in files:
        names = pq.read_schema(path).names
        tables.append(pq.read_table(path, columns=[c for c in columns if c in names]))
    return tables


def _quantiles(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": ordered[-1], "mean": sum(ordered) / len(ordered)}


def collect(run_dir: Path) -> dict:
    """Everything the report shows, as plain JSON."""
    run_dir = Path(run_dir)
    stats: dict = {"funnel": {}}
    tasks = _read(run_dir / "tasks", ["id"])
    stats["funnel"]["tasks"] = sum(t.num_rows for t in tasks)

    sampled = _read(run_dir / "trajectories", ["source", "error", "usage"])
    stats["funnel"]["sampled"] = sum(t.num_rows for t in sampled)
    latency, by_source, errors = [], Counter(), 0
    tokens = cost = 0.0
    for table in sampled:
        usage = table["usage"].combine_chunks()
        latency += usage.field("seconds").to_pylist()
        tokens += (pc.sum(usage.field("prompt_tokens")).as_py() or 0) + (pc.sum(usage.field("completion_tokens")).as_py() or 0)
        cost += pc.sum(usage.field("cost_usd")).as_py() or 0.0
        by_source.update(table["source"].to_pylist())
        errors += table.num_rows - table["error"].null_count
    stats["sampled_by_source"] = dict(by_source)
    stats["sample_errors"] = errors
    stats["latency_seconds"] = _quantiles([v for v in latency if v is not None])
    stats["tokens"] = int(tokens)
    stats["cost_usd"] = round(cost, 6)

    verified = _read(run_dir / "verified", ["passed", "source", "checks", "judgments"])
    stats["funnel"]["passed"] = sum(pc.sum(pc.fill_null(t["passed"], False).cast("int64")).as_py() or 0 for t in verified)
    check_seen, check_passed, passed_by_source, seen_by_source = Counter(), Counter(), Counter(), Counter()
    judge_votes: Counter = Counter()
    judged = []
    for table in verified:
        for source, passed, checks, judgments in zip(*(table[c].to_pylist() for c in ("source", "passed", "checks", "judgments"))):
            seen_by_source[source] += 1
            passed_by_source[source] += bool(passed)
            for check in checks or []:
                check_seen[check["name"]] += 1
                check_passed[check["name"]] += check["passed"]
            judged.append((judgments, checks))
            for j in judgments or []:
                judge_votes[(j["judge"], {True: "pass", False: "fail", None: "abstain"}[j["passed"]])] += 1
    stats["check_pass_rates"] = {name: round(check_passed[name] / check_seen[name], 4) for name in sorted(check_seen)}
    stats["pass_rate_by_source"] = {s: round(passed_by_source[s] / seen_by_source[s], 4) for s in sorted(seen_by_source)}
    stats["judge_votes"] = {f"{judge}:{vote}": n for (judge, vote), n in sorted(judge_votes.items())}
    stats["committee"] = committee.run_stats(judged)

    manifest = run_dir / "dataset" / "_manifest.json"
    kept = json.loads(manifest.read_text()).get("splits", {}) if manifest.exists() else {}
    stats["funnel"]["kept"] = sum(kept.values())
    stats["kept_by_split"] = kept
    stats["cost_per_kept_usd"] = round(cost / stats["funnel"]["kept"], 6) if stats["funnel"]["kept"] else None
    stats["tokens_per_kept"] = round(tokens / stats["funnel"]["kept"], 1) if stats["funnel"]["kept"] else None
    return stats


def plot(stats: dict, folder: Path, latencies_from: Path) -> list[str]:
    """Write PNG plots; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    made = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(folder / name, dpi=90)
        plt.close(fig)
        made.append(name)

    fig, ax = plt.subplots(figsize=(6, 3))
    funnel = stats["funnel"]
    ax.bar(list(funnel), list(funnel.values()), color="#4c72b0")
    for i, v in enumerate(funnel.values()):
        ax.annotate(str(v), (i, v), ha="center", va="bottom")
    ax.set_title("Funnel: tasks -> sampled -> passed -> kept")
    save(fig, "funnel.png")

    if stats["check_pass_rates"]:
        fig, ax = plt.subplots(figsize=(6, 3))
        names = list(stats["check_pass_rates"])
        ax.barh(names, [stats["check_pass_rates"][n] for n in names], color="#55a868")
        ax.set_xlim(0, 1)
        ax.set_title("Pass rate per check")
        save(fig, "checks.png")

    latencies = [v for t in _read(latencies_from, ["usage"]) for v in t["usage"].combine_chunks().field("seconds").to_pylist() if v is not None]
    if latencies:
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.hist(latencies, bins=30, color="#c44e52")
        ax.set_xlabel("seconds per trajectory")
        ax.set_title("Sampling latency")
        save(fig, "latency.png")
    return made


def _table(title: str, mapping: dict) -> str:
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in mapping.items())
    return f"<h2>{html.escape(title)}</h2><table>{rows}</table>"


def render_html(run_dir: Path, report: dict, images: list[str]) -> str:
    stats = report["stats"]
    stage_rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(s.get(k, '')))}</td>" for k in ("stage", "rows_in", "rows_out", "passed", "errors", "reused", "written", "seconds")) + "</tr>"
        for s in report.get("stages", {}).values())
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>trajforge report: {html.escape(run_dir.name)}</title>",
        "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>",
        f"<h1>trajforge run report: {html.escape(run_dir.name)}</h1>",
        "<h2>Stages</h2><table><tr><th>stage</th><th>rows in</th><th>rows out</th><th>passed</th><th>errors</th>"
        f"<th>reused shards</th><th>written</th><th>seconds</th></tr>{stage_rows}</table>",
        _table("Funnel", stats["funnel"]),
        _table("Tokens and cost", {"tokens": stats["tokens"], "cost (USD)": stats["cost_usd"],
                                   "tokens per kept trajectory": stats["tokens_per_kept"], "cost per kept trajectory (USD)": stats["cost_per_kept_usd"]}),
        _table("Pass rate by source", stats["pass_rate_by_source"]),
        _table("Pass rate per check", stats["check_pass_rates"]),
        _table("Sampling latency (seconds per trajectory)", stats["latency_seconds"]),
    ]
    if stats["judge_votes"]:
        parts.append(_table("Judge votes", stats["judge_votes"]))
    if stats.get("committee"):
        flat = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in stats["committee"].items()}
        parts.append(_table("Judge committee: pass rate, abstentions, agreement, leniency", flat))
    parts += [f"<h3>{html.escape(name)}</h3><img src='report_plots/{html.escape(name)}'>" for name in images]
    parts.append("</body></html>")
    return "\n".join(parts)


@contextmanager
def editing(run_dir: Path):
    """report.json as a dict, locked against the other shard processes of the run and saved atomically."""
    path = Path(run_dir) / "report.json"
    with open(Path(run_dir) / ".report.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        report = json.loads(path.read_text()) if path.exists() else {}
        report.setdefault("stages", {})
        yield report
        tmp = path.with_name(f".report.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(report, indent=2, sort_keys=True))
        os.replace(tmp, path)


def record_summary(run_dir: Path, summary: dict) -> None:
    with editing(run_dir) as report:
        report["stages"][summary["stage"]] = summary


def write(run_dir: Path) -> Path:
    """(Re)generate report.json and report.html; returns the HTML path."""
    run_dir = Path(run_dir)
    with editing(run_dir) as report:
        report["stats"] = collect(run_dir)
        images = plot(report["stats"], run_dir / "report_plots", run_dir / "trajectories")
        page = run_dir / "report.html"
        tmp = page.with_name(f".report.html.{os.getpid()}.tmp")
        tmp.write_text(render_html(run_dir, report, images))
        os.replace(tmp, page)
    return page
