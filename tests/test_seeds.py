"""Seed import from JSONL, Parquet and a local `datasets` folder, with a field mapping."""

import json

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import shards
from tests.conftest import run_cli
from tests.helpers import make_task

QUESTIONS = [
    {"question": "What is 12 * 7?", "answer": 84, "level": 1,
     "program": {"steps": [{"thought": "Multiply.", "tool": "calculator", "arguments": {"expression": "12 * 7"}}], "answer": "{s0}"}},
    {"question": "What is 100 - 58?", "answer": 42, "level": 1,
     "program": {"steps": [{"thought": "Subtract.", "tool": "calculator", "arguments": {"expression": "100 - 58"}}], "answer": "{s0}"}},
    {"question": "No answer given here", "level": 2},
]


def seed_config(path, **extra) -> dict:
    spec = {"name": "mine", "path": str(path), "defaults": {"domain": "imported", "tools": ["calculator"]},
            "mapping": {"instruction": "question", "ground_truth.answer": "answer", "difficulty": "level", "solution": "program"}, **extra}
    return {"run": {"rows_per_shard": 10}, "synthesize": {"seeds": [spec]},
            "sample": {"teachers": [{"name": "program", "policy": "program", "formats": ["react"]}]}}


def tasks_of(run_dir) -> list[dict]:
    return [t for p in sorted((run_dir / "tasks").glob("part-*.parquet")) for t in shards.read_shard(p, "task")]


def test_jsonl_seeds_become_tasks_and_bad_rows_are_skipped_and_explained(tmp_path, write_config):
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(json.dumps(q) for q in QUESTIONS) + "\n")
    proc = run_cli("run", write_config(seed_config(path)), "--run-dir", tmp_path / "run", check=True)
    tasks = tasks_of(tmp_path / "run")
    assert [t["instruction"] for t in tasks] == ["What is 12 * 7?", "What is 100 - 58?"]
    assert {t["source"] for t in tasks} == {"seed:mine"} and tasks[0]["ground_truth"] == {"answer": 84}
    assert "seed row 2 of" in proc.stderr and "missing field answer" in proc.stderr
    assert "synthesize: 3 rows in -> 2 out" in proc.stdout
    assert "verify: 2 rows in -> 2 out (2 passed" in proc.stdout  # the imported solution programs ran through the tools


def test_parquet_seeds(tmp_path, write_config):
    path = tmp_path / "seeds.parquet"
    pq.write_table(pa.Table.from_pylist([{"question": q["question"], "answer": q.get("answer", 0)} for q in QUESTIONS]), path)
    config = seed_config(path)
    config["synthesize"]["seeds"][0]["mapping"] = {"instruction": "question", "ground_truth.answer": "answer"}
    run_cli("run", write_config(config), "--run-dir", tmp_path / "run", "--stages", "synthesize", check=True)
    assert [t["ground_truth"]["answer"] for t in tasks_of(tmp_path / "run")] == [84, 42, 0]


def test_local_datasets_folder_with_split_and_limit(tmp_path, write_config):
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(json.dumps({"question": f"q{i}", "answer": i}) for i in range(5)) + "\n")
    config = seed_config(folder, split="train", limit=3)
    config["synthesize"]["seeds"][0]["mapping"] = {"instruction": "question", "ground_truth.answer": "answer"}
    run_cli("run", write_config(config), "--run-dir", tmp_path / "run", "--stages", "synthesize", check=True)
    assert [t["instruction"] for t in tasks_of(tmp_path / "run")] == ["q0", "q1", "q2"]


def test_mapping_to_a_missing_source_field_fails_before_work(tmp_path, write_config):
    path = tmp_path / "seeds.jsonl"
    path.write_text(json.dumps(QUESTIONS[0]) + "\n")
    config = seed_config(path)
    config["synthesize"]["seeds"][0]["mapping"]["instruction"] = "prompt_text"
    proc = run_cli("run", write_config(config), "--run-dir", tmp_path / "run")
    assert proc.returncode == 2
    assert "synthesize.seeds[0].mapping.instruction: field 'prompt_text' is not in" in proc.stderr
    assert not list((tmp_path / "run").glob("tasks/part-*"))


def test_tasks_exported_by_trajforge_round_trip_as_seeds(tmp_path, write_config):
    tasks = [make_task("sql_table", 1), make_task("kb_multihop", 2)]
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(json.dumps(t) for t in tasks) + "\n")
    config = {"run": {"rows_per_shard": 10}, "synthesize": {"seeds": [{"name": "again", "path": str(path)}]}}
    proc = run_cli("run", write_config(config), "--run-dir", tmp_path / "run", check=True)
    imported = tasks_of(tmp_path / "run")
    assert [t["environment"] for t in imported] == [t["environment"] for t in tasks]
    assert "verify: 4 rows in -> 4 out (4 passed" in proc.stdout
