"""Benchmark curate: generate N synthetic verified trajectory rows (about 2 KB each) and time curate on them
(filters, exact and near dedup, mix, shard write and the card), printing seconds and peak RSS.

    .venv/bin/python scripts/bench_curate.py                  # 1,000,000 rows (target: < 120 s, < 4 GB RSS)
    .venv/bin/python scripts/bench_curate.py --rows 100000 --keep /tmp/bench   # keep (and reuse) the rows

Rows come in tasks of four samples: some exact duplicates (other thoughts), some near duplicates (a word added to
the instruction), some failed; the rest differ in their numbers. Curate runs in a fresh process, so the peak RSS
printed is its own (plus its scan workers').
"""

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import config as configlib  # noqa: E402
from pipeline import rows as rowlib  # noqa: E402
from pipeline import shards  # noqa: E402
from pipeline.curate.stage import CurateStage  # noqa: E402

VERIFY_HASH = "bench-verify"
DOMAINS = ["arithmetic", "sql", "units_dates", "kb_multihop"]
SYSTEM = ("You are an agent that solves the user's task step by step with tools.\nTools:\n- calculator: Evaluate an "
          "arithmetic expression. Parameters: {\"expression\": \"string\"}\n- sql: Run a read-only SQL query against the "
          "task database. Parameters: {\"query\": \"string\"}\nAnswer in this format, one action per reply:\nThought: "
          "<your reasoning>\nAction: <tool name>\nAction Input: <JSON object of arguments>\n")
WORDS = "apples pears tickets notebooks pens trains rivers cities invoices orders parcels lamps chairs books".split()
CHECKS = [{"name": n, "passed": True, "detail": "ok"} for n in ("schema", "messages_steps", "final_answer", "answer")]


def trajectory(rng: random.Random, task: int, numbers: list[int], thought_tag: str, suffix: str = "") -> dict:
    a, b, c, d = numbers
    item, other = WORDS[task % len(WORDS)], WORDS[(task // 7) % len(WORDS)]
    instruction = (f"Task {task}: a shop sells {a} {item} at ${b}.{c:02d} each and {d} {other} at ${c}.{a:02d} each. "
                   f"How much does the whole order cost, in dollars, after a {d % 20}% discount?{suffix}")
    steps, messages = [], [{"role": "system", "content": SYSTEM}, {"role": "user", "content": instruction}]
    expressions = [f"{a} * {b}.{c:02d}", f"{d} * {c}.{a:02d}", f"({a * b} + {d * c}) * {100 - d % 20} / 100"]
    for i, expression in enumerate(expressions):
        thought = f"Step {i + 1}{thought_tag}: compute {['the first line', 'the second line', 'the discounted total'][i]} of order {task}."
        args = json.dumps({"expression": expression})
        raw = f"Thought: {thought}\nAction: calculator\nAction Input: {args}"
        observation = str(round(rng.random() * 1000, 2))
        messages += [{"role": "assistant", "content": raw}, {"role": "user", "content": f"Observation: {observation}"}]
        steps.append({"index": i, "message_index": len(messages) - 2, "tool_call_id": None, "action_type": "tool_call",
                      "thought": thought, "tool_name": "calculator", "tool_arguments": args, "raw_action": raw,
                      "observation": observation, "error": None, "step_verdict": None, "seconds": 0.001, "completion_tokens": 40})
    answer = f"{a * b + d * c}.{c:02d}"
    raw = f"Thought: The discounted total is known.\nFinal Answer: {answer}"
    messages.append({"role": "assistant", "content": raw})
    steps.append({"index": 3, "message_index": len(messages) - 1, "tool_call_id": None, "action_type": "final_answer",
                  "thought": "The discounted total is known.", "tool_name": None, "tool_arguments": None, "raw_action": raw,
                  "observation": None, "error": None, "step_verdict": None, "seconds": 0.0, "completion_tokens": 20})
    return {"instruction": instruction, "messages": messages, "steps": steps, "final_answer": answer}


def make_row(rng: random.Random, i: int) -> dict:
    task, sample = divmod(i, 4)
    base = [rng.randint(2, 99) for _ in range(4)]
    score, passed = 1.0, True
    if sample == 2 and task % 4 == 0:
        body, score = trajectory(random.Random(task), task, _numbers(task), " (checked)"), 0.9  # exact duplicate of sample 0
    elif sample == 2 and task % 4 == 1:
        body, score = trajectory(random.Random(task), task, _numbers(task), "", " Thanks."), 0.9  # near duplicate
    elif sample == 0:
        body = trajectory(random.Random(task), task, _numbers(task), "")
    else:
        body = trajectory(rng, task, base, "")
    if sample == 3 and task % 5 == 0:
        body["final_answer"], passed, score = "0", False, 0.5
    return {
        "id": f"traj-{i:09d}", "task_id": f"task-{task:08d}", "domain": DOMAINS[task % 4], "source": "program",
        "format": "react", **body, "tools": None, "train_mask": [m["role"] == "assistant" for m in body["messages"]],
        "ground_truth": {"answer": body["final_answer"]}, "environment": None, "difficulty": 1 + task % 10,
        "meta": {"tools": ["calculator"]}, "teacher": {"model": "program", "endpoint": "program", "mode": "program",
                                                       "temperature": None, "seed": None, "prompt_id": "bench"},
        "usage": {"prompt_tokens": 0, "completion_tokens": 140, "llm_calls": 0, "cost_usd": 0.0, "seconds": 0.01},
        "tokens": None, "error": None, "checks": CHECKS if passed else CHECKS[:3] + [{"name": "answer", "passed": False, "detail": "wrong"}],
        "judgments": None, "passed": passed, "score": score, "split": None, "config_hash": VERIFY_HASH, "pipeline_version": "bench",
    }


def _numbers(task: int) -> list[int]:
    rng = random.Random(task * 7919)
    return [rng.randint(2, 99) for _ in range(4)]


QUOTE = json.encoder.encode_basestring  # the C string encoder: messages are {content, role} only
META = json.dumps({"tools": ["calculator"]}, separators=(",", ":"))


def write_shard(job: tuple[Path, int, int]) -> int:
    """One verified shard of generated rows (columns built directly: rowlib.to_table is made for correctness,
    not for a million rows)."""
    path, start, count = job
    rng = random.Random(start)
    rows = [make_row(rng, i) for i in range(start, start + count)]
    columns = {name: [row[name] for row in rows] for name in rowlib.TRAJECTORY.names}
    columns["messages"] = [[f'{{"content":{QUOTE(m["content"])},"role":"{m["role"]}"}}' for m in v] for v in columns["messages"]]
    columns["ground_truth"] = [f'{{"answer":{QUOTE(v["answer"])}}}' for v in columns["ground_truth"]]
    columns["meta"] = [META] * len(rows)
    storage = rowlib.storage_schema(rowlib.TRAJECTORY)
    table = pa.table({f.name: pa.array(columns[f.name], f.type) for f in storage}).cast(rowlib.TRAJECTORY)
    shards.write_finished(path, table, VERIFY_HASH)
    return count


def generate(folder: Path, rows: int, per_shard: int) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / shards.shard_name(k), start, min(per_shard, rows - start)) for k, start in enumerate(range(0, rows, per_shard))]
    with Pool(2) as pool:
        sum(pool.imap_unordered(write_shard, jobs))
    return len(jobs)


