"""The CodeAct format: parsing and rendering on strings, and episodes run by the program teacher through the
real sandbox, with the task's tools callable inside it."""

import asyncio
import copy
import time

import pytest

from pipeline import schema
from pipeline.formats import FORMATS, Action, FormatError
from pipeline.formats.codeact import as_code, parse, render, signature
from pipeline.sample.agent import Turn, run_episode
from pipeline.sample.policies import ProgramPolicy
from pipeline.sample.stage import SampleStage
from pipeline.synthesize.generators import GENERATORS
from pipeline.tools import TOOLS, Env
from pipeline.verify.answers import answers_match
from pipeline.verify.checks import CHECKS, DEFAULT_OPTIONS
from tests.helpers import make_task

TEACHER = {"name": "program", "policy": "program", "formats": ["codeact"], "samples_per_task": 1, "max_steps": 8, "temperature": 0.0}
CONFIG = {"sample": {"teachers": [TEACHER], "max_observation_chars": 4000, "sandbox": {}}, "run": {"seed": 0}, "endpoints": {}}


def sample_row(task: dict) -> dict:
    stage = SampleStage(CONFIG, "test")
    return asyncio.run(stage.sample_one(task, TEACHER, "codeact", 0))


# -- parsing ----------------------------------------------------------------------------------------------------

def test_a_thought_and_one_code_block_parse_to_a_python_action():
    action = parse("Thought: add them\n\n```python\nx = 1 + 2\nprint(x)\n```\n")
    assert (action.thought, action.tool, action.arguments) == ("add them", "python", {"code": "x = 1 + 2\nprint(x)"})


def test_parsing_tolerates_whitespace_and_a_bare_fence():
    action = parse("  I will compute.  \n```\n\nprint(2)\n\n```  ")
    assert (action.thought, action.arguments["code"]) == ("I will compute.", "print(2)")


def test_final_answer_parses_with_its_thought():
    action = parse("Thought: done\nFinal Answer:  42 apples ")
    assert (action.thought, action.final_answer, action.is_final) == ("done", "42 apples", True)


@pytest.mark.parametrize("reply, problem", [
    ("Thought: hmm", "no ```python code block"),
    ("```python\na()\n```\n```python\nb()\n```", "2 code blocks"),
    ("```python\na()\n```\nFinal Answer: 3", "both a code block and 'Final Answer:'"),
    ("```python\na()\n```\nObservation: 3", "text after the code block"),
    ("```python\n   \n```", "the code block is empty"),
    ("Final Answer:   ", "'Final Answer:' is empty"),
])
def test_replies_that_do_not_fit_are_refused_not_repaired(reply, problem):
    with pytest.raises(FormatError, match=problem):
        parse(reply)


def test_render_and_parse_round_trip():
    for action in (Action("look it up", tool="python", arguments={"code": "print(lookup(id='d1'))"}),
                   Action(None, tool="python", arguments={"code": "for i in range(3):\n    print(i)"}),
                   Action("that is it", final_answer="Paris")):
        again = parse(render(action))
        assert (again.thought, again.tool, again.arguments, again.final_answer) == (action.thought, action.tool, action.arguments, action.final_answer)


def test_a_planned_tool_call_becomes_a_printed_function_call():
    action = as_code(Action("t", tool="return_items", arguments={"order_id": "O1", "item_ids": ["I2"]}))
    assert action.tool == "python" and action.arguments == {"code": "print(return_items(order_id='O1', item_ids=['I2']))"}


def test_the_system_prompt_lists_tools_as_python_signatures():
    assert signature(TOOLS["search"].spec()) == "search(query: str, k: int = 5) -> str"
    assert signature(TOOLS["cancel_order"].spec()) == "cancel_order(order_id: str, reason: 'no longer needed' | 'ordered by mistake') -> str"
    prompt = FORMATS["codeact"].system_prompt([TOOLS["sql"].spec(), TOOLS["python"].spec()])
    assert "- sql(query: str) -> str:" in prompt and "- python(" not in prompt


