"""configs/step_values.yaml on the embedded default for real: the local llama.cpp teacher (Gemma 3 270M) samples
adaptively and continues trajectories after each step, and the published folder holds prm and dpo_step configs
that load with `datasets` and render through a chat template. Slow (the model runs on the CPU): minutes, with
two tasks instead of the config's three."""

import json
import shutil

import datasets

from pipeline import cli, shards
from tests.conftest import ROOT
from tests.test_consumer import render


def test_the_step_values_config_runs_on_the_local_teacher_and_publishes_prm_and_dpo_step(tmp_path):
    config, run_dir, hub = ROOT / "configs" / "step_values.yaml", tmp_path / "run", tmp_path / "hub"
    assert cli.main(["run", str(config), "--run-dir", str(run_dir), "--set", "synthesize.generators[0].count=2"]) == 0
    assert cli.main(["publish", str(run_dir), "--dry-run", "--out", str(hub)]) == 0
    card = (hub / "README.md").read_text()
    assert "config_name: prm" in card and "config_name: dpo_step" in card and "## Task pass rates" in card
    rows = {r["id"]: r for p in sorted((run_dir / "verified").glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")}
    valued = [r for r in rows.values() if "step_values" in r["meta"]]
    assert valued and all(r["meta"]["step_values"]["teacher"]["model"] == "gemma-3-270m" for r in valued)
    assert all(s["step_verdict"]["rollouts"] is not None for r in valued for s in r["steps"])
    assert all(r["meta"]["adaptive"]["sampled"] <= 2 for r in rows.values() if r["source"] == "llm:gemma-3-270m")
    prm = list(datasets.load_dataset(str(hub), "prm", split="train", cache_dir=str(tmp_path / "hf")))
    pairs = list(datasets.load_dataset(str(hub), "dpo_step", split="train", cache_dir=str(tmp_path / "hf")))
    assert prm and pairs
    for example in prm:
        row = rows[example["id"]]
        assert example["labels"] == [s["step_verdict"]["label"] == "good" for s in row["steps"]]
        whole = example["prompt"] + [m for completion in example["completions"] for m in completion]
        assert render(whole, example["tools"]) == render(row["messages"], row["tools"])
    for pair in pairs:
        assert render(pair["prompt"] + pair["chosen"], pair["tools"]) != render(pair["prompt"] + pair["rejected"], pair["tools"])
    shutil.rmtree(run_dir / "verified")
    assert cli.main(["verify", str(config), "--run-dir", str(run_dir), "--set", "synthesize.generators[0].count=2"]) == 0
    again = json.loads((run_dir / "report.json").read_text())["stages"]["verify"]
    assert again["requests"] == 0 and again["cache_hits"] == again["step_values"]["llm_calls"]
