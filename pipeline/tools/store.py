"""A stateful orders-and-refunds store (in the style of tau-bench's retail domain and APIGen-MT).

The environment's `store` holds customers and orders; the tools read and change it under the store's policy
(only pending orders can be cancelled or re-addressed, only delivered items can be returned, each once). The
state after an episode (`Env.snapshot()["store"]`) is compared with the task's `ground_truth.final_state`, so a
trajectory that says the right thing but did the wrong thing fails.

State layout (plain JSON, money in integer cents):
  customers: {customer_id: {name, email}}
  orders: {order_id: {customer_id, status: pending|delivered|cancelled|returned, address,
                      items: [{item_id, product, price_cents, status: ordered|returned}], refunded_cents}}
"""

import copy

from pipeline.tools.base import Env, Tool, ToolError

CANCEL_REASONS = ["no longer needed", "ordered by mistake"]


def dollars(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


class Store:
    def __init__(self, state: dict):
        self.state = copy.deepcopy(state)

    @classmethod
    def from_env(cls, env: Env) -> "Store":
        if "store" not in env.spec:
            raise ToolError("this task has no store")
        return cls(env.spec["store"])

    def snapshot(self) -> dict:
        return copy.deepcopy(self.state)

    def order(self, order_id: str) -> dict:
        order = self.state["orders"].get(order_id.strip())
        if order is None:
            raise ToolError(f"no order with id {order_id!r}")
        return order


def store_of(env: Env) -> Store:
    return env.resource("store", Store.from_env)


def _total(order: dict) -> int:
    return sum(item["price_cents"] for item in order["items"])


def find_customer(args: dict, env: Env) -> str:
    email = args["email"].strip().lower()
    for customer_id, customer in sorted(store_of(env).state["customers"].items()):
        if customer["email"].lower() == email:
            return f"{customer_id}: {customer['name']} <{customer['email']}>"
    raise ToolError(f"no customer with email {args['email']!r}")


def list_orders(args: dict, env: Env) -> str:
    store = store_of(env)
    if args["customer_id"] not in store.state["customers"]:
        raise ToolError(f"no customer with id {args['customer_id']!r}")
    lines = [f"{order_id} ({order['status']}): {', '.join(i['product'] for i in order['items'])} - {dollars(_total(order))}"
             for order_id, order in sorted(store.state["orders"].items()) if order["customer_id"] == args["customer_id"]]
    return "\n".join(lines) if lines else "This customer has no orders."


def get_order(args: dict, env: Env) -> str:
    order = store_of(env).order(args["order_id"])
    items = "\n".join(f"- {i['item_id']}: {i['product']}, {dollars(i['price_cents'])} ({i['status']})" for i in order["items"])
    return (f"Order {args['order_id'].strip()} for customer {order['customer_id']}: status {order['status']}, "
            f"ship to {order['address']}, refunded {dollars(order['refunded_cents'])}\n{items}")


def cancel_order(args: dict, env: Env) -> str:
    order = store_of(env).order(args["order_id"])
    if order["status"] != "pending":
        raise ToolError(f"order {args['order_id']} is {order['status']}; only pending orders can be cancelled")
    order["status"] = "cancelled"
    order["refunded_cents"] = _total(order)
    return f"Order {args['order_id'].strip()} is cancelled ({args['reason']}); {dollars(order['refunded_cents'])} refunded."


def return_items(args: dict, env: Env) -> str:
    order = store_of(env).order(args["order_id"])
    if order["status"] != "delivered":
        raise ToolError(f"order {args['order_id']} is {order['status']}; only delivered orders accept returns")
    items = {i["item_id"]: i for i in order["items"]}
    wanted = list(dict.fromkeys(args["item_ids"]))
    for item_id in wanted:
        if item_id not in items:
            raise ToolError(f"order {args['order_id']} has no item {item_id!r}")
        if items[item_id]["status"] == "returned":
            raise ToolError(f"item {item_id} was already returned")
    refund = 0
    for item_id in wanted:
        items[item_id]["status"] = "returned"
        refund += items[item_id]["price_cents"]
    order["refunded_cents"] += refund
    if all(i["status"] == "returned" for i in order["items"]):
        order["status"] = "returned"
    return f"Returned {', '.join(wanted)} from order {args['order_id'].strip()}; {dollars(refund)} refunded."


def update_address(args: dict, env: Env) -> str:
    order = store_of(env).order(args["order_id"])
    if order["status"] != "pending":
        raise ToolError(f"order {args['order_id']} is {order['status']}; only pending orders can change address")
    order["address"] = args["address"].strip()
    return f"Order {args['order_id'].strip()} will ship to {order['address']}."


def _tool(name: str, description: str, fn, **properties) -> Tool:
    schema = {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
    return Tool(name, description, schema, fn)


_ID = {"type": "string", "minLength": 1}
TOOLS = [
    _tool("find_customer", "Find a store customer by email; returns their customer id.", find_customer, email=_ID),
    _tool("list_orders", "List a customer's orders with status, products and total.", list_orders, customer_id=_ID),
    _tool("get_order", "Show an order: status, shipping address, refunds, and its items with ids and prices.", get_order, order_id=_ID),
    _tool("cancel_order", "Cancel a pending order and refund it in full.", cancel_order, order_id=_ID,
          reason={"enum": CANCEL_REASONS}),
    _tool("return_items", "Return items of a delivered order and refund them.", return_items, order_id=_ID,
          item_ids={"type": "array", "items": _ID, "minItems": 1}),
    _tool("update_address", "Change the shipping address of a pending order.", update_address, order_id=_ID, address=_ID),
]
