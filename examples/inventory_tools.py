"""A small inventory as a Python-module environment (docs/environments.md).

    environments:
      shop: {python: {module: inventory_tools, path: examples}}

Each episode gets its own Inventory (`make_state`), built from the task's `environment.shop` (or the default
stock); its `snapshot()` is the row's final state. Tools are plain functions: the schema comes from the type
hints and the docstring; raising ValueError is an error observation the agent can read.
"""

import copy

from pipeline.environments.python_module import tool

STOCK = {
    "A1": {"name": "USB-C cable", "price_cents": 899, "quantity": 40},
    "B2": {"name": "Laptop stand", "price_cents": 3450, "quantity": 6},
    "C3": {"name": "Webcam", "price_cents": 5999, "quantity": 0},
}


class Inventory:
    def __init__(self, items: dict):
        self.items = copy.deepcopy(items)
        self.sales: list[dict] = []

    def item(self, item_id: str) -> dict:
        if item_id not in self.items:
            raise ValueError(f"no item {item_id}; items: {', '.join(sorted(self.items))}")
        return self.items[item_id]

    def snapshot(self) -> dict:
        return {"items": copy.deepcopy(self.items), "sales": list(self.sales)}


def make_state(spec: dict) -> Inventory:
    return Inventory(spec.get("items", STOCK))


@tool(read_only=True)
def list_items(state: Inventory) -> str:
    """List every item with its id, name, price and quantity in stock."""
    return "\n".join(f"{item_id}: {i['name']}, ${i['price_cents'] / 100:.2f}, {i['quantity']} in stock" for item_id, i in sorted(state.items.items()))


@tool(read_only=True)
def get_item(state: Inventory, item_id: str) -> dict:
    """One item by id.

    Args:
        item_id: The item's id, e.g. "A1".
    """
    return {"id": item_id, **state.item(item_id)}


@tool
def sell(state: Inventory, item_id: str, quantity: int) -> str:
    """Sell some units of an item; returns the total price.

    Args:
        item_id: The item's id.
        quantity: How many units (at least 1, at most what is in stock).
    """
    item = state.item(item_id)
    if quantity < 1 or quantity > item["quantity"]:
        raise ValueError(f"cannot sell {quantity} of {item_id}: {item['quantity']} in stock")
    item["quantity"] -= quantity
    state.sales.append({"item_id": item_id, "quantity": quantity})
    return f"sold {quantity} x {item['name']} for ${quantity * item['price_cents'] / 100:.2f}; {item['quantity']} left"


@tool
def restock(state: Inventory, item_id: str, quantity: int) -> str:
    """Add units of an item to the stock.

    Args:
        item_id: The item's id.
        quantity: How many units arrive (at least 1).
    """
    item = state.item(item_id)
    if quantity < 1:
        raise ValueError("quantity must be at least 1")
    item["quantity"] += quantity
    return f"{item_id} now has {item['quantity']} in stock"
