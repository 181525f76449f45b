"""Render trajectories readably in a terminal: instruction, thought / action / observation per step, the
final answer, checks and verdict."""

import textwrap

BOLD, DIM, GREEN, RED, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m"


def _style(text: str, code: str, color: bool) -> str:
    return f"{code}{text}{RESET}" if color else text


def _block(label: str, text: str | None, width: int, limit: int = 600) -> list[str]:
    if text is None:
        return []
    body = text if len(text) <= limit else text[:limit] + f" ... [{len(text) - limit} more chars]"
    lines = []
    for paragraph in body.splitlines() or [""]:
        lines += textwrap.wrap(paragraph, width - 16) or [""]
    return [f"    {label:<12}{lines[0]}"] + [f"    {'':<12}{line}" for line in lines[1:]]


def render(row: dict, color: bool = False, width: int = 100) -> str:
    verdict = row.get("passed")
    mark = {True: _style("PASSED", GREEN, color), False: _style("FAILED", RED, color), None: "not verified"}[verdict]
    score = f" score={row['score']:.2f}" if row.get("score") is not None else ""
    out = [
        _style(f"━━ {row['id']}", BOLD, color) + f"  {row['domain']} · {row['format']} · {row['source']} · {mark}{score}",
        *_block("instruction", row["instruction"], width),
    ]
    for step in row["steps"]:
        out.append(_style(f"  step {step['index']}", BOLD, color))
        out += _block("thought", step["thought"], width)
        if step["action_type"] == "final_answer":
            out += _block("answer", row.get("final_answer"), width)
        elif step["action_type"] == "ask_user":
            out += _block("to user", step["raw_action"], width)
            out += _block("user", step["observation"], width)
        elif step["tool_name"]:
            out += _block("action", f"{step['tool_name']} {step['tool_arguments']}", width)
            out += _block("error" if step["error"] else "observation", step["observation"], width)
        else:
            out += _block("raw reply", step["raw_action"], width)
            out += _block("error", step["error"], width)
    if row.get("error"):
        out += _block("row error", row["error"], width)
    truth = (row.get("ground_truth") or {}).get("answer")
    out += _block("final", f"{row.get('final_answer')!r} (ground truth: {truth!r})", width)
    for check in row.get("checks") or []:
        flag = _style("ok  ", GREEN, color) if check["passed"] else _style("FAIL", RED, color)
        out += [f"    {flag} {check['name']}: {_style(check['detail'] or '', DIM, color)}"]
    for j in row.get("judgments") or []:
        out += [f"    judge {j['judge']}: passed={j['passed']} score={j['score']} {_style(j['rationale'] or '', DIM, color)}"]
    return "\n".join(out)
