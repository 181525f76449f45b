"""Monte Carlo step values through the CLI, against a fake teacher over real HTTP that follows the solution
program from whatever its prefix observed: on program trajectories with a wrong step injected by the reflection
machinery the values drop at that step, the first error step is found, a re-run makes no request, and the prm
and dpo_step views load with `datasets` and render through real chat templates."""

import asyncio
import importlib.util
import json
import shutil
from pathlib import Path

import datasets
import pytest
import yaml

from pipeline import cli
from pipeline import config as configlib
from pipeline.curate.views import step_pairs
from pipeline import shards
from pipeline.formats import FORMATS
from pipeline.sample.branch import BranchError, branch, branch_points
from pipeline.sample.stage import SampleStage
from pipeline.tools import Env
from pipeline.verify.step_values import StepValues
from tests.conftest import ROOT, run_cli
from tests.fake_openai import FakeOpenAI
from tests.step_fakes import follower, slipped_episode
from tests.test_consumer import render

AT = 1  # the injected wrong step
TEACHER = {"name": "program", "policy": "program", "formats": ["function_calling"], "samples_per_task": 1, "max_steps": 8}


def trl_template(name: str) -> str:
    spec = importlib.util.find_spec("trl")
    if spec is None:
        pytest.skip("trl not installed (scripts/setup.sh installs it)")
    return (Path(spec.origin).parent / "chat_templates" / name).read_text()


def config(base_url: str) -> dict:
    return {
        "run": {"name": "steps", "rows_per_shard": 2},
        "endpoints": {"fake": {"base_url": base_url, "model": "follower", "max_retries": 0}},
        "synthesize": {"generators": [{"name": "arithmetic", "count": 4}]},
        "sample": {"teachers": [{"name": "program", "policy": "program", "formats": ["function_calling"]}]},
        "verify": {"step_values": {"teacher": {"endpoint": "fake", "temperature": 0.7}, "rollouts_per_step": 2}},
        "curate": {"validation_fraction": 0.0, "views": ["prm", "dpo_step"], "dedup_near": {"enabled": False}},
    }


def inject_wrong_steps(run_dir: Path) -> None:
    """Add to each trajectory shard, beside each program row, its task with a wrong argument at step AT."""
    loaded = configlib.Config(yaml.safe_load((run_dir / "config.yaml").read_text()), run_dir / "config.yaml")
    stage = SampleStage(loaded, loaded.stage_hash("sample"))
    tasks = {t["id"]: t for p in sorted((run_dir / "tasks").glob("part-*.parquet")) for t in shards.read_shard(p, "task")}
    for path in sorted((run_dir / "trajectories").glob("part-*.parquet")):
        out = shards.read_shard(path, "trajectory")
        for row in list(out):
            task = tasks[row["task_id"]]
            with Env(task["environment"]) as env:
                episode = asyncio.run(slipped_episode(task, FORMATS["function_calling"], env, AT))
            slipped = stage.to_row(task, TEACHER, "function_calling", 1, episode)
            slipped["id"] += "-slipped"
            out.append(slipped)
        shards.write_shard(path, out, "trajectory", loaded.stage_hash("sample"))


@pytest.fixture(scope="module")
def valued(tmp_path_factory):
    """A verified run with step values: (run dir, config path, fake server, requests made by the first verify)."""
    root = tmp_path_factory.mktemp("step-values")
    with FakeOpenAI(models=("follower",)) as server:
        path = root / "config.yaml"
        path.write_text(yaml.safe_dump(config(server.base_url)))
        run_dir = root / "run"
        for stage in ("synthesize", "sample"):
            run_cli(stage, path, "--run-dir", run_dir, check=True)
        server.responder = follower(run_dir)
        inject_wrong_steps(run_dir)
        proc = run_cli("verify", path, "--run-dir", run_dir, check=True)
        yield run_dir, path, server, len(server.completions), proc.stdout


