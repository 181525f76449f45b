"""A small stateful ticketing service as a real MCP server (the official SDK's MCPServer), for the tests.

    python tests/mcp_tickets.py                      # stdio
    python tests/mcp_tickets.py --http PORT          # streamable HTTP on 127.0.0.1:PORT/mcp
    python tests/mcp_tickets.py --crash-on close_ticket   # the process exits when that tool is called
    python tests/mcp_tickets.py --hang-on get_ticket      # that tool never answers
    python tests/mcp_tickets.py --no-tools | --bad-schema # what a broken server looks like
    python tests/mcp_tickets.py --state-file PATH     # keep the tickets in a file (read at start, written on change)

State lives in the process: each stdio server starts from the same three tickets; `reset` puts the seed (or
the tickets it is given) back, `snapshot` returns the state as JSON (both meant to be hidden from agents).
TICKETS_TITLE_SUFFIX, when set, is appended to the seed titles: the same config then sees other data (drift);
TICKETS_CRASH_ON and TICKETS_HANG_ON are the same as the flags (so a config can switch a fault off).
"""

import argparse
import json
import os
import time

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

SEED = {
    "T1": {"title": "Printer on floor 2 is jammed", "status": "open", "priority": "high", "assignee": None},
    "T2": {"title": "VPN drops every hour", "status": "open", "priority": "medium", "assignee": "dana"},
    "T3": {"title": "New laptop for Sam", "status": "closed", "priority": "low", "assignee": "lee"},
}
for _seeded in SEED.values():
    _seeded["title"] += os.environ.get("TICKETS_TITLE_SUFFIX", "")
AGENTS = ("dana", "lee", "omar")
READ_ONLY = ToolAnnotations(readOnlyHint=True)

state = {"tickets": json.loads(json.dumps(SEED)), "next": 4}
options = argparse.Namespace(crash_on=None, hang_on=None, state_file=None)
app = MCPServer("tickets", log_level="WARNING")


def saved(text: str) -> str:
    if options.state_file:
        with open(options.state_file, "w") as out:
            json.dump(state, out)
    return text


def faults(tool: str) -> None:
    if options.crash_on == tool:
        os._exit(3)
    if options.hang_on == tool:
        time.sleep(3600)


def ticket(ticket_id: str) -> dict:
    if ticket_id not in state["tickets"]:
        raise ToolError(f"no ticket {ticket_id}; known: {', '.join(sorted(state['tickets']))}")
    return state["tickets"][ticket_id]


@app.tool(annotations=READ_ONLY)
def list_tickets(status: str | None = None) -> str:
    """List tickets, optionally only those with a status (open or closed)."""
    faults("list_tickets")
    lines = [f"{tid} [{t['status']}] {t['priority']} assignee={t['assignee'] or 'none'}: {t['title']}"
             for tid, t in sorted(state["tickets"].items()) if status is None or t["status"] == status]
    return "\n".join(lines) or "no tickets"


@app.tool(annotations=READ_ONLY)
def get_ticket(ticket_id: str) -> str:
    """One ticket by id, as JSON."""
    faults("get_ticket")
    return json.dumps({"id": ticket_id, **ticket(ticket_id)}, sort_keys=True)


@app.tool()
def create_ticket(title: str, priority: str = "medium") -> str:
    """Open a new ticket; returns its id."""
    faults("create_ticket")
    if priority not in ("low", "medium", "high"):
        raise ToolError(f"priority must be low, medium or high, not {priority!r}")
    ticket_id = f"T{state['next']}"
    state["next"] += 1
    state["tickets"][ticket_id] = {"title": title, "status": "open", "priority": priority, "assignee": None}
    return saved(f"created {ticket_id}")


@app.tool()
def assign_ticket(ticket_id: str, agent: str) -> str:
    """Assign an open ticket to an agent (dana, lee or omar)."""
    faults("assign_ticket")
    found = ticket(ticket_id)
    if agent not in AGENTS:
        raise ToolError(f"unknown agent {agent!r}; agents: {', '.join(AGENTS)}")
    if found["status"] != "open":
        raise ToolError(f"{ticket_id} is {found['status']}")
    found["assignee"] = agent
    return saved(f"{ticket_id} assigned to {agent}")


@app.tool()
def close_ticket(ticket_id: str) -> str:
    """Close an open ticket."""
    faults("close_ticket")
    found = ticket(ticket_id)
    if found["status"] == "closed":
        raise ToolError(f"{ticket_id} is already closed")
    found["status"] = "closed"
    return saved(f"{ticket_id} closed")


@app.tool()
def reset(tickets: dict | None = None) -> str:
    """Put the service back in its initial state (or the given tickets)."""
    state["tickets"] = json.loads(json.dumps(tickets if tickets is not None else SEED))
    state["next"] = len(state["tickets"]) + 1
    return "reset"


@app.tool()
def snapshot() -> str:
    """The service's state as JSON."""
    return json.dumps({"tickets": state["tickets"]}, sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, help="serve streamable HTTP on 127.0.0.1:PORT/mcp")
    parser.add_argument("--crash-on")
    parser.add_argument("--hang-on")
    parser.add_argument("--no-tools", action="store_true")
    parser.add_argument("--bad-schema", action="store_true")
    parser.add_argument("--state-file")
    args = parser.parse_args()
    options.crash_on = args.crash_on or os.environ.get("TICKETS_CRASH_ON") or None
    options.hang_on = args.hang_on or os.environ.get("TICKETS_HANG_ON") or None
    options.state_file = args.state_file
    if args.state_file and os.path.exists(args.state_file):
        with open(args.state_file) as saved_state:
            state.update(json.load(saved_state))
    if args.no_tools:
        for name in [t.name for t in app._tool_manager.list_tools()]:
            app.remove_tool(name)
    if args.bad_schema:
        app._tool_manager.get_tool("get_ticket").parameters = {"type": "object", "properties": {"ticket_id": {"type": 12}}}
    if args.http:
        app.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        app.run()


if __name__ == "__main__":
    main()
