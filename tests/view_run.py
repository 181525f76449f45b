"""A quickstart-shaped run for the viewer and report tests, made by the real CLI: the program teachers (with
self-reflected copies, STeP-masked), a tight `limits` check and a low `max_steps` so some rows fail and some
end in an error, an LLM teacher and a committee of three judges on a fake OpenAI server over real HTTP (with
priced tokens and a few 500s to retry), then curate."""

import json
from pathlib import Path

import yaml

from pipeline import cli
from tests.conftest import small_config
from tests.fake_openai import FakeOpenAI, Fault, calculator_solver

JUDGES = ("judge-pass", "judge-lenient", "judge-fail")


def judge_or_teach(path: str, body: dict):
    """Judges are told apart by model: judge-fail always votes fail, judge-lenient fails SQL trajectories (so the
    committee fails those), judge-pass passes everything; the teacher answers 6 * 7."""
    if body["model"].startswith("judge-"):
        failing = body["model"] == "judge-fail" or (body["model"] == "judge-lenient" and "SELECT" in json.dumps(body))
        return json.dumps({"passed": not failing, "score": 1 if failing else 5, "rationale": "wrong answer" if failing else "solved it"})
    return calculator_solver(path, body)


def config(server: FakeOpenAI) -> dict:
    data = small_config(arithmetic=4, sql_table=4, units_dates=2, kb_multihop=2, python_compute=3, doc_search=2, store_refunds=2)
    data["endpoints"] = {name: {"base_url": server.base_url, "model": name, "max_retries": 3, "timeout_s": 10,
                                "price_input_per_mtok": 2.0, "price_output_per_mtok": 8.0} for name in ("teacher", *JUDGES)}
    data["endpoints"]["teacher"]["mode"] = "chat"
    data["sample"]["teachers"][0]["max_steps"] = 4  # the longer programs run out of steps: rows with an error
    data["sample"]["teachers"].append({"name": "fake-llm", "policy": "llm", "endpoint": "teacher", "formats": ["react"],
                                       "domains": ["arithmetic"], "max_steps": 3})
    data["sample"]["reflection"] = {"fraction": 0.3}
    for check in data["verify"]["checks"]:
        if check["name"] == "limits":
            check["options"] = {"max_steps": 3}  # rows of four steps or more fail it
    data["verify"]["judges"] = [{"name": name, "endpoint": name} for name in JUDGES]
    data["verify"]["committee"] = {"rule": "majority", "quorum": 2}
    data["curate"]["views"] = []
    return data


def build(folder: Path) -> Path:
    """Run every stage into folder/run and return it (the fake server lives only as long as the run)."""
    folder.mkdir(parents=True, exist_ok=True)
    with FakeOpenAI(models=("teacher", *JUDGES), responder=judge_or_teach) as server:
        server.faults += [Fault(500), Fault(500)]
        path = folder / "config.yaml"
        path.write_text(yaml.safe_dump(config(server), sort_keys=False))
        assert cli.main(["run", str(path), "--run-dir", str(folder / "run")]) == 0
    return folder / "run"
