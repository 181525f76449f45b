"""What a task generator is: a named, seeded function from (rng, difficulty range) to a task's content.

The content is the task row minus provenance (id, source, config_hash, pipeline_version), which the
synthesize stage adds. A generator knows the ground truth (computed directly, not through the tools) and a
solution program: tool calls whose string arguments may reference earlier observations as {s0}, {s1}, ...
"""

import random
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Generator:
    name: str
    domain: str
    tools: tuple[str, ...]
    make: Callable[[random.Random, int, int], dict]
    description: str


@dataclass(frozen=True)
class Template:
    """One kind of question a generator asks, and how many solution steps it takes (its difficulty)."""

    difficulty: int
    build: Callable[[random.Random], dict]


def pick_template(templates: list[Template], rng: random.Random, lo: int, hi: int, generator: str) -> Template:
    fitting = [t for t in templates if lo <= t.difficulty <= hi]
    if not fitting:
        have = sorted({t.difficulty for t in templates})
        raise ValueError(f"generator {generator} has no tasks with difficulty in [{lo}, {hi}] (it makes {have})")
    return rng.choice(fitting)


def step(thought: str, tool: str, **arguments) -> dict:
    return {"thought": thought, "tool": tool, "arguments": arguments}


def task(instruction: str, tools: list[str], answer, steps: list[dict], answer_template: str, difficulty: int,
         environment: dict | None = None, final_thought: str | None = None, tolerance: float | None = None,
         unit: str | None = None, final_state: dict | None = None, **meta) -> dict:
    """`final_state`: for stateful environments, the expected `Env.snapshot()` after a correct episode."""
    ground_truth = {"answer": answer}
    if tolerance is not None:
        ground_truth["tolerance"] = tolerance
    if unit is not None:
        ground_truth["unit"] = unit
    if final_state is not None:
        ground_truth["final_state"] = final_state
    solution = {"steps": steps, "answer": answer_template}
    if final_thought:
        solution["final_thought"] = final_thought
    return {
        "instruction": instruction,
        "tools": tools,
        "environment": environment or {},
        "ground_truth": ground_truth,
        "solution": solution,
        "difficulty": difficulty,
        "meta": meta,
    }
