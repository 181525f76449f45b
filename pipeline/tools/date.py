"""Calendar arithmetic: add days to a date, days between two dates, the weekday of a date."""

import datetime as dt

from pipeline.tools.base import Env, Tool, ToolError


def parse_date(text: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ToolError(f"{field}: expected a date as YYYY-MM-DD, got {text!r}") from None


def run(args: dict, env: Env) -> str:
    op = args["operation"]
    day = parse_date(args["date"], "date")
    if op == "add_days":
        if "days" not in args:
            raise ToolError("add_days needs 'days'")
        try:
            return (day + dt.timedelta(days=args["days"])).isoformat()
        except OverflowError:
            raise ToolError("resulting date is out of range") from None
    if op == "days_between":
        if "end_date" not in args:
            raise ToolError("days_between needs 'end_date'")
        return str((parse_date(args["end_date"], "end_date") - day).days)
    return day.strftime("%A")


TOOL = Tool(
    name="date",
    description="Calendar arithmetic on ISO dates: add_days (date + days), days_between (date -> end_date), weekday (of date).",
    parameters={
        "type": "object",
        "properties": {
            "operation": {"enum": ["add_days", "days_between", "weekday"]},
            "date": {"type": "string", "description": "YYYY-MM-DD"},
            "days": {"type": "integer"},
            "end_date": {"type": "string", "description": "YYYY-MM-DD"},
        },
        "required": ["operation", "date"],
        "additionalProperties": False,
    },
    fn=run,
    concurrent=True,  # pure: parallel calls may run at once
)
