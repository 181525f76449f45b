"""The grounding and consistency checks: what a trajectory states must come from what it saw.

grounding: a task whose answer is not in its instruction, and that offers tools, is not answered without a
single successful action; and every number and name in the final answer is traceable to an observation, a user
turn or the instruction (rounding allowed: 45.48 for an observed 45.4825).

consistency: where a thought or the final answer quotes a tool's result ("the calculator returned 4", "the
query gave 'East'"), the quoted value is in an observation seen before it."""

import re
from functools import lru_cache

from pipeline.verify.answers import FRAMING_WORDS, numbers_in, strip_markdown
from pipeline.verify.replay import allowed_tools

ACTIONS = ("tool_call", "code")
_NAME = re.compile(r"\b[A-Z][a-z]{2,}(?:\s+[A-Z][a-z]{2,})*\b")
SUBJECTS = ("tool", "tools", "calculator", "query", "sql", "lookup", "search", "code", "function", "call", "result", "output",
            "observation", "converter", "conversion", "interpreter", "program", "script", "response")
VERBS = (r"returned|returns|gave|gives|yielded|yields|produced|printed|prints|output|outputs|showed|shows|said|says|"
         r"reported|reports|came\s+back(?:\s+(?:with|as))?|is|was|were|equals|equaled|equalled")
COUNTED = r"results?|rows?|items?|documents?|matches|entries|lines|records|hits|values|elements|orders?|customers?|steps?"
VALUE = (r"(?P<value>\$?-?\d[\d,]*(?:\.\d+)?|\"[^\"\n]{1,60}\"|'[^'\n]{1,60}'|`[^`\n]{1,60}`"
         r"|(?-i:[A-Z][A-Za-z-]+(?:\s+[A-Z][A-Za-z-]+)*))")  # a number, a quoted text, or a name


@lru_cache(maxsize=64)
def quote_pattern(tools: tuple[str, ...]) -> re.Pattern:
    """'<subject> <verb> [a few filler words] <value>': a statement of what a tool returned."""
    subject = "|".join(map(re.escape, SUBJECTS + tools))
    return re.compile(
        rf"(?:\b(?:(?:{subject})\s+)?(?:{subject})\s+(?:{VERBS})\b|\bI\s+(?:got|obtained|received)\b)"
        r"(?:\s+(?:me|us|back|a|an|the|value|of|total|result|answer|number|just|exactly|to\s+be)\b){0,3}\s*[:=]?\s*"
        rf"{VALUE}(?!\s*(?:{COUNTED})\b)",
        re.IGNORECASE)


def _observed(row: dict, before: dict | None = None) -> list[str]:
    """The observations and user turns before step `before` (all of them when None)."""
    until = before["message_index"] if before else len(row["messages"])
    texts = [s["observation"] for s in row["steps"] if s["observation"] is not None and (before is None or s["index"] < before["index"])]
    return texts + [m["content"] for m in row["messages"][:until] if m.get("role") == "user" and isinstance(m.get("content"), str)]


def _number_traceable(token: str, value: float, sources: list[float]) -> bool:
    """`value` is a source number, or one rounded to the precision `token` is written with."""
    decimals = len(token.partition(".")[2]) if "e" not in token.lower() else 12
    half = 0.5 * 10 ** -decimals + 1e-9 * max(1.0, abs(value))
    return any(abs(value - source) <= half for source in sources)


def untraceable(text: str, sources: list[str]) -> str | None:
    """The first number or name in `text` that none of `sources` contains."""
    numbers = [value for source in sources for _, value in numbers_in(source)]
    for token, value in numbers_in(strip_markdown(text)):
        if not _number_traceable(token, value, numbers):
            return token
    words = {w.casefold() for source in sources for w in re.findall(r"[A-Za-z]+", source)}
    for name in names_in(strip_markdown(text)):
        if any(p.casefold() not in words for p in name.split() if p.casefold() not in FRAMING_WORDS):
            return name
    return None


def names_in(text: str) -> list[str]:
    """Capitalized words and runs of them, as names: a single capitalized word opening a sentence counts only
    in a short answer ('Delard', 'It is Delard.'), since 'Hello' or 'Each' opening a sentence names nothing."""
    short = len(re.findall(r"\w+", text)) <= 4
    found = []
    for match in _NAME.finditer(text):
        opens = match.start() == 0 or re.search(r"[.!?:\n]\s*$", text[: match.start()])
        if short or " " in match.group(0) or not opens:
            found.append(match.group(0))
    return found


def _needs_tools(row: dict, instruction: str) -> str | None:
    """What only acting could have found: a number the task expects (numbers are computed or looked up), an
    expected text the instruction does not hold, or, without ground truth, a value of the final answer that
    is not in the instruction."""
    truth = (row.get("ground_truth") or {}).get("answer")
    if truth is None:
        return untraceable(row["final_answer"], [instruction])
    for item in truth if isinstance(truth, list) else [truth]:
        if isinstance(item, (int, float)) or str(item).casefold() not in instruction.casefold():
            return str(item)  # a number to find, or a text the instruction does not give away
    return None


def grounding_problem(row: dict) -> str | None:
    answer = row.get("final_answer")
    if not answer or (row.get("ground_truth") or {}).get("no_tool"):
        return None  # a task no tool fits is answered from knowledge, or declined: the no_tool check judges it
    done = [s for s in row["steps"] if s["action_type"] in ACTIONS and s["observation"] is not None and not s["error"]]
    offered = allowed_tools(row)
    instruction = row.get("instruction") or ""
    if offered and not done and (needed := _needs_tools(row, instruction)):
        return f"answered without acting: the task offers {', '.join(offered)}, no action succeeded, and {needed!r} is not in the instruction"
    value = untraceable(answer, _observed(row) + [instruction])
    if value:
        return f"the final answer's {value!r} is in no observation, user turn or the instruction"
    return None


def _quoted_problem(text: str, seen: list[str], tools: tuple[str, ...]) -> str | None:
    numbers = [value for source in seen for _, value in numbers_in(source)]
    for match in quote_pattern(tools).finditer(text):
        quoted = match.group("value")
        if not quoted[0].isdigit() and quoted[0] not in "$-":
            text = quoted[1:-1] if quoted[0] in "\"'`" else quoted
            if text.casefold() not in FRAMING_WORDS and not any(text.casefold() in s.casefold() for s in seen):
                return f"quotes {quoted} as a result, but no observation before it says so"
            continue
        token = quoted.lstrip("$").replace(",", "")
        # a quote is exact; only a quote with decimals may round (8.82 for 8.81849, not 46 for 45.9)
        if float(token) not in numbers and ("." not in token or not _number_traceable(token, float(token), numbers)):
            return f"says {match.group(0).strip()!r}, but no observation before it shows {token}"
    return None


def consistency_problem(row: dict) -> str | None:
    tools = tuple(allowed_tools(row))
    for step in row["steps"]:
        if step.get("thought") and (problem := _quoted_problem(step["thought"], _observed(row, step), tools)):
            return f"step {step['index']}'s thought {problem}"
    answer = row.get("final_answer")
    if answer and (problem := _quoted_problem(answer, _observed(row), tools)):
        return f"the final answer {problem}"
    return None
