"""Configs, seed tasks and a fake LLM agent for the ticketing MCP server (tests/mcp_tickets.py)."""

import json
import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from pipeline import cli, shards

SERVER = Path(__file__).parent / "mcp_tickets.py"
CHECKS = ["schema", "messages_steps", "step_ids", "context", "mask", "tool_calls", "replay", "final_answer", "answer", "final_state", "actions"]


def seed_state(**changes) -> dict:
    """The server's snapshot after an episode: the seed tickets with `changes` ({id: {field: value}})."""
    from tests.mcp_tickets import SEED

    tickets = json.loads(json.dumps(SEED))
    for ticket_id, fields in changes.items():
        tickets.setdefault(ticket_id, {}).update(fields)
    return {"tk": {"tickets": tickets}}


def close_task(ticket_id: str = "T1", title: str = "Printer on floor 2 is jammed") -> dict:
    """Close a ticket and say its title: a read, a write, a final state."""
    return {
        "domain": "tickets", "instruction": f"Close ticket {ticket_id} and tell me its title.",
        "tools": ["tk.get_ticket", "tk.close_ticket"], "environment": {},
        "ground_truth": {"answer": title, "final_state": seed_state(**{ticket_id: {"status": "closed"}})},
        "solution": {"steps": [
            {"thought": "I look the ticket up.", "tool": "tk.get_ticket", "arguments": {"ticket_id": ticket_id}},
            {"thought": "Now I close it.", "tool": "tk.close_ticket", "arguments": {"ticket_id": ticket_id}}],
            "answer": title},
        "difficulty": 2, "meta": {},
    }


def create_task(title: str) -> dict:
    """Open a ticket, then list the open ones: what another episode must never see."""
    return {
        "domain": "tickets", "instruction": f"Open a ticket titled '{title}' and list the open tickets.",
        "tools": ["tk.create_ticket", "tk.list_tickets"], "environment": {},
        "ground_truth": {"answer": "T4", "final_state": seed_state(T4={"title": title, "status": "open", "priority": "medium", "assignee": None})},
        "solution": {"steps": [
            {"thought": "I open it.", "tool": "tk.create_ticket", "arguments": {"title": title}},
            {"thought": "I list the open tickets.", "tool": "tk.list_tickets", "arguments": {"status": "open"}}],
            "answer": "T4"},
        "difficulty": 2, "meta": {},
    }


def mcp_spec(*extra_args, **settings) -> dict:
    return {"command": ["python", str(SERVER), *extra_args], "snapshot_tool": "snapshot", "reset_tool": "reset", **settings}


def config(tmp_path, tasks: list[dict], environment: dict, teachers: list[dict] | None = None, endpoints: dict | None = None, **extra) -> dict:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    return {
        "run": {"name": "tickets", "rows_per_shard": 4},
        "endpoints": endpoints or {},
        "environments": {"tk": {"mcp": environment}},
        "synthesize": {"seeds": [{"name": "tickets", "path": str(seeds)}]},
        "sample": {"teachers": teachers or [{"name": "program", "policy": "program", "formats": ["function_calling"]}]},
        "verify": {"checks": [{"name": n} for n in CHECKS]},
        **extra,
    }


def run(tmp_path, data: dict, stages: str = "synthesize,sample,verify", *extra) -> int:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return cli.main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", stages, *extra])


def rows(tmp_path, folder: str = "verified") -> list[dict]:
    return [r for p in sorted((tmp_path / "run" / folder).glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")]


def check(row: dict, name: str) -> dict:
    return next(c for c in row["checks"] if c["name"] == name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def http_server(*extra_args):
    """The ticket server over streamable HTTP on 127.0.0.1; yields its MCP URL once it accepts connections."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SERVER), "--http", str(port), *extra_args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the ticket server did not start: {proc.stderr.read().decode()[-500:]}")
                time.sleep(0.05)  # polling the port until the server listens (readiness, not ordering)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)


def _instruction(body: dict) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def ticket_agent(path: str, body: dict):
    """A competent agent for close_task in function_calling (native tools) or react (chat): get the ticket,
    close it, answer with the title the server returned."""
    ticket_id = re.search(r"\bT\d+\b", _instruction(body)).group(0)
    arguments = {"ticket_id": ticket_id}
    if "tools" in body:
        results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        if not results:
            return {"content": "I look it up.", "tool_calls": [{"id": "c1", "name": "tk__get_ticket", "arguments": json.dumps(arguments)}]}
        if len(results) == 1:
            return {"content": "I close it.", "tool_calls": [{"id": "c2", "name": "tk__close_ticket", "arguments": json.dumps(arguments)}]}
        return {"content": json.loads(results[0])["title"]}
    seen = [m["content"].removeprefix("Observation: ") for m in body["messages"] if m["role"] == "user" and m["content"].startswith("Observation: ")]
    if not seen:
        return f"Thought: I look it up.\nAction: tk__get_ticket\nAction Input: {json.dumps(arguments)}"
    if len(seen) == 1:
        return f"Thought: I close it.\nAction: tk__close_ticket\nAction Input: {json.dumps(arguments)}"
    return f"Thought: Done.\nFinal Answer: {json.loads(seen[0])['title']}"
