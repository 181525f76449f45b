"""Blueprint synthesis over an MCP environment with an explore step: the proposer (a fake endpoint over real
HTTP) first calls the ticket server's read-only tools, then proposes a blueprint that only the data it saw
can ground; the blueprint is executed in a fresh server, reviewed, kept, sampled and verified."""

import json
import re

import pytest

from pipeline.synthesize.explore import EXPLORE_INSTRUCTION
from tests.fake_openai import FakeOpenAI
from tests.ticket_fakes import check, mcp_spec, rows, run

PASS = {"passed": True, "score": 5, "rationale": "grounded and clear"}


def explorer_and_proposer(path: str, body: dict):
    if body["model"] == "reviewer":
        return json.dumps(PASS)
    if "tools" in body:  # the explore step: list the open tickets, then summarize
        if not any(m["role"] == "tool" for m in body["messages"]):
            return {"content": "I list what is open.", "tool_calls": [{"id": "x", "name": "tk__list_tickets", "arguments": '{"status": "open"}'}]}
        return {"content": "There are open tickets."}
    prompt = body["messages"][1]["content"]
    seen = prompt.split("WHAT THE TOOLS RETURNED WHEN EXPLORED (real data):\n", 1)[1].split("\n\n", 1)[0]
    ticket_id, title = re.search(r"(T\d+) \[open\] \w+ assignee=none: (.+)", seen).groups()  # only the exploration says this
    return json.dumps({
        "instruction": f"Nobody is working on ticket {ticket_id}. Assign it to omar and tell me its title.",
        "actions": [{"thought": "I read the ticket.", "tool": "tk.get_ticket", "arguments": {"ticket_id": ticket_id}},
                    {"thought": "I assign it.", "tool": "tk.assign_ticket", "arguments": {"ticket_id": ticket_id, "agent": "omar"}}],
        "answer": title, "state_changes": {f"tk.tickets.{ticket_id}.assignee": "omar"}})


@pytest.fixture
def server():
    with FakeOpenAI(models=("proposer", "reviewer"), responder=explorer_and_proposer) as fake:
        yield fake


def config(server) -> dict:
    endpoint = lambda model: {"base_url": server.base_url, "model": model, "mode": "chat", "max_retries": 0, "timeout_s": 10}
    return {
        "run": {"name": "explore", "rows_per_shard": 4},
        "endpoints": {"proposer": endpoint("proposer"), "reviewer": endpoint("reviewer")},
        "environments": {"tk": {"mcp": mcp_spec()}},
        "synthesize": {"llm_tasks": [{"name": "tickets", "endpoint": "proposer", "count": 1, "environment": "tk", "explore": {"max_calls": 2},
                                      "reviewers": [{"name": "r", "endpoint": "reviewer"}]}]},
        "sample": {"teachers": [{"name": "program", "policy": "program", "formats": ["function_calling"]}]},
        "verify": {"checks": [{"name": n} for n in ("schema", "messages_steps", "tool_calls", "replay", "answer", "final_state", "actions")]},
    }


def test_the_proposer_explores_then_proposes_a_grounded_blueprint(tmp_path, server):
    assert run(tmp_path, config(server)) == 0
    explore = next(body for _, body, _ in server.completions if "tools" in body)
    assert explore["messages"][1]["content"] == EXPLORE_INSTRUCTION.format(calls=2)
    assert {t["function"]["name"] for t in explore["tools"]} == {"tk__list_tickets", "tk__get_ticket"}  # read-only tools only
    proposal = next(body for _, body, _ in server.completions if "response_format" in body and body["model"] == "proposer")
    assert 'tk.list_tickets {"status":"open"} -> T1 [open] high assignee=none: Printer on floor 2 is jammed' in proposal["messages"][1]["content"]
    [row] = rows(tmp_path)
    assert row["instruction"] == "Nobody is working on ticket T1. Assign it to omar and tell me its title."
    assert row["ground_truth"]["answer"] == "Printer on floor 2 is jammed"
    assert row["ground_truth"]["final_state"]["tk"]["tickets"]["T1"]["assignee"] == "omar"
    assert [a["changes_state"] for a in row["ground_truth"]["actions"]] == [False, True]
    assert row["passed"] and check(row, "final_state")["passed"] and check(row, "actions")["passed"]
    funnel = json.loads((tmp_path / "run" / "report.json").read_text())["stages"]["synthesize"]["funnels"]["llm_tasks"]
    assert funnel["explored"] == 1 and funnel["explore_calls"] == 1 and funnel["kept"] == 1


def test_exploring_an_environment_without_read_only_tools_is_refused(tmp_path, server, capsys):
    data = config(server)
    data["environments"]["tk"]["mcp"]["tools"] = ["create_ticket", "close_ticket"]
    assert run(tmp_path, data) == 2
    assert "synthesize.llm_tasks[0].explore: environment 'tk' has no read-only tools to explore" in capsys.readouterr().err
