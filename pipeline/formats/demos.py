"""Worked demonstrations for few-shot prompts (base models in completion mode), one per tool.

Each demonstration is a question, its actions and a final answer; the observations are not written here
but produced by running the real tools, so a demonstration never shows an observation a tool would not give.
"""

from dataclasses import dataclass
from functools import lru_cache

from pipeline.formats.base import Action

MAX_DEMOS = 2


@dataclass(frozen=True)
class Demo:
    question: str
    actions: tuple[Action, ...]
    final: Action
    environment: dict | None = None


DEMOS = {
    "calculator": Demo(
        "A box holds 24 pencils. Ana buys 3 boxes and loses 5 pencils. How many pencils does she have left?",
        (Action("I need the total number of pencils in 3 boxes first.", "calculator", {"expression": "3 * 24"}),
         Action("She has 72 pencils and loses 5.", "calculator", {"expression": "72 - 5"})),
        Action("I now know the answer.", final_answer="67"),
    ),
    "sql": Demo(
        "The database has a table sales(id, city, amount). What is the total amount of the sales in Oslo?",
        (Action("I sum the amounts of the rows whose city is Oslo.", "sql", {"query": "SELECT SUM(amount) FROM sales WHERE city = 'Oslo'"}),),
        Action("The query returned the total.", final_answer="470"),
        {"sqlite_setup": "CREATE TABLE sales (id INTEGER, city TEXT, amount INTEGER);\n"
                         "INSERT INTO sales VALUES (1, 'Oslo', 120), (2, 'Lima', 80), (3, 'Oslo', 350);"},
    ),
    "lookup": Demo(
        "How high is the mountain that Lake Verra lies below?",
        (Action("First I read the document about Lake Verra.", "lookup", {"id": "Lake Verra"}),
         Action("Lake Verra lies below Mount Kessel, so I look that up.", "lookup", {"id": "Mount Kessel"})),
        Action("The document gives the height of Mount Kessel.", final_answer="4210 m"),
        {"documents": [{"id": "doc-1", "title": "Lake Verra", "text": "Lake Verra is a lake below Mount Kessel."},
                       {"id": "doc-2", "title": "Mount Kessel", "text": "Mount Kessel is a mountain 4210 m high."}]},
    ),
    "convert": Demo(
        "A marathon is 26.2 miles long. How long is it in kilometres?",
        (Action("I convert 26.2 miles to kilometres.", "convert", {"value": 26.2, "from_unit": "mile", "to_unit": "km"}),),
        Action("I now know the answer.", final_answer="42.1648 km"),
    ),
    "date": Demo(
        "What day of the week was 2024-03-15?",
        (Action("I ask for the weekday of that date.", "date", {"operation": "weekday", "date": "2024-03-15"}),),
        Action("I now know the answer.", final_answer="Friday"),
    ),
}


def choose(tool_names: list[str]) -> list[str]:
    """The demonstrations for a task's tools (at most MAX_DEMOS), the calculator's when none has one."""
    return [name for name in tool_names if name in DEMOS][:MAX_DEMOS] or ["calculator"]


@lru_cache(maxsize=None)
def observed(name: str) -> tuple[str, ...]:
    """The observations the real tools give for demonstration `name`'s actions."""
    from pipeline.tools import TOOLS, Env

    demo = DEMOS[name]
    with Env(demo.environment) as env:
        return tuple(TOOLS[action.tool].run(action.arguments, env).content for action in demo.actions)
