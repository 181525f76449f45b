"""The model `trajforge plan` counts with: requests and tokens of one episode, one judgment, one blueprint, at
three levels, from the config alone (measure.py corrects it with what runs measured).

- An episode takes the task's solution program's path (its steps and the final answer) at `low` and
  `expected`, and `max_steps` at `high`; without a solution program, half of `max_steps`.
- A reply is 1/8, 1/2 or all of `max_tokens` long (low, expected, high); an observation about
  OBSERVATION_TOKENS; text is CHARS_PER_TOKEN characters a token, plus MESSAGE_TOKENS per message.
- Step k's prompt is step k-1's prompt plus its reply and the observation; where the endpoint has a cached
  price, step k-1's prompt is served from the prompt cache at low and expected (the agent loop keeps it
  byte-identical), never at high; at low, so is the part every episode shares (system prompt and tools,
  everything but the instruction) and a judge's rubric.
- A judge reads its rubric and the rendered trajectory once (twice at high: an invalid verdict is asked again).
"""

import json
import math

from pipeline.formats import FORMATS
from pipeline.llm.client import api_messages
from pipeline.sample.agent import start_episode
from pipeline.verify import judges
from pipeline.verify.rubrics import STEP_RUBRIC, SYSTEM

LEVELS = ("low", "expected", "high")
QUANTITIES = ("requests", "prompt_tokens", "cached_tokens", "completion_tokens")
CHARS_PER_TOKEN = 4
MESSAGE_TOKENS = 6
OBSERVATION_TOKENS = 60
PROGRAM_REPLY_TOKENS = 30
REPLY_SHARE = {"low": 0.125, "expected": 0.5, "high": 1.0}
PROPOSAL_PROMPT_TOKENS = 500  # the proposer's instructions, tools and environment, before the examples
EXAMPLE_TOKENS = 250
REVIEW_PROMPT_TOKENS = 700


def zero() -> dict:
    return {q: 0.0 for q in QUANTITIES}


def add(total: dict, part: dict, times: float = 1.0) -> None:
    for q in QUANTITIES:
        total[q] += part[q] * times


def tokens(chars: int) -> float:
    return chars / CHARS_PER_TOKEN


def first_prompt_tokens(task: dict, fmt_name: str, mode: str) -> float:
    """The first request of an episode: system prompt and instruction (and the tools, for native tool calls),
    or the few-shot completion prompt."""
    fmt = FORMATS[fmt_name]
    episode = start_episode(task, fmt)
    if mode == "completion" and fmt.completion:
        return tokens(len(fmt.completion.prompt(episode.messages, episode.tools)))
    tools = json.dumps(episode.tools, ensure_ascii=False) if fmt.native_tools else ""
    return tokens(len(json.dumps(api_messages(episode.messages), ensure_ascii=False)) + len(tools)) + 2 * MESSAGE_TOKENS


def steps(task: dict, max_steps: int, level: str) -> int:
    if level == "high":
        return max_steps
    solution = task.get("solution")
    return min(max_steps, len(solution["steps"]) + 1) if solution else max(1, math.ceil(max_steps / 2))


def observation_tokens(max_observation_chars: int) -> float:
    return min(OBSERVATION_TOKENS, tokens(max_observation_chars))


def episode(task: dict, fmt_name: str, teacher: dict, profile: dict, level: str, observation: float) -> dict:
    """One LLM teacher episode: requests, prompt, cached and completion tokens."""
    requests = steps(task, teacher["max_steps"], level)
    reply = teacher["max_tokens"] * REPLY_SHARE[level]
    base = first_prompt_tokens(task, fmt_name, profile["mode"])
    growth = reply + observation + 2 * MESSAGE_TOKENS
    prompt = requests * base + growth * requests * (requests - 1) / 2
    caching = level != "high" and profile["price_cached_input_per_mtok"] is not None
    cached = (requests - 1) * base + growth * (requests - 1) * (requests - 2) / 2 if caching and requests > 1 else 0.0
    if caching and level == "low":  # the first request's shared part, cached since an earlier episode sent it
        cached += max(0.0, base - tokens(len(task["instruction"])) - MESSAGE_TOKENS)
    return {"requests": requests, "prompt_tokens": prompt, "cached_tokens": cached, "completion_tokens": requests * reply}


def conversation(task: dict, fmt_name: str, teacher: dict, profile: dict, level: str, observation: float) -> tuple[dict, dict]:
    """An episode with a simulated user: the teacher's figures over 1 + T user turns (T = 0, max_turns / 2,
    max_turns), and the simulated user's T + 1 requests, each about an episode's first prompt long."""
    spec = teacher["user_simulator"]
    turns = {"low": 0, "expected": spec["max_turns"] / 2, "high": spec["max_turns"]}[level]
    agent = episode(task, fmt_name, teacher, profile, level, observation)
    agent = {q: value * (1 + turns) for q, value in agent.items()}
    base = first_prompt_tokens(task, fmt_name, "chat")
    user = {"requests": turns + 1, "prompt_tokens": (turns + 1) * base, "cached_tokens": 0.0,
            "completion_tokens": (turns + 1) * spec["max_tokens"] * REPLY_SHARE[level]}
    return agent, user


def rendered_chars(task: dict, program: bool, max_steps: int, max_tokens: int, level: str, observation: float) -> float:
    """How long the text a judge reads about a trajectory is, before the trajectory exists."""
    count = steps(task, max_steps, "expected" if program else level)
    reply = PROGRAM_REPLY_TOKENS if program else max_tokens * REPLY_SHARE[level]
    return len(task["instruction"]) + 200 + count * (reply + observation) * CHARS_PER_TOKEN


def judge_system(judge: dict, step_judge: bool) -> str:
    return STEP_RUBRIC if step_judge else SYSTEM.format(rubric=judges.rubric_text(judge))


def judgment(system: str, rendered: float, judge: dict, level: str, caching: bool) -> dict:
    """One judge's requests about one trajectory of `rendered` characters."""
    requests = judges.ATTEMPTS if level == "high" else 1
    cached = tokens(len(system)) if caching and level == "low" else 0.0
    return {"requests": requests, "prompt_tokens": requests * (tokens(len(system) + rendered) + 2 * MESSAGE_TOKENS),
            "cached_tokens": cached, "completion_tokens": requests * judge["max_tokens"] * REPLY_SHARE[level]}


def blueprint(spec: dict, level: str) -> tuple[dict, dict]:
    """One LLM-synthesized task: the proposer's requests and the reviewers' (one per proposal each)."""
    proposals = {"low": 1, "expected": (1 + spec["max_rounds"]) / 2, "high": spec["max_rounds"]}[level]
    prompt = PROPOSAL_PROMPT_TOKENS + spec["examples"] * EXAMPLE_TOKENS
    proposer = {"requests": proposals, "prompt_tokens": proposals * prompt, "cached_tokens": 0.0,
                "completion_tokens": proposals * spec["max_tokens"] * REPLY_SHARE[level]}
    reviews = proposals * len(spec["reviewers"])
    reviewer = {"requests": reviews, "prompt_tokens": reviews * REVIEW_PROMPT_TOKENS, "cached_tokens": 0.0,
                "completion_tokens": sum(proposals * r["max_tokens"] * REPLY_SHARE[level] for r in spec["reviewers"])}
    return proposer, reviewer


def feedback_share(rounds: int, failing: float, level: str) -> float:
    """Re-sampled rows per LLM row over `rounds` feedback rounds, when a share `failing` of rows fails each time."""
    share = {"low": 0.0, "expected": failing, "high": 1.0}[level]
    return sum(share ** r for r in range(1, rounds + 1))