def bench_config(root: Path) -> configlib.Config:
    overrides = ["curate.views=[]", "curate.mix.ratios={arithmetic: 0.25, sql: 0.25, units_dates: 0.25, kb_multihop: 0.25}"]
    return configlib.load(Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml", overrides)


def run_curate(root: Path, num_shards: int) -> None:
    """The timed part, in its own process: prints seconds and peak RSS of this process and of its scan workers."""
    stage = CurateStage(bench_config(root), "bench-curate", VERIFY_HASH, num_shards)
    began = time.perf_counter()
    stage.prepare(root / "verified")
    summary = stage.run(root / "verified", root / "dataset", lambda desc, total: tqdm(disable=True))
    seconds = time.perf_counter() - began
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    main_mb, worker_mb = own.ru_maxrss / 1024, workers.ru_maxrss / 1024
    cpu = own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime
    print(f"curate: {summary['rows_in']} rows in -> {summary['rows_out']} out "
          f"(train {summary.get('train_rows', 0)}, validation {summary.get('validation_rows', 0)}); removed {summary['removed']}")
    print(f"curate seconds: {seconds:.1f}   peak RSS: {main_mb:.0f} MB (+ largest scan worker {worker_mb:.0f} MB, "
          f"workers={stage.section['workers']}); CPU {cpu:.1f} s on {os.cpu_count()} cores   target: < 120 s, < 4096 MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rows-per-shard", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it; its verified rows are reused when the count matches")
    parser.add_argument("--curate-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.curate_only:
        return run_curate(args.curate_only, len(list((args.curate_only / "verified").glob("part-*.parquet"))))
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-curate-"))
    try:
        existing = sorted((root / "verified").glob("part-*.parquet"))
        if existing and sum(pq.read_metadata(p).num_rows for p in existing) == args.rows:
            print(f"reusing {args.rows} generated rows in {root / 'verified'}")
        else:
            shutil.rmtree(root / "verified", ignore_errors=True)
            began = time.perf_counter()
            generate(root / "verified", args.rows, args.rows_per_shard)
            print(f"generated {args.rows} rows in {time.perf_counter() - began:.1f} s")
        files = sorted((root / "verified").glob("part-*.parquet"))
        size = sum(p.stat().st_size for p in files)
        memory = sum(pq.read_metadata(p).row_group(0).total_byte_size for p in files)
        print(f"{len(files)} shards, {size / 1e9:.2f} GB on disk, {memory / args.rows / 1e3:.2f} KB per row in memory")
        subprocess.run([sys.executable, __file__, "--curate-only", str(root)], check=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
