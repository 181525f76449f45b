"""Corruptions of what a trajectory concludes: wrong, hedged, cut-off or ungrounded answers, and thoughts that
misquote a tool's result. Each takes (row, ctx) and returns the corrupted row, or None where it does not apply."""

import re

from tests.verify_suite.rows import answer_kind, render, set_final_answer, tool_steps

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _other_value(row: dict, ctx) -> str | None:
    """A value of the task's world that is not the answer: another entity or another observation's number."""
    truth = str(row["ground_truth"]["answer"])
    if answer_kind(row) == "number":
        seen = [m for s in tool_steps(row) for m in NUMBER.findall(s["observation"] or "")]
        seen = [n for n in seen if n != truth and float(n) != float(truth)]
        return ctx.rng.choice(seen) if seen else str(float(truth) * 2 + 3)
    names = ctx.entities(row) - {truth}
    return ctx.rng.choice(sorted(names)) if names else None


def wrong_entity(row, ctx):
    if answer_kind(row) == "list":
        first, second = row["ground_truth"]["answer"]
        return set_final_answer(row, f"{first}, {'Monday' if second != 'Monday' else 'Sunday'}")
    other = _other_value(row, ctx)
    return None if other is None else set_final_answer(row, other)


def wrong_unit(row, ctx):
    unit = row["ground_truth"].get("unit")
    if unit is None:
        return None
    value = row["ground_truth"]["answer"]
    other = ctx.rng.choice([u for u in ("km", "kg", "degF", "mile", "pound", "gram") if u != unit])
    return set_final_answer(row, f"{value} {other}")


def near_miss(row, ctx):
    if answer_kind(row) != "number":
        return None
    text = row["final_answer"]
    match = list(NUMBER.finditer(text))[-1]
    digits = match.group(0)
    last = int(digits[-1])
    changed = digits[:-1] + str(last + 1 if last < 9 else last - 1)
    return set_final_answer(row, text[:match.start()] + changed + text[match.end():])


def hedged(row, ctx):
    truth = row["final_answer"]
    other = _other_value(row, ctx) if answer_kind(row) != "list" else None
    if other is None:
        other = "something else"
    template = ctx.rng.choice(["{a} (or possibly {b})", "either {a} or {b}", "{a} or {b}", "probably {a}",
                               "{a}, though it might be {b}", "I think it is {a}, but I am not sure", "{a} or maybe {b}"])
    return set_final_answer(row, template.format(a=truth, b=other))


def truncated(row, ctx):
    """Cut mid-word: after the number a word of the task cut short, or the answer itself cut."""
    words = sorted({w for w in re.findall(r"[A-Za-z]{6,}", row["instruction"])} - {"answer"})
    if answer_kind(row) == "number" and words:
        word = ctx.rng.choice(words).lower()
        return set_final_answer(row, f"{row['final_answer']} {word[:ctx.rng.randint(2, 4)]}")
    text = row["final_answer"]
    if len(text) < 5 or not text[-1].isalpha():
        return None
    return set_final_answer(row, text[:-ctx.rng.randint(2, 3)])


def answered_without_acting(row, ctx):
    """The right answer, straight away, for a task whose solution needs its tools."""
    final = row["steps"][-1]
    final["thought"] = ctx.rng.choice(["I know the answer.", "This is easy to answer directly.", None])
    row["steps"] = [final]
    if "final_state" in row["meta"]:
        row["meta"]["final_state"] = row["environment"]  # nothing was done, so the store is as it started
    return render(row)


def contradicted_observation(row, ctx):
    """A thought (or the final answer's sentence) quotes a tool result other than the observation."""
    steps = tool_steps(row)
    numbered = [(i, s) for i, s in enumerate(steps) if NUMBER.search(s["observation"] or "")]
    names = sorted(n for n in ctx.entities(row) if not any(n in (s["observation"] or "") for s in steps))
    if not numbered and not names:
        return None
    if numbered and (not names or ctx.rng.random() < 0.6):
        i, quoted = ctx.rng.choice(numbered)
        real = NUMBER.findall(quoted["observation"])[-1]
        wrong = str(int(float(real)) + ctx.rng.choice([-3, -1, 1, 2, 7]))
    else:
        quoted, wrong = ctx.rng.choice(steps), ctx.rng.choice(names)
    tool = quoted["tool_name"] if quoted["tool_name"] != "python" else "code"
    phrase = ctx.rng.choice(["The {t} returned {w}, so", "The {t} gave {w}; therefore", "Since the {t} result is {w},",
                             "I got {w} from the {t}, so", "The {t} output was {w}, and so", "The {t} says {w}, so",
                             "The {t} showed {w}, hence"]).format(t=tool, w=wrong)
    later = row["steps"][row["steps"].index(quoted) + 1]
    if later["action_type"] == "final_answer" and row["format"] == "function_calling":
        return set_final_answer(row, f"{phrase} the answer is {row['final_answer']}.")
    later["thought"] = f"{phrase} {later['thought'] or 'I go on.'}"
    return render(row)


DEFECTS = {
    "wrong_entity": wrong_entity,
    "wrong_unit": wrong_unit,
    "near_miss_number": near_miss,
    "hedged_answer": hedged,
    "truncated_answer": truncated,
    "answered_without_acting": answered_without_acting,
    "contradicted_observation": contradicted_observation,
}
