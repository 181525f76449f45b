"""Customer-service tasks against the stateful orders-and-refunds store (pipeline/tools/store.py).

Each task knows the answer and the store's expected final state, both computed here by changing a copy of
the initial state directly; verification compares them with what the trajectory's tool calls really did.
"""

import copy
import random

from pipeline.synthesize.generators.base import Generator, Template, pick_template, step, task
from pipeline.tools.store import CANCEL_REASONS, TOOLS

STORE_TOOLS = [tool.name for tool in TOOLS]
FIRST = ["Mara", "Tomas", "Aiko", "Ravi", "Lena", "Oscar", "Nia", "Jonas", "Priya", "Mateo", "Ines", "Kofi"]
LAST = ["Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Haddad", "Kowalski", "Reyes", "Brandt"]
PRODUCTS = [("desk lamp", 2499), ("usb cable", 899), ("water bottle", 1550), ("backpack", 5900), ("notebook", 450),
            ("headphones", 7999), ("phone case", 1299), ("coffee mug", 1100), ("yoga mat", 3200), ("wall clock", 2750),
            ("keyboard", 4999), ("umbrella", 1875)]
STREETS = ["Elm Street", "Harbor Road", "Mill Lane", "Station Avenue", "Orchard Way", "Bridge Street"]
CITIES = ["Springfield", "Riverton", "Lakeside", "Fairview", "Georgetown"]


def address(rng: random.Random) -> str:
    return f"{rng.randint(1, 250)} {rng.choice(STREETS)}, {rng.choice(CITIES)}"


def build_store(rng: random.Random) -> dict:
    """5 customers with 1-3 orders each; order ids and item ids are unique across the store."""
    names = rng.sample([f"{f} {l}" for f in FIRST for l in LAST], 5)
    customers, orders, next_order, next_item = {}, {}, rng.randint(1000, 8000), 1
    for c, name in enumerate(names):
        customer_id = f"C{100 + c}"
        customers[customer_id] = {"name": name, "email": name.lower().replace(" ", ".") + "@example.com"}
        for _ in range(rng.randint(1, 3)):
            items = []
            for product, price in rng.sample(PRODUCTS, rng.randint(1, 4)):
                items.append({"item_id": f"I{next_item}", "product": product, "price_cents": price, "status": "ordered"})
                next_item += 1
            orders[f"O{next_order}"] = {"customer_id": customer_id, "status": rng.choice(["pending", "pending", "delivered"]),
                                        "address": address(rng), "items": items, "refunded_cents": 0}
            next_order += rng.randint(1, 9)
    return {"customers": customers, "orders": orders}


def pick_order(rng: random.Random, status: str, min_items: int = 1) -> tuple[dict, str, dict]:
    """A store with an order of the given status whose first product is unique among the customer's orders."""
    while True:
        store = build_store(rng)
        choices = [(oid, o) for oid, o in sorted(store["orders"].items()) if o["status"] == status and len(o["items"]) >= min_items]
        if not choices:
            continue
        order_id, order = rng.choice(choices)
        product = order["items"][0]["product"]
        others = [o for oid, o in store["orders"].items() if o["customer_id"] == order["customer_id"] and oid != order_id]
        if not any(i["product"] == product for o in others for i in o["items"]):
            return store, order_id, order


def dollars(cents: int) -> float:
    return cents / 100


def cancel_pending(rng: random.Random) -> dict:
    store, order_id, order = pick_order(rng, "pending")
    customer = store["customers"][order["customer_id"]]
    product, reason = order["items"][0]["product"], rng.choice(CANCEL_REASONS)
    total = sum(i["price_cents"] for i in order["items"])
    final = copy.deepcopy(store)
    final["orders"][order_id].update(status="cancelled", refunded_cents=total)
    return task(
        f"Hi, I'm {customer['name']} ({customer['email']}). Please cancel my pending order with the {product} in it, "
        f"the reason is: {reason}. How much will I get back, in dollars?",
        STORE_TOOLS, dollars(total),
        [
            step("I look up the customer by email.", "find_customer", email=customer["email"]),
            step(f"I list the customer's orders to find the pending one with the {product}.", "list_orders", customer_id=order["customer_id"]),
            step(f"{order_id} is pending and contains the {product}; I cancel it.", "cancel_order", order_id=order_id, reason=reason),
        ],
        f"{dollars(total):.2f}", 3, {"store": store}, final_thought=f"Order {order_id} is cancelled and refunded in full.",
        tolerance=0.005, final_state={"store": final}, template="cancel_pending",
    )


def return_item(rng: random.Random) -> dict:
    store, order_id, order = pick_order(rng, "delivered", min_items=2)
    item = order["items"][0]
    final = copy.deepcopy(store)
    final["orders"][order_id]["items"][0]["status"] = "returned"
    final["orders"][order_id]["refunded_cents"] = item["price_cents"]
    return task(
        f"My order {order_id} arrived, but I want to return the {item['product']} from it. Please process the return. "
        "How much is refunded, in dollars?",
        STORE_TOOLS, dollars(item["price_cents"]),
        [
            step(f"I open order {order_id} to find the item id of the {item['product']}.", "get_order", order_id=order_id),
            step(f"The {item['product']} is item {item['item_id']}; the order is delivered, so I return it.", "return_items",
                 order_id=order_id, item_ids=[item["item_id"]]),
        ],
        f"{dollars(item['price_cents']):.2f}", 2, {"store": store}, final_thought=f"The {item['product']} is returned.",
        tolerance=0.005, final_state={"store": final}, template="return_item",
    )


def change_address(rng: random.Random) -> dict:
    store, order_id, order = pick_order(rng, "pending")
    new_address = address(rng)
    while new_address == order["address"]:
        new_address = address(rng)
    final = copy.deepcopy(store)
    final["orders"][order_id]["address"] = new_address
    return task(
        f"Please ship my order {order_id} to {new_address} instead. Reply with the address it will ship to.",
        STORE_TOOLS, new_address,
        [
            step(f"I check that order {order_id} is still pending.", "get_order", order_id=order_id),
            step("It is pending, so the address can change.", "update_address", order_id=order_id, address=new_address),
        ],
        new_address, 2, {"store": store}, final_thought=f"Order {order_id} now ships to {new_address}.",
        final_state={"store": final}, template="change_address",
    )


TEMPLATES = [Template(3, cancel_pending), Template(2, return_item), Template(2, change_address)]


def make(rng: random.Random, lo: int, hi: int) -> dict:
    return pick_template(TEMPLATES, rng, lo, hi, "store_refunds").build(rng)


GENERATOR = Generator("store_refunds", "store", tuple(STORE_TOOLS), make,
                      "Customer-service tasks on a stateful orders-and-refunds store; the final state is checked.")
