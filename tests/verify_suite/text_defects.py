"""Corruptions of the text a teacher writes: leaked secrets, format junk, refusals; and the good answers
phrased the way LLM teachers phrase them (which must be kept)."""

import string

from tests.verify_suite.rows import answer_kind, render, set_final_answer


def _token(rng, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


SECRETS = [
    lambda r: "github_pat_11" + _token(r, 20, string.ascii_uppercase + string.digits) + "_" + _token(r, 59),
    lambda r: "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQww" + _token(r, 40) + "\n-----END ENCRYPTED PRIVATE KEY-----",
    lambda r: "sk_live_" + _token(r, 24),
    lambda r: "aws_secret_access_key = " + _token(r, 40, string.ascii_letters + string.digits + "/+"),
    lambda r: "AKIA" + _token(r, 16, string.ascii_uppercase + string.digits),
    lambda r: "ghp_" + _token(r, 36),
    lambda r: "xoxb-" + _token(r, 12, string.digits) + "-" + _token(r, 24),
    lambda r: "hf_" + _token(r, 34),
    lambda r: "sk-proj-" + _token(r, 40),
    lambda r: "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA" + _token(r, 40),
    lambda r: "postgres://admin:" + _token(r, 14) + "@db.internal:5432/prod",
    lambda r: "AIza" + _token(r, 35, string.ascii_letters + string.digits + "_-"),
    lambda r: "password: " + _token(r, 6, string.ascii_lowercase) + _token(r, 3, string.digits),
    lambda r: '{"AccessKeyId": "ASIA' + _token(r, 16, string.ascii_uppercase + string.digits) + '", "SecretAccessKey": "' + _token(r, 40) + '"}',
    lambda r: "glpat-" + _token(r, 20),
    lambda r: "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0." + _token(r, 43, string.ascii_letters + string.digits + "_-"),
    lambda r: "https://hooks.slack.com/services/T" + _token(r, 8, string.ascii_uppercase + string.digits) + "/B" + _token(r, 8, string.ascii_uppercase + string.digits) + "/" + _token(r, 24),
]


def secret(row, ctx):
    value = ctx.rng.choice(SECRETS)(ctx.rng)
    where = ctx.rng.choice(["thought", "final_answer", "meta", "observation"])
    if where == "thought":
        step = ctx.rng.choice(row["steps"][:-1] or row["steps"])
        step["thought"] = f"{step['thought'] or ''} (using the key {value})".strip()
    elif where == "final_answer":
        return set_final_answer(row, f"{row['final_answer']}\n{value}")
    elif where == "meta":
        row["meta"]["notes"] = f"credentials: {value}"
        return row
    else:
        step = ctx.rng.choice(row["steps"][:-1] or row["steps"])
        if step["observation"] is None:
            return None
        step["observation"] += f"\n{value}"
    return render(row)


JUNK = [
    ("final", "{a}<｜end▁of▁sentence｜>"),
    ("final", "{a}<|eot_id|>"),
    ("final", "{a}<end_of_turn>"),
    ("final", "</think>{a}"),
    ("final", "<think>I should answer now.</think> {a}"),
    ("final", "{a}\nAction: finish"),
    ("final", "{a}\nAction: finish[{a}]"),
    ("final", "{a}\n\nUser: Thanks! Can you also tell me the weather?"),
    ("final", "{a}\nHuman: what about tomorrow?"),
    ("final", "{a}\n```python\nprint({a!r})"),
    ("thought", "{t}</think>"),
    ("thought", "{t} ```python\nx = 1"),
    ("thought", "{t}<|im_end|>\n<|im_start|>assistant"),
    ("thought", "{t}\nUser: please hurry"),
    ("final", "{a}<|im_end|>"),
    ("final", "{a} [/INST]"),
    ("final", "<thinking>Let me check.</thinking>\n{a}"),
    ("final", "{a}\n### Instruction: solve another task"),
    ("final", "{a}<|endoftext|>"),
    ("thought", "{t}\nAssistant: I will now call the tool."),
    ("final", "{a}\n```"),
]


def format_junk(row, ctx):
    where, template = ctx.rng.choice(JUNK)
    if where == "final":
        return set_final_answer(row, template.format(a=row["final_answer"]))
    steps = [s for s in row["steps"][:-1] if s["thought"]] if row["format"] == "function_calling" else [s for s in row["steps"] if s["thought"]]
    if not steps:
        return set_final_answer(row, row["final_answer"] + "<|endoftext|>")
    step = ctx.rng.choice(steps)
    step["thought"] = template.format(t=step["thought"])
    return render(row)


REFUSALS = [
    "As a large language model, I cannot access external tools, but",
    "As an AI language model, I don't have the ability to run code, however",
    "I'm sorry, but I can't help with that request.",
    "I apologize, but I am unable to assist with this.",
    "Unfortunately, I cannot provide that information.",
    "I cannot fulfill this request.",
    "I'm not able to help with that, sorry.",
    "Sorry, I can't assist with that.",
    "I won't be able to help with this one.",
    "As an AI, I do not have access to real-time data.",
    "I'm not allowed to share that.",
    "That's not something I can help with.",
    "As an artificial intelligence, I have limits.",
    "I cannot comply with this request.",
]


def refusal(row, ctx):
    text = ctx.rng.choice(REFUSALS)
    steps = [s for s in row["steps"][:-1]] if row["format"] == "function_calling" else row["steps"]
    if not steps or ctx.rng.random() < 0.3:
        return set_final_answer(row, f"{text} {row['final_answer']}")
    step = ctx.rng.choice(steps)
    step["thought"] = f"{text} {step['thought'] or ''}".strip()
    return render(row)


DEFECTS = {"secrets": secret, "format_junk": format_junk, "refusal": refusal}

PHRASINGS = ["It is {a}.", "**{a}**", "The answer is {a}.", "{a}.", "`{a}`", "Answer: {a}", "It's {a}.", "The final answer is **{a}**."]


def phrased(template: str):
    """A good row whose final answer is phrased the way LLM teachers write it."""
    def rephrase(row, ctx):
        answer = row["final_answer"]
        if answer_kind(row) == "number" and row["ground_truth"].get("tolerance") == 0.005 and template == "{a}.":
            answer = "$" + answer  # money, written as money
        return set_final_answer(row, template.format(a=answer))
    return rephrase


def explained(row, ctx):
    """A good row whose final answer is a sentence, as an LLM teacher explains it: the program's final thought,
    where that states the answer ("The change is $29.23.", "Kastel is in Delsaria.")."""
    sentence = row["steps"][-1]["thought"] or ""
    truth = row["ground_truth"]["answer"]
    items = truth if isinstance(truth, list) else [truth]
    if not all(str(item).casefold() in sentence.casefold() or row["final_answer"] in sentence for item in items):
        return None
    return set_final_answer(row, sentence)


def quoting_thoughts(row, ctx):
    """A good row whose thoughts quote the previous result rightly, as LLM teachers do ("The calculator
    returned 24.87, so ...", "The lookup says 'Kastel'...")."""
    import re

    previous = None
    for step in row["steps"]:
        if previous is not None and previous["observation"]:
            numbers = re.findall(r"(?<![\w.])\d+(?:\.\d+)?", previous["observation"])
            tool = previous["tool_name"] if previous["tool_name"] != "python" else "code"
            value = numbers[-1] if numbers else f"'{previous['observation'][:30]}'"
            verb = ctx.rng.choice(["returned", "gave", "says", "showed"])
            step["thought"] = f"The {tool} {verb} {value}. {step['thought'] or ''}".strip()
        previous = step
    return render(row)


GOOD = {**{f"phrased:{t}": phrased(t) for t in PHRASINGS}, "explained": explained, "quoting_thoughts": quoting_thoughts}