# -- episodes -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_the_program_teacher_writes_codeact_for_every_generator(name):
    for seed in range(3):
        task = make_task(name, seed)
        row = sample_row(task)
        assert row["error"] is None and all(step["error"] is None for step in row["steps"]), row["steps"]
        assert {s["action_type"] for s in row["steps"][:-1]} == {"code"} and row["steps"][-1]["action_type"] == "final_answer"
        assert answers_match(row["final_answer"], task["ground_truth"])[0]
        assert schema.errors("trajectory", row) == []
        for check in ("messages_steps", "tool_calls", "replay", "final_state"):
            outcome = CHECKS[check](row, DEFAULT_OPTIONS.get(check, {}))
            assert outcome["passed"], outcome


def test_a_codeact_row_records_the_sandbox_and_the_final_state():
    task = make_task("store_refunds", 4)
    row = sample_row(task)
    assert row["meta"]["sandbox"]["mechanism"] in {"bwrap", "rlimits"} and "missing" in row["meta"]["sandbox"]
    assert row["meta"]["final_state"] == task["ground_truth"]["final_state"]


class ScriptedPolicy:
    """Plays fixed assistant replies, as an LLM would, through the real format parser."""

    def __init__(self, replies):
        self.replies = list(replies)

    async def next_turn(self, episode):
        message = {"role": "assistant", "content": self.replies[len(episode.steps)]}
        try:
            return Turn(message, episode.fmt.parse_message(message))
        except FormatError as exc:
            return Turn(message, None, error=str(exc))


def run_scripted(task: dict, replies: list[str]):
    with Env(task["environment"]) as env:
        return asyncio.run(run_episode(task, ScriptedPolicy(replies), FORMATS["codeact"], env, 8))


def test_one_interpreter_serves_the_whole_episode_and_tools_are_functions():
    task = make_task("doc_search", 1)
    doc = task["environment"]["documents"][0]
    episode = run_scripted(task, [
        f"Thought: read it\n```python\ntext = lookup(id={doc['id']!r})\nlen(text) > 0\n```",
        "```python\nprint(text.split(':')[0])\n```",
        "Final Answer: x",
    ])
    assert [s["observation"] for s in episode.steps[:2]] == ["True", f"[{doc['id']}] {doc['title']}"]


def test_a_running_cell_does_not_stall_the_other_episodes():
    task = make_task("python_compute", 1)
    gaps = []

    async def ticker(done: asyncio.Event):
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async def both():
        done = asyncio.Event()
        ticking = asyncio.ensure_future(ticker(done))
        with Env(task["environment"]) as env:
            episode = await run_episode(task, ScriptedPolicy(["```python\nimport time\ntime.sleep(1.5)\n'slept'\n```", "Final Answer: x"]),
                                        FORMATS["codeact"], env, 4)
        done.set()
        await ticking
        return episode

    episode = asyncio.run(both())
    assert episode.steps[0]["observation"] == "'slept'" and episode.steps[0]["seconds"] >= 1.5
    assert max(gaps) < 0.75  # the loop kept running while the cell slept for 1.5 s


def test_a_failing_tool_call_raises_inside_and_the_episode_continues():
    task = make_task("doc_search", 1)
    episode = run_scripted(task, [
        "```python\nlookup(id='no-such-doc')\n```",
        "```python\ntry:\n    lookup(id='no-such-doc')\nexcept ToolCallError as exc:\n    print('caught:', exc)\n```",
        "Final Answer: x",
    ])
    first, second = episode.steps[0], episode.steps[1]
    assert first["error"] and first["observation"].endswith("ToolCallError: no document with id or title 'no-such-doc'.")
    assert second["error"] is None and second["observation"] == "caught: no document with id or title 'no-such-doc'."


def test_an_unparseable_reply_is_recorded_on_the_row():
    episode = run_scripted(make_task("arithmetic", 1), ["I think the answer is 4."])
    assert episode.error == "step 0: no ```python code block and no 'Final Answer:' line" and episode.final_answer is None


def test_doing_the_wrong_thing_fails_the_final_state_check_even_with_the_right_answer():
    task = make_task("store_refunds", 4)
    row = sample_row(task)
    wrong = copy.deepcopy(row)
    order = next(iter(wrong["meta"]["final_state"]["store"]["orders"].values()))
    order["address"] = "somewhere else"
    outcome = CHECKS["final_state"](wrong, {})
    assert not outcome["passed"] and "address" in outcome["detail"]
    assert CHECKS["answer"](wrong, {})["passed"]