def verified(run_dir: Path) -> tuple[list[dict], list[dict]]:
    out = [r for p in sorted((run_dir / "verified").glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")]
    return [r for r in out if not r["id"].endswith("-slipped")], [r for r in out if r["id"].endswith("-slipped")]


def values(row: dict) -> list[float]:
    return [s["step_verdict"]["score"] for s in row["steps"]]


def test_values_drop_at_the_injected_step_and_the_first_error_step_is_found(valued):
    run_dir, *_ = valued
    clean, slipped = verified(run_dir)
    assert len(clean) == len(slipped) == 4
    assert all(r["passed"] for r in clean) and not any(r["passed"] for r in slipped)
    for row in clean:
        assert set(values(row)) == {1.0} and row["meta"]["step_values"]["first_error_step"] is None
        assert [s["step_verdict"]["rollouts"] for s in row["steps"]] == [2] * (len(row["steps"]) - 1) + [0]
    for row in slipped:
        assert values(row) == [1.0] * AT + [0.0] * (len(row["steps"]) - AT)
        assert [s["step_verdict"]["label"] for s in row["steps"]][AT - 1:AT + 1] == ["good", "bad"]
        meta = row["meta"]["step_values"]
        assert meta["first_error_step"] == AT and meta["problem"] is None
        assert meta["teacher"] == {"endpoint": "fake", "model": "follower", "temperature": 0.7}
        assert (meta["rollouts_per_step"], meta["seed"]) == (2, 0)
        assert row["steps"][0]["step_verdict"]["judge"] == "rollouts:follower"


def test_branches_hold_the_right_action_where_the_trajectory_slipped(valued):
    run_dir, *_ = valued
    clean, slipped = verified(run_dir)
    assert all(r["meta"]["step_values"]["branches"] == [] for r in clean)  # every rollout repeats the program's action
    for row in slipped:
        [alternative] = row["meta"]["step_values"]["branches"]
        right = next(r for r in clean if r["task_id"] == row["task_id"])
        assert alternative["at"] == AT and alternative["value"] == 1.0 and alternative["rollouts"] == 2
        call, wrong = alternative["message"]["tool_calls"][0]["function"], row["messages"][row["steps"][AT]["message_index"]]
        assert call["arguments"] == right["messages"][right["steps"][AT]["message_index"]]["tool_calls"][0]["function"]["arguments"]
        assert call["arguments"] != wrong["tool_calls"][0]["function"]["arguments"]


def test_the_verify_summary_shows_requests_and_dollars_per_labelled_step(valued):
    run_dir, _, _, requests, stdout = valued
    figures = json.loads((run_dir / "report.json").read_text())["stages"]["verify"]["step_values"]
    steps = sum(len(r["steps"]) for half in verified(run_dir) for r in half)
    assert figures["rows"] == 8 and figures["steps_labeled"] == steps and figures["first_error_found"] == 4
    assert figures["llm_calls"] == requests and figures["llm_calls_per_step"] == round(requests / steps, 2)
    assert f"step values: {steps} steps of 8 trajectories labelled (4 with a first error step)" in stdout
    assert f"{requests} LLM replies, $0.0000: {round(requests / steps, 2)} replies" in stdout
    page = (run_dir / "report.html").read_text()
    assert "Step values" in page and f"{steps} steps of 8 trajectories labelled" in page


def test_a_rerun_of_step_values_makes_zero_requests(valued, tmp_path):
    run_dir, path, server, requests, _ = valued
    again = Path(shutil.copytree(run_dir, tmp_path / "run"))
    first = verified(again)
    shutil.rmtree(again / "verified")
    proc = run_cli("verify", path, "--run-dir", again, check=True)
    assert len(server.completions) == requests
    assert "0 LLM requests" in proc.stdout and f"({requests} cache hits" in proc.stdout
    assert verified(again) == first


def test_prm_and_dpo_step_views_load_with_datasets_and_render_through_chat_templates(valued, tmp_path):
    run_dir, path, *_ = valued
    work = Path(shutil.copytree(run_dir, tmp_path / "run"))
    run_cli("curate", path, "--run-dir", work, check=True)
    run_cli("publish", work, "--dry-run", "--out", tmp_path / "hub", check=True)
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "config_name: prm" in card and "config_name: dpo_step" in card
    prm = list(datasets.load_dataset(str(tmp_path / "hub"), "prm", split="train", cache_dir=str(tmp_path / "hf")))
    pairs = list(datasets.load_dataset(str(tmp_path / "hub"), "dpo_step", split="train", cache_dir=str(tmp_path / "hf")))
    clean, slipped = verified(run_dir)
    by_id = {r["id"]: r for r in clean + slipped}
    assert len(prm) == 8 and len(pairs) == 4  # a branch pair that repeats a first-bad-step pair is written once
    llama = trl_template("llama3_1.jinja")
    for example in prm:
        row = by_id[example["id"]]
        assert example["labels"] == [s["step_verdict"]["label"] == "good" for s in row["steps"]]
        whole = example["prompt"] + [m for completion in example["completions"] for m in completion]
        assert whole == row["messages"] and len(example["completions"]) == len(row["steps"])
        assert render(whole, example["tools"]) == render(row["messages"], row["tools"])
        text = render(whole, example["tools"], llama)
        assert text == render(row["messages"], row["tools"], llama) and text.count("<|start_header_id|>ipython<|end_header_id|>") == len(row["steps"]) - 1
    for pair in pairs:
        row = by_id[pair["rejected_id"]]
        assert row["id"].endswith("-slipped") and not by_id[pair["chosen_id"]]["id"].endswith("-slipped")
        cut = row["steps"][AT]["message_index"]
        assert pair["prompt"] == row["messages"][:cut] and pair["rejected"] == [row["messages"][cut]]
        prompt = render(pair["prompt"], pair["tools"])
        chosen, rejected = render(pair["prompt"] + pair["chosen"], pair["tools"]), render(pair["prompt"] + pair["rejected"], pair["tools"])
        assert chosen.startswith(prompt[: -len("<|im_end|>\n")]) and chosen != rejected


def test_a_branch_pair_prefers_the_higher_valued_action_from_the_same_prefix(valued):
    run_dir, *_ = valued
    clean, slipped = verified(run_dir)
    assert all(step_pairs.branch_pairs(row) == [] for row in clean)
    for row in slipped:
        [pair] = step_pairs.branch_pairs(row)
        cut = row["steps"][AT]["message_index"]
        assert pair["chosen_id"] == f"{row['id']}/branch/{AT}/0" and pair["rejected_id"] == row["id"]
        assert pair["prompt"] == row["messages"][:cut] and pair["rejected"] == [row["messages"][cut]]
        assert pair["chosen"] == [row["meta"]["step_values"]["branches"][0]["message"]]


def test_a_branch_whose_replay_differs_is_refused(valued):
    run_dir, *_ = valued
    clean, _ = verified(run_dir)
    row = json.loads(json.dumps(clean[0]))
    row["steps"][0]["observation"] = "12345"
    assert branch_points(row) == list(range(len(row["steps"]) + 1))
    with Env(row["environment"]) as env, pytest.raises(BranchError, match="step 0: replayed observation differs"):
        branch(row, 2, env)
    with Env(row["environment"]) as env:
        assert branch(row, 0, env).messages == row["messages"][:2]


def test_only_uncertain_values_only_trajectories_of_tasks_with_a_pass_rate_between_0_and_1():
    spec = {"sources": ["llm:*"], "only_uncertain": True, "max_trajectories": None}
    made = StepValues.__new__(StepValues)
    made.spec = spec
    made.client = type("Client", (), {"mode": "chat"})()

    def row(source, rate):
        return {"source": source, "format": "function_calling", "meta": {"pass_rate": {"rate": rate}},
                "steps": [{"message_index": 2}], "messages": []}

    rows_ = [row("llm:m", 0.5), row("llm:m", 0.0), row("llm:m", 1.0), row("program", 0.5), row("llm:m", None), row("llm:m", 0.25)]
    assert made.selected(rows_) == [0, 5]
    spec.update(only_uncertain=False, max_trajectories=3)
    assert made.selected(rows_) == [0, 1, 2]


def test_the_budget_stops_step_values_and_a_rerun_goes_on_from_the_cache(tmp_path):
    with FakeOpenAI(models=("follower",)) as server:
        data = config(server.base_url)
        data["endpoints"]["fake"].update(price_input_per_mtok=50.0, price_output_per_mtok=50.0, budget_usd=0.004)  # $0.001 a reply
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data))
        run_dir = tmp_path / "run"
        for stage in ("synthesize", "sample"):
            run_cli(stage, path, "--run-dir", run_dir, check=True)
        server.responder = follower(run_dir)
        stopped = run_cli("verify", path, "--run-dir", run_dir)
        assert stopped.returncode == 3 and "budget_usd=0.004 reached" in stopped.stderr
        asked = len(server.completions)
        assert 4 <= asked < 20 and not list((run_dir / "verified").glob("part-*.parquet"))
        data["endpoints"]["fake"]["budget_usd"] = 1.0
        path.write_text(yaml.safe_dump(data))
        run_cli("verify", path, "--run-dir", run_dir, check=True)
        rerun = len(server.completions) - asked
    out = [r for p in sorted((run_dir / "verified").glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")]
    assert all(r["meta"]["step_values"]["first_error_step"] is None for r in out)
    needed = sum(r["meta"]["step_values"]["usage"]["llm_calls"] for r in out)
    # replies that came back before the stop come from the cache (requests cut off in flight are asked again)
    assert needed - asked <= rerun < needed


def test_step_values_branch_a_stateful_module_environment_by_replaying_it(tmp_path):
    """examples/inventory_tools.py as an environment: a sale changes the stock, so a branch must rebuild that
    state by re-executing the prefix before the teacher continues; every continuation passes final_state."""
    data = yaml.safe_load((ROOT / "configs" / "inventory_python.yaml").read_text())
    with FakeOpenAI(models=("follower",)) as server:
        data["endpoints"] = {"fake": {"base_url": server.base_url, "model": "follower", "max_retries": 0}}
        data["environments"]["inv"]["python"]["path"] = str(ROOT / "examples")
        data["synthesize"]["seeds"][0]["path"] = str(ROOT / "examples" / "inventory_tasks.jsonl")
        data["sample"]["teachers"] = [{"name": "program", "policy": "program", "formats": ["function_calling"]}]
        data["verify"]["step_values"] = {"teacher": {"endpoint": "fake", "temperature": 0.7}, "rollouts_per_step": 1}
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data))
        server.responder = follower(tmp_path / "run")
        assert cli.main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", "synthesize,sample,verify"]) == 0
    out = [r for p in sorted((tmp_path / "run" / "verified").glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")]
    stateful = [r for r in out if r["passed"] and (r["ground_truth"] or {}).get("final_state") and len(r["steps"]) > 2]
    assert stateful and len(server.completions) > 0
    for row in stateful:
        assert row["meta"]["step_values"]["problem"] is None, row["meta"]["step_values"]["problem"]
        assert set(values(row)) == {1.0} and row["meta"]["step_values"]["first_error_step"] is None
