"""An MCP server as an environment, end to end: a real stateful ticketing server (tests/mcp_tickets.py) over
stdio and streamable HTTP on 127.0.0.1, called by the program teacher and by an LLM teacher on the fake
endpoint, isolated per episode, recorded, and re-verified offline from the recording."""

import json
import re
import shutil

import pyarrow.parquet as pq
import pytest

from pipeline import cli, shards
from pipeline.environments import Recordings, Toolbox, open_toolbox
from pipeline.verify import replay
from tests.fake_openai import FakeOpenAI
from tests.ticket_fakes import SERVER, check, close_task, config, create_task, http_server, mcp_spec, rows, run, ticket_agent


def llm_teacher(fmt: str) -> dict:
    return {"name": "agent", "policy": "llm", "endpoint": "fake", "formats": [fmt], "max_steps": 5}


def fake_endpoint(server) -> dict:
    return {"fake": {"base_url": server.base_url, "model": "fake-model", "mode": "chat", "max_retries": 0, "timeout_s": 10}}


def test_list_tools_shows_each_server_tool_with_its_schema_and_source(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    import yaml

    path.write_text(yaml.safe_dump(config(tmp_path, [close_task()], mcp_spec())))
    assert cli.main(["list", "tools", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"tk.get_ticket (models see tk__get_ticket)  from mcp stdio: python {SERVER} [read-only]" in out
    assert '"ticket_id": {"title": "Ticket Id", "type": "string"}' in out
    assert "tk.close_ticket (models see tk__close_ticket)" in out and "calculator  from builtin" in out
    assert "tk.reset" not in out and "tk.snapshot" not in out  # the hidden tools


@pytest.mark.parametrize("fmt", ["function_calling", "react"])
def test_llm_teacher_calls_the_servers_tools_and_verify_passes(tmp_path, fmt):
    with FakeOpenAI(responder=ticket_agent) as server:
        data = config(tmp_path, [close_task("T1"), close_task("T2", "VPN drops every hour")], mcp_spec(),
                      teachers=[llm_teacher(fmt)], endpoints=fake_endpoint(server))
        assert run(tmp_path, data) == 0
    sent = [body for _, body, _ in server.completions]
    if fmt == "function_calling":
        assert {t["function"]["name"] for t in sent[0]["tools"]} == {"tk__get_ticket", "tk__close_ticket"}
    else:
        assert "- tk__get_ticket: One ticket by id, as JSON." in sent[0]["messages"][0]["content"]
    out = sorted(rows(tmp_path), key=lambda r: r["instruction"])
    assert [r["final_answer"] for r in out] == ["Printer on floor 2 is jammed", "VPN drops every hour"]
    for row in out:
        assert [s["tool_name"] for s in row["steps"][:2]] == ["tk.get_ticket", "tk.close_ticket"]
        assert json.loads(row["steps"][0]["observation"])["status"] == "open"  # what the server really said
        assert row["meta"]["final_state"] == row["ground_truth"]["final_state"]
        assert row["meta"]["recording"]["calls"] == 4  # the reset, two tool calls, the final snapshot
        assert row["passed"], [c for c in row["checks"] if not c["passed"]]


def test_each_episode_gets_a_fresh_server_over_stdio(tmp_path):
    assert run(tmp_path, config(tmp_path, [create_task("only in A"), create_task("only in B")], mcp_spec())) == 0
    out = {r["instruction"]: r for r in rows(tmp_path)}
    a, b = out["Open a ticket titled 'only in A' and list the open tickets."], out["Open a ticket titled 'only in B' and list the open tickets."]
    assert a["steps"][0]["observation"] == b["steps"][0]["observation"] == "created T4"
    assert "only in A" in a["steps"][1]["observation"] and "only in A" not in b["steps"][1]["observation"]
    assert "only in B" in b["steps"][1]["observation"] and "only in B" not in a["steps"][1]["observation"]
    assert all(r["passed"] for r in out.values())


def test_a_server_that_keeps_state_in_files_gets_a_folder_per_episode(tmp_path):
    spec = {"command": ["python", str(SERVER), "--state-file", "${TRAJFORGE_EPISODE_DIR}/tickets.json"]}
    assert run(tmp_path, config(tmp_path, [create_task("only in A"), create_task("only in B")], spec), "synthesize,sample") == 0
    out = sorted(rows(tmp_path, "trajectories"), key=lambda r: r["instruction"])
    assert [r["steps"][0]["observation"] for r in out] == ["created T4", "created T4"]  # neither saw the other's file
    assert "only in B" not in out[0]["steps"][1]["observation"] and "only in A" not in out[1]["steps"][1]["observation"]


def test_an_http_server_is_isolated_by_its_reset_tool(tmp_path):
    with http_server() as url:
        spec = {"url": url, "reset_tool": "reset", "snapshot_tool": "snapshot"}
        assert run(tmp_path, config(tmp_path, [create_task("only in A"), create_task("only in B"), close_task()], spec)) == 0
    out = {r["instruction"]: r for r in rows(tmp_path)}
    assert all(r["passed"] for r in out.values()), {k: [c for c in r["checks"] if not c["passed"]] for k, r in out.items()}
    listed = [r["steps"][1]["observation"] for k, r in out.items() if k.startswith("Open")]
    assert sum("only in A" in text for text in listed) == 1 and sum("only in B" in text for text in listed) == 1


def test_verify_replays_from_the_recording_without_the_server(tmp_path):
    server = tmp_path / "server.py"
    shutil.copy(SERVER, server)
    data = config(tmp_path, [close_task()], {**mcp_spec(), "command": ["python", str(server)]})
    assert run(tmp_path, data, "synthesize,sample") == 0
    server.unlink()  # the server cannot start any more
    assert run(tmp_path, data, "verify") == 0
    [row] = rows(tmp_path)
    assert check(row, "replay") == {"name": "replay", "passed": True, "detail": "every observation reproduced"}
    assert row["passed"]


def test_replay_catches_an_observation_that_differs_from_the_recording(tmp_path):
    data = config(tmp_path, [close_task()], mcp_spec())
    assert run(tmp_path, data, "synthesize,sample") == 0
    [row] = rows(tmp_path, "trajectories")
    toolbox = open_toolbox(data, tmp_path / "run", "verify", live=False)
    try:
        assert replay.replay_problem(row, 4000, {}, toolbox) is None
        row["steps"][0]["observation"] = row["steps"][0]["observation"].replace("open", "closed")
        assert replay.replay_problem(row, 4000, {}, toolbox).startswith("step 0 (tk.get_ticket): recorded observation")
    finally:
        toolbox.close()


def test_live_replay_reports_drift(tmp_path, monkeypatch):
    data = config(tmp_path, [close_task(title="Printer on floor 2 is jammed")], {**mcp_spec(), "env": {"TICKETS_TITLE_SUFFIX": "${TF_SUFFIX}"}})
    monkeypatch.setenv("TF_SUFFIX", "")
    assert run(tmp_path, data) == 0
    assert rows(tmp_path)[0]["passed"]
    monkeypatch.setenv("TF_SUFFIX", " (moved)")  # the server's data changed since sampling
    assert run(tmp_path, data, "verify", "--live", "--reconfigure") == 0
    [row] = rows(tmp_path)
    detail = check(row, "replay")["detail"]
    assert not row["passed"] and detail.startswith("step 0 (tk.get_ticket): recorded observation")
    assert "the environment now says" in detail and "(moved)" in detail


def test_recordings_hold_each_call_and_the_listing(tmp_path):
    assert run(tmp_path, config(tmp_path, [close_task()], mcp_spec()), "synthesize,sample") == 0
    [row] = rows(tmp_path, "trajectories")
    recordings = Recordings.open(tmp_path / "run")
    episode = recordings.episode(row["meta"]["recording"]["attempt"])
    assert [(c.kind, c.tool) for c in episode.calls] == [("reset", "tk"), ("call", "tk.get_ticket"), ("call", "tk.close_ticket"), ("snapshot", "tk")]
    assert episode.answer("tk.close_ticket", {"ticket_id": "T1"}).content == "T1 closed"
    assert episode.answer("tk.close_ticket", {"ticket_id": "T1"}) is None  # each recorded call answers once
    source, tools = recordings.listing("tk")
    assert source == f"mcp stdio: python {SERVER}" and {t["name"] for t in tools} >= {"tk.get_ticket", "tk.close_ticket"}


def _failed_run(tmp_path, capsys, environment: dict, tasks=None) -> tuple[int, str]:
    """The exit code and what the run printed besides its progress bars (one line, if all is well)."""
    code = run(tmp_path, config(tmp_path, tasks or [close_task()], environment))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, "\n".join(line for line in err.replace("\r", "\n").splitlines() if line.strip() and not re.match(r"^\w+: +\d+%\|", line))


def test_a_server_that_crashes_loses_that_episode_only_and_the_next_run_retries_it(tmp_path, monkeypatch):
    data = config(tmp_path, [close_task(), create_task("kept")], {**mcp_spec(), "env": {"TICKETS_CRASH_ON": "${TF_CRASH_ON}"}})
    monkeypatch.setenv("TF_CRASH_ON", "close_ticket")
    assert run(tmp_path, data) == 0
    out = {r["instruction"][:5]: r for r in rows(tmp_path)}
    crashed = out["Close"]
    assert crashed["error"].startswith(f"step 1: environment 'tk' (python {SERVER}): the MCP server closed the connection (it exited?) "
                                       "during tools/call close_ticket")
    assert crashed["meta"]["transient"] == ["environment"] and check(crashed, "transient")["passed"] is False
    assert out["Open "]["passed"]  # the other episode, on its own server, went on
    monkeypatch.setenv("TF_CRASH_ON", "")  # the server is fixed: the same command retries exactly what failed
    assert run(tmp_path, data) == 0
    assert all(r["passed"] for r in rows(tmp_path))


def test_a_shared_server_that_crashes_stops_the_stage_with_a_named_error(tmp_path, capsys):
    code, err = _failed_run(tmp_path, capsys, mcp_spec("--crash-on", "close_ticket", isolation="shared"))
    assert code == 3 and len(err.splitlines()) == 1
    assert err.startswith(f"error: environment 'tk' (python {SERVER} --crash-on close_ticket): the MCP server closed the connection")
    assert "during tools/call close_ticket" in err
    assert not list((tmp_path / "run" / "trajectories").glob("part-*.parquet"))  # no shard written as finished


def test_a_hanging_server_is_a_named_error_not_a_hung_stage(tmp_path):
    assert run(tmp_path, config(tmp_path, [close_task()], mcp_spec("--hang-on", "get_ticket", call_timeout_s=2))) == 0
    [row] = rows(tmp_path)
    assert row["error"].endswith("the MCP server did not answer tools/call get_ticket within 2s")
    assert row["meta"]["transient"] == ["environment"] and not row["passed"]


@pytest.mark.parametrize("environment, message", [
    ({"command": ["python", "/nonexistent/server.py"]}, "error: environment 'tk' (python /nonexistent/server.py): cannot start the MCP server"),
    (mcp_spec("--no-tools"), "the server has no tool 'reset'"),
    ({"command": ["python", str(SERVER), "--no-tools"]}, "the server lists no tools"),
    ({"command": ["python", str(SERVER), "--bad-schema"]}, "environment 'tk': tool 'get_ticket': the input schema is not valid JSON Schema"),
])
def test_a_server_that_cannot_serve_fails_before_any_work(tmp_path, capsys, environment, message):
    code, err = _failed_run(tmp_path, capsys, environment)
    assert code != 0 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "run" / "tasks").exists() or not list((tmp_path / "run" / "tasks").glob("part-*.parquet"))


def test_a_task_naming_a_tool_no_environment_has_fails_before_any_work(tmp_path, capsys):
    task = {**close_task(), "tools": ["tk.get_ticket", "tk.delete_everything"]}
    code, err = _failed_run(tmp_path, capsys, mcp_spec(), [task])
    assert code == 2 and len(err.splitlines()) == 1
    assert "row 0" in err and "names tool(s) tk.delete_everything that no environment has" in err


def test_an_environment_named_like_a_builtin_is_refused(tmp_path, capsys):
    data = config(tmp_path, [close_task()], mcp_spec())
    data["environments"] = {"calculator": {"mcp": mcp_spec()}}
    assert run(tmp_path, data) == 2
    assert "environments.calculator: 'calculator' is a built-in tool or resource name" in capsys.readouterr().err


def test_two_tools_sent_under_one_name_are_refused():
    from pipeline.environments.base import Environment
    from pipeline.errors import UserError

    environment = Environment()
    environment.name, environment.source = "tk", "test"
    environment.add_tool("get-ticket", "", {"type": "object"}, lambda a, e: "")
    environment.add_tool("get_ticket", "", {"type": "object"}, lambda a, e: "")
    with pytest.raises(UserError, match="'tk.get-ticket' and 'tk.get_ticket' are both sent to models as 'tk__get_ticket'"):
        Toolbox({"tk": environment})


def test_sample_rows_are_valid_parquet_with_the_recording_reference(tmp_path):
    assert run(tmp_path, config(tmp_path, [close_task()], mcp_spec()), "synthesize,sample") == 0
    [path] = sorted((tmp_path / "run" / "trajectories").glob("part-*.parquet"))
    [row] = shards.read_shard(path, "trajectory")
    assert pq.read_metadata(path).num_rows == 1 and set(row["meta"]["recording"]) == {"attempt", "calls"}


def test_the_recordings_travel_with_the_published_dataset(tmp_path):
    data = config(tmp_path, [close_task(), create_task("new")], mcp_spec(), curate={"validation_fraction": 0.0, "recordings": True})
    assert run(tmp_path, data, "synthesize,sample,verify,curate") == 0
    assert cli.main(["publish", str(tmp_path / "run"), "--dry-run", "--out", str(tmp_path / "hub")]) == 0
    calls = [json.loads(line) for line in (tmp_path / "hub" / "recordings" / "calls.jsonl").read_text().splitlines()]
    curated = [r for p in sorted((tmp_path / "hub" / "data").glob("*.parquet")) for r in shards.read_shard(p, "trajectory", validate=False)]
    assert {c["attempt"] for c in calls} == {r["meta"]["recording"]["attempt"] for r in curated} and len(curated) == 2
    assert {"kind": "call", "tool": "tk.close_ticket", "arguments": {"ticket_id": "T1"}, "observation": "T1 closed"}.items() <= \
        next(c for c in calls if c["tool"] == "tk.close_ticket").items()
    listings = json.loads((tmp_path / "hub" / "recordings" / "listings.json").read_text())
    assert "tk.get_ticket" in {t["name"] for t in listings["tk"]["tools"]}


def conversation(path: str, body: dict):
    """An agent that asks which ticket, closes it and reports; a user who wants T2 closed and says so when asked."""
    messages = body["messages"]
    if body["model"] == "user":
        if len(messages) == 2:
            return "Hi, I need one of my tickets closed."
        last = messages[-1]["content"]
        return "It is T2." if "Which ticket" in last else ("Thanks! ###STOP###" if "closed" in last else "Sorry?")
    said = " ".join(m["content"] for m in messages if m["role"] == "user")
    if any(m["role"] == "tool" for m in messages):
        return {"content": f"Done: {messages[-1]['content']}."}
    ticket = re.search(r"\bT\d+\b", said)
    if ticket is None:
        return {"content": "Which ticket should I close? Please give me its id."}
    return {"content": "", "tool_calls": [{"id": "c", "name": "tk__close_ticket", "arguments": json.dumps({"ticket_id": ticket.group(0)})}]}


def test_a_multi_turn_conversation_with_a_simulated_user_changes_the_servers_state(tmp_path):
    task = {**close_task("T2", "VPN drops every hour"), "instruction": "You want ticket T2 (the VPN one) closed.",
            "tools": ["tk.get_ticket", "tk.close_ticket"]}
    task["ground_truth"] = {"answer": "T2 closed", "final_state": task["ground_truth"]["final_state"],
                            "actions": [{"tool": "tk.close_ticket", "arguments": {"ticket_id": "T2"}, "changes_state": True}]}
    with FakeOpenAI(models=("agent", "user"), responder=conversation) as server:
        endpoint = lambda model: {"base_url": server.base_url, "model": model, "mode": "chat", "max_retries": 0, "timeout_s": 10}
        teacher = {"name": "agent", "policy": "llm", "endpoint": "agent", "formats": ["function_calling"], "max_steps": 6,
                   "user_simulator": {"endpoint": "user", "max_turns": 3}}
        data = config(tmp_path, [task], mcp_spec(), teachers=[teacher], endpoints={"agent": endpoint("agent"), "user": endpoint("user")})
        assert run(tmp_path, data) == 0
    [row] = rows(tmp_path)
    assert [s["action_type"] for s in row["steps"]] == ["ask_user", "tool_call", "final_answer"]
    assert row["meta"]["conversation"]["ended_by"] == "satisfied"
    assert row["meta"]["final_state"]["tk"]["tickets"]["T2"]["status"] == "closed"
    assert row["passed"], [c for c in row["checks"] if not c["passed"]]
