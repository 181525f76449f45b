"""A small inventory as an MCP server (docs/environments.md), with the official SDK's MCPServer.

    python examples/inventory_server.py               # stdio: trajforge starts it, one per episode
    python examples/inventory_server.py --http 8765   # streamable HTTP on http://127.0.0.1:8765/mcp

Read-only tools say so (readOnlyHint): the explore step of blueprint synthesis may call them, and parallel
calls to them run at once. `reset` and `snapshot` are for trajforge (configured as reset_tool and
snapshot_tool, hidden from the agent): a fresh stock at the start of an episode, the state at its end.
"""

import argparse
import copy
import json

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

STOCK = {
    "A1": {"name": "USB-C cable", "price_cents": 899, "quantity": 40},
    "B2": {"name": "Laptop stand", "price_cents": 3450, "quantity": 6},
    "C3": {"name": "Webcam", "price_cents": 5999, "quantity": 0},
}
READ_ONLY = ToolAnnotations(readOnlyHint=True)

app = MCPServer("inventory", log_level="WARNING")
state = {"items": copy.deepcopy(STOCK), "sales": []}


def item(item_id: str) -> dict:
    if item_id not in state["items"]:
        raise ToolError(f"no item {item_id}; items: {', '.join(sorted(state['items']))}")
    return state["items"][item_id]


@app.tool(annotations=READ_ONLY)
def list_items() -> str:
    """List every item with its id, name, price and quantity in stock."""
    return "\n".join(f"{item_id}: {i['name']}, ${i['price_cents'] / 100:.2f}, {i['quantity']} in stock" for item_id, i in sorted(state["items"].items()))


@app.tool(annotations=READ_ONLY)
def get_item(item_id: str) -> str:
    """One item by id, as JSON."""
    return json.dumps({"id": item_id, **item(item_id)}, sort_keys=True)


@app.tool()
def sell(item_id: str, quantity: int) -> str:
    """Sell some units of an item; returns the total price."""
    found = item(item_id)
    if quantity < 1 or quantity > found["quantity"]:
        raise ToolError(f"cannot sell {quantity} of {item_id}: {found['quantity']} in stock")
    found["quantity"] -= quantity
    state["sales"].append({"item_id": item_id, "quantity": quantity})
    return f"sold {quantity} x {found['name']} for ${quantity * found['price_cents'] / 100:.2f}; {found['quantity']} left"


@app.tool()
def restock(item_id: str, quantity: int) -> str:
    """Add units of an item to the stock."""
    found = item(item_id)
    if quantity < 1:
        raise ToolError("quantity must be at least 1")
    found["quantity"] += quantity
    return f"{item_id} now has {found['quantity']} in stock"


@app.tool()
def reset(items: dict | None = None) -> str:
    """Start over from the default stock (or the given items)."""
    state["items"], state["sales"] = copy.deepcopy(items if items is not None else STOCK), []
    return "reset"


@app.tool()
def snapshot() -> str:
    """The whole state as JSON."""
    return json.dumps(state, sort_keys=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on 127.0.0.1:PORT/mcp")
    args = parser.parse_args()
    if args.http:
        app.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        app.run()
