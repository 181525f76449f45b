"""Deterministic stand-ins for the LLMs of richer synthesis, served by tests/fake_openai.py and told apart by
model name: a blueprint proposer that reads the store from its prompt, reviewers, a customer-service agent in
function calling, and simulated users."""

import json
import re

from pipeline.sample.user_sim import STOP
from pipeline.tools.store import CANCEL_REASONS

PASS = {"passed": True, "score": 5, "rationale": "clear and correct"}
FAIL = {"passed": False, "score": 1, "rationale": "the instruction never says which order"}


def store_of_prompt(body: dict) -> dict:
    prompt = body["messages"][1]["content"]
    return json.loads(prompt.split("(JSON):\n", 1)[1].split("\n\nA TASK", 1)[0])["store"]


def cancel_blueprint(store: dict, order_id: str | None = None) -> dict:
    """Cancel the first pending order (ids sorted): the refund is the order's total."""
    pending = sorted(o for o, v in store["orders"].items() if v["status"] == "pending")
    order_id = order_id or pending[0]
    total = sum(i["price_cents"] for i in store["orders"].get(order_id, {"items": []})["items"])
    return {"instruction": f"Please cancel my order {order_id}, the reason is: ordered by mistake. How much is refunded?",
            "actions": [{"thought": "I check the order first.", "tool": "get_order", "arguments": {"order_id": order_id}},
                        {"thought": "It is pending, so I cancel it.", "tool": "cancel_order", "arguments": {"order_id": order_id, "reason": "ordered by mistake"}}],
            "answer": f"{total / 100:.2f}", "state_changes": {f"store.orders.{order_id}.status": "cancelled"}}


def proposer(body: dict):
    """proposer: a valid blueprint. proposer-fixes: an unknown order id first, the valid one after feedback.
    proposer-garbage: no JSON. proposer-copy: the example task's own instruction."""
    model = body["model"]
    if model == "proposer-garbage":
        return "Here is a nice task for you!"
    if model == "proposer-copy":
        first = body["messages"][1]["content"].split("A TASK IN THIS ENVIRONMENT:\n", 1)[1].split("\n", 1)[0]
        blueprint = cancel_blueprint(store_of_prompt(body))
        return json.dumps({**blueprint, "instruction": json.loads(first)["instruction"]})
    feedback_round = len(body["messages"]) > 2
    store = store_of_prompt(body)
    if model == "proposer-fixes" and not feedback_round:
        return json.dumps(cancel_blueprint(store, "O1"))
    return json.dumps(cancel_blueprint(store))


def agent(body: dict):
    """A customer-service agent: asks for the order id and the reason, cancels, reports the refund."""
    messages = body["messages"]
    said = " ".join(m["content"] for m in messages if m["role"] == "user")
    results = [m["content"] for m in messages if m["role"] == "tool"]
    if results:
        return {"content": f"Done. {results[-1]}"}
    order = re.search(r"\bO\d+\b", said)
    reason = next((r for r in CANCEL_REASONS if r in said), None)
    if not order:
        return {"content": "Sure. Which order is it? Please give me the order id."}
    if not reason:
        return {"content": "Why do you want to cancel it?"}
    call = {"id": "call_cancel", "name": "cancel_order", "arguments": json.dumps({"order_id": order.group(0), "reason": reason})}
    return {"content": "I cancel it now.", "tool_calls": [call]}


def user(body: dict):
    """user: answers what it is asked from its hidden goal, and stops once the order is cancelled.
    user-chatty: never satisfied. user-mute: sends nothing after its opening."""
    messages = body["messages"]
    intent = messages[0]["content"].split("only you know:\n", 1)[1].split("\n\nRules", 1)[0]
    if len(messages) == 2:
        return "Hi, I need to cancel an order."
    if body["model"] == "user-mute":
        return ""
    if body["model"] == "user-chatty":
        return "Hmm, tell me more about that."
    last = messages[-1]["content"]
    if "cancelled" in last:
        return f"Great, thanks! {STOP}"
    if "order id" in last:
        return "It is " + re.search(r"O\d+", intent).group(0) + "."
    if last.startswith("Why"):
        return next((f"The reason is: {r}." for r in CANCEL_REASONS if r in intent), "No reason.")
    return "Sorry, what do you need?"


def responder(path: str, body: dict):
    model = body["model"]
    if model.startswith("reviewer"):
        return json.dumps(FAIL if model == "reviewer-fail" else PASS)
    if model.startswith("proposer"):
        return proposer(body)
    if model.startswith("user"):
        return user(body)
    return agent(body)


MODELS = ("proposer", "proposer-fixes", "proposer-garbage", "proposer-copy", "reviewer", "reviewer-fail",
          "agent", "user", "user-chatty", "user-mute")


def endpoints(server) -> dict:
    return {name: {"base_url": server.base_url, "model": name, "max_retries": 0, "timeout_s": 10} for name in MODELS}
