"""A small verified run for curate, export and publish tests: made by the real CLI (synthesize, sample,
verify), then given what an LLM teacher would add: failed trajectories (one with a bad step verdict), an exact
duplicate and a near duplicate of passed rows, with lower scores than the rows they copy."""

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline import config as configlib
from pipeline import shards
from tests.conftest import run_cli, small_config

BFCL_QUESTION = "Find the area of a triangle with a base of 10 units and height of 5 units."


def failed_copy(row: dict, n: int) -> dict:
    bad = copy.deepcopy(row)
    bad["id"] = f"{row['id']}-failed{n}"
    step = bad["steps"][0]
    step["step_verdict"] = {"label": "bad", "score": 0.0, "judge": "step-judge"}
    bad["messages"][step["message_index"]]["content"] += " I will guess instead."
    bad["final_answer"] = "42 (a guess)"
    bad["passed"], bad["score"] = False, 0.25
    bad["checks"] = [dict(c, passed=False, detail="wrong answer") if c["name"] == "answer" else c for c in bad["checks"]]
    return bad


def duplicates(row: dict) -> list[dict]:
    exact = copy.deepcopy(row)
    exact["id"] = f"{row['id']}-exact"
    exact["score"] = 0.75
    exact["steps"][0]["thought"] = (exact["steps"][0]["thought"] or "") + " Same plan."  # thoughts are not in the exact key
    near = copy.deepcopy(row)
    near["id"] = f"{row['id']}-near"
    near["score"] = 0.75
    near["instruction"] = row["instruction"] + " Please."
    near["messages"][1]["content"] = near["instruction"]
    return [exact, near]


def bfcl_row(row: dict) -> dict:
    leak = copy.deepcopy(row)
    leak["id"] = f"{row['id']}-bfcl"
    leak["instruction"] = BFCL_QUESTION
    leak["messages"][1]["content"] = BFCL_QUESTION
    return leak


def make_run(root: Path) -> Path:
    """A run directory whose verified shards hold passed rows plus the additions above."""
    data = small_config()
    data["run"]["name"] = "curate-test"
    config_path = root / "config.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    run_dir = root / "run"
    for stage in ("synthesize", "sample", "verify"):
        run_cli(stage, config_path, "--run-dir", run_dir, check=True)
    config = configlib.load(run_dir / "config.yaml")
    verify_hash = config.stage_hash("verify")
    for k, path in enumerate(sorted((run_dir / "verified").glob("part-*.parquet"))):
        rows = shards.read_shard(path, "trajectory")
        extra = [failed_copy(rows[0], 1), failed_copy(rows[0], 2)] + duplicates(rows[1])
        if k == 0:
            extra.append(bfcl_row(rows[2]))
        shards.write_shard(path, rows + extra, "trajectory", verify_hash)
    return run_dir


@pytest.fixture(scope="session")
def template_run(tmp_path_factory):
    """Built once per session; tests copy it (see `run_dir`) so they can curate it in their own ways."""
    return make_run(tmp_path_factory.mktemp("verified-run"))


@pytest.fixture
def run_dir(template_run, tmp_path):
    return Path(shutil.copytree(template_run, tmp_path / "run"))


def curate(run_dir, *sets, check=True):
    args = ["curate", run_dir, "--reconfigure"] + [a for s in sets for a in ("--set", s)]
    return run_cli(*args, check=check)
