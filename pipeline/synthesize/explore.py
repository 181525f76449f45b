"""The explore step of LLM task synthesis over an environment: before proposing a blueprint, the proposer
calls the environment's read-only tools (function calling, through the one agent loop) to see the real data
behind them, ids, names, values, so that its blueprint asks about things that exist. What the calls returned
goes into the proposal prompt; the blueprint is then executed and reviewed as any other.

```yaml
synthesize:
  llm_tasks:
    - {name: inv, endpoint: gpt, count: 20, environment: inv, explore: {max_calls: 4}}
```
The calls are real tool calls (recorded with the run's other tool I/O) and are cached through the LLM client
like every request, so a re-run explores nothing again.
"""

from pipeline.formats import FORMATS
from pipeline.sample.agent import run_episode
from pipeline.sample.llm_policy import LLMPolicy

EXPLORE_INSTRUCTION = (
    "You are about to write realistic tasks for an AI agent that uses these tools. First look at the data behind "
    "them: call the tools to list and look up real records (ids, names, values), at most {calls} calls, several at "
    "once where they do not depend on each other. Then reply, without calling a tool, with a short summary of what "
    "exists."
)
OBSERVATION_CHARS = 800


def read_only_tools(toolbox, environment: str) -> list[str]:
    return [name for name, tool in toolbox.environments[environment].tools.items() if tool.read_only]


def transcript(steps: list[dict]) -> str:
    """What the exploration saw, one call per line: `tool {arguments} -> observation`."""
    lines = []
    for step in steps:
        if step["action_type"] == "tool_call" and step["tool_name"] and step["observation"] is not None:
            seen = step["observation"] if len(step["observation"]) <= OBSERVATION_CHARS else step["observation"][:OBSERVATION_CHARS] + " ..."
            lines.append(f"{step['tool_name']} {step['tool_arguments']} -> {seen}")
    return "\n".join(lines)


async def explore(client, spec: dict, toolbox, sample: dict, sample_key: list) -> tuple[str, int]:
    """(what the proposer's exploration calls returned, how many calls it made) for one blueprint."""
    names = read_only_tools(toolbox, spec["environment"])
    settings = spec["explore"]
    task = {"id": "explore", "instruction": EXPLORE_INSTRUCTION.format(calls=settings["max_calls"]), "tools": names, "environment": {}}
    teacher = {"temperature": spec["temperature"], "max_tokens": settings["max_tokens"]}
    policy = LLMPolicy(client, teacher, sample_key, seed=0)
    label = f"explore/{'/'.join(map(str, sample_key))}"
    async with toolbox.episode(names, {}, sample["max_observation_chars"], sample["sandbox"], label) as env:
        episode = await run_episode(task, policy, FORMATS["function_calling"], env, settings["max_calls"] + 1)
    calls = [s for s in episode.steps if s["action_type"] == "tool_call" and s["tool_name"]]
    return transcript(episode.steps), len(calls)
