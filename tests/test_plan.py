"""`trajforge plan` and the plan line of `trajforge run`, against the fake OpenAI server over real HTTP, counting
tokens and caching prompts as a server does: the estimate of a probe against the actual counts of the same
run, the model alone without any request, finished shards costing nothing more, and the budget refusal."""

import json

import pytest
import yaml

from pipeline import cli
from tests.fake_openai import FakeOpenAI
from tests.solution_teacher import SolutionTeacher
from tests.test_reasoning_rows import rows

PRICES = {"price_input_per_mtok": 3.0, "price_cached_input_per_mtok": 0.3, "price_output_per_mtok": 15.0}
VERDICT = {"passed": True, "score": 5, "rationale": "The answer follows from the tool results."}
# Stated tolerance of a probe of 2 episodes per teacher and format against the whole run's actual counts.
TOLERANCE = 0.25


class Counter(FakeOpenAI):
    """The fake server, keeping every usage it reported."""

    def __init__(self, responder):
        super().__init__(responder=responder, counting=True)
        self.usages: list[dict] = []

    def counted_usage(self, body, choice):
        usage = super().counted_usage(body, choice)
        self.usages.append(usage)
        return usage


def responder(tmp_path):
    teacher = SolutionTeacher(tmp_path / "run", think="reasoning_content")
    return lambda path, body: json.dumps(VERDICT) if "response_format" in body else teacher(path, body)


def config(server, tasks=8, **endpoint) -> dict:
    return {
        "run": {"name": "t", "rows_per_shard": 4},
        "endpoints": {"fake": {"base_url": server.base_url, "model": "fake-model", "max_retries": 1, "timeout_s": 5, **PRICES, **endpoint}},
        "synthesize": {"generators": [{"name": "arithmetic", "count": tasks}]},
        "sample": {"teachers": [{"name": "teacher", "policy": "llm", "endpoint": "fake", "formats": ["function_calling", "react"],
                                 "max_steps": 6, "max_tokens": 256}]},
        "verify": {"judges": [{"name": "correct", "endpoint": "fake", "max_tokens": 200}]},
    }


def cli_main(tmp_path, data: dict, *args) -> int:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return cli.main([*args[:1], str(path), "--run-dir", str(tmp_path / "run"), *args[1:]])


def planned(tmp_path, data: dict, capsys, *options) -> dict:
    capsys.readouterr()
    assert cli_main(tmp_path, data, "plan", "--stages", "sample,verify", "--json", *options) == 0
    return json.loads(capsys.readouterr().out)["total"]


def actual(server: Counter) -> dict:
    used = server.usages
    out = {"requests": len(used), "prompt_tokens": sum(u["prompt_tokens"] for u in used),
           "cached_tokens": sum(u["prompt_tokens_details"]["cached_tokens"] for u in used),
           "completion_tokens": sum(u["completion_tokens"] for u in used)}
    out["usd"] = ((out["prompt_tokens"] - out["cached_tokens"]) * 3.0 + out["cached_tokens"] * 0.3 + out["completion_tokens"] * 15.0) / 1e6
    return out


def test_a_probed_plan_matches_the_run_within_the_stated_tolerance(tmp_path, capsys):
    with Counter(responder(tmp_path)) as server:
        data = config(server)
        assert cli_main(tmp_path, data, "synthesize") == 0
        plan = planned(tmp_path, data, capsys, "--probe", "2")
        probed = len(server.usages)
        server.usages.clear()
        server.prompts.clear()  # the provider's prompt cache has expired by the time the run starts
        assert cli_main(tmp_path, data, "run", "--stages", "sample,verify") == 0
        out = capsys.readouterr().out
        real = actual(server)
    assert probed >= 2 * 2 * 2 + 4  # 2 episodes of 2 or more requests per format, each judged once
    expected = plan["expected"]
    figures = {key: (expected[key], real[key], expected[key] / real[key] - 1) for key in real}
    print("plan vs actual:", json.dumps(figures))
    for key, (estimate, measured, error) in figures.items():
        assert abs(error) <= TOLERANCE, (key, estimate, measured)
        assert plan["low"][key] <= measured <= plan["high"][key], (key, plan["low"][key], measured, plan["high"][key])
    assert out.startswith("plan: ~") and "expected" in out.splitlines()[0]
    assert sum(r["usage"]["cost_usd"] for r in rows(tmp_path, "trajectories")) < real["usd"]  # the judges' part is not in rows


def test_the_model_alone_plans_without_a_request(tmp_path, capsys):
    with Counter(responder(tmp_path)) as server:
        data = config(server)
        capsys.readouterr()
        assert cli_main(tmp_path, data, "plan") == 0
        assert server.completions == []
    table = capsys.readouterr().out
    assert "sample  fake      teacher / function_calling" in table and "judge correct" in table and "dominated by:" in table
    assert "tasks made in memory" in table


def test_a_finished_run_plans_nothing_more(tmp_path, capsys):
    with Counter(responder(tmp_path)) as server:
        data = config(server, tasks=4)
        assert cli_main(tmp_path, data, "run", "--stages", "synthesize,sample,verify") == 0
        plan = planned(tmp_path, data, capsys)
    assert plan["high"]["requests"] == 0 and plan["expected"]["usd"] == 0


def test_run_refuses_to_start_over_budget_unless_told_to_go_on(tmp_path, capsys):
    with Counter(responder(tmp_path)) as server:
        data = config(server, tasks=4, budget_usd=0.0001)
        assert cli_main(tmp_path, data, "run", "--stages", "synthesize,sample,verify") == 2
        err = capsys.readouterr().err
        assert "endpoint 'fake' is expected to cost" in err and "budget_usd=0.0001" in err and "--go-on" in err
        assert server.completions == [] and not (tmp_path / "run" / "tasks").exists()
        assert cli_main(tmp_path, data, "run", "--stages", "synthesize,sample,verify", "--go-on") == 3  # stopped at the budget
        assert "budget_usd=0.0001 reached" in capsys.readouterr().err


def test_batch_plans_at_the_batch_discount(tmp_path, capsys):
    with Counter(responder(tmp_path)) as server:
        data = config(server)
        online = planned(tmp_path, data, capsys)
        batch = planned(tmp_path, data, capsys, "--batch")
    assert batch["expected"]["usd"] == pytest.approx(online["expected"]["usd"] * 0.5)
    assert batch["expected"]["requests"] == online["expected"]["requests"]


@pytest.mark.parametrize("options, message", [(["--stages", "sample,judging"], "--stages: unknown stage(s) judging"),
                                              (["--probe", "-1"], "--probe -1: the number"),
                                              (["--measure", "/nonexistent"], "--measure /nonexistent: not a run directory")])
def test_bad_plan_options_are_one_line_errors(tmp_path, capsys, options, message):
    with Counter(responder(tmp_path)) as server:
        assert cli_main(tmp_path, config(server), "plan", *options) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
