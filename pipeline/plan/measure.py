"""What runs measured, to correct the plan's model: pairs of (the model's expected figures, the measured ones)
for episodes of each LLM teacher and format, and for judgments of each judge.

Two sources:
- a run directory (`--measure DIR`, or the run being planned): its finished trajectories with their tasks;
- a probe (`--probe N`): N real episodes per teacher and format, each judged by every judge, sent now on a
  throwaway cache (the run asks them again; a probe costs what its requests cost, and says so).

A calibration turns pairs into factors on the model's expected figure: sum(measured) / sum(modelled) for each
quantity (a ratio estimator), with low and high at two standard errors of the per-item ratios (at least 10%,
and 50% from fewer than three items); cached tokens are the measured share of the prompt.
"""

import asyncio
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import config as configlib
from pipeline import shards
from pipeline.llm import local
from pipeline.llm.endpoints import Endpoints
from pipeline.plan import estimate
from pipeline.plan.estimate import LEVELS, QUANTITIES
from pipeline.sample.stage import SampleStage
from pipeline.verify import judges
from pipeline.verify.stage import structured_output_style

MIN_MARGIN, FEW_MARGIN, FEW = 0.1, 0.5, 3


@dataclass
class Calibration:
    pairs: list[tuple[dict, dict]] = field(default_factory=list)  # (modelled at `expected`, measured)

    def factors(self, quantity: str) -> tuple[float, float, float]:
        modelled = [p[quantity] for p, _ in self.pairs]
        measured = [m[quantity] for _, m in self.pairs]
        if not sum(modelled):
            return 1.0, 1.0, 1.0
        ratio = sum(measured) / sum(modelled)
        ratios = [m / p for p, m in zip(modelled, measured) if p]
        if len(ratios) < FEW:
            margin = FEW_MARGIN * ratio
        else:
            margin = max(2 * statistics.stdev(ratios) / len(ratios) ** 0.5, MIN_MARGIN * ratio)
        return max(0.0, ratio - margin), ratio, ratio + margin

    def apply(self, modelled: dict) -> dict:
        """Per-level figures from the model's expected ones and the measured factors."""
        out = {level: estimate.zero() for level in LEVELS}
        for quantity in ("requests", "prompt_tokens", "completion_tokens"):
            for level, factor in zip(LEVELS, self.factors(quantity)):
                out[level][quantity] = factor * modelled["expected"][quantity]
        prompt = sum(m["prompt_tokens"] for _, m in self.pairs)
        share = sum(m["cached_tokens"] for _, m in self.pairs) / prompt if prompt else 0.0
        for level in LEVELS:
            out[level]["cached_tokens"] = share * out[level]["prompt_tokens"]
        return out


@dataclass
class Measured:
    teachers: dict[tuple[str, str], Calibration] = field(default_factory=dict)  # (teacher name, format)
    rows: dict[tuple[str, str], list[dict]] = field(default_factory=dict)  # the measured trajectories, by the same key
    judges: dict[str, Calibration] = field(default_factory=dict)  # judge name, or "step_judge"
    failing: float | None = None  # share of LLM rows that failed verification
    probe_requests: int = 0
    probe_usd: float = 0.0
    sources: list[str] = field(default_factory=list)


def usage_figures(usage: dict) -> dict:
    return {"requests": usage["llm_calls"], "prompt_tokens": usage["prompt_tokens"], "cached_tokens": usage.get("cached_tokens") or 0,
            "completion_tokens": usage["completion_tokens"]}


def modelled_episode(config, task: dict, teacher: dict, fmt_name: str) -> dict:
    """The model's expected figures for one episode (with a simulated user: both sides, as a row's usage has)."""
    profile = config["endpoints"][teacher["endpoint"]]
    observation = estimate.observation_tokens(config["sample"]["max_observation_chars"])
    if "user_simulator" not in teacher:
        return estimate.episode(task, fmt_name, teacher, profile, "expected", observation)
    agent, user = estimate.conversation(task, fmt_name, teacher, profile, "expected", observation)
    return {q: agent[q] + user[q] for q in QUANTITIES}


def add_rows(measured: Measured, config, rows: list[dict], tasks: dict[str, dict]) -> None:
    teachers = {t["name"]: t for t in config["sample"]["teachers"] if t["policy"] == "llm"}
    for row in rows:
        teacher = teachers.get((row.get("meta") or {}).get("teacher"))
        task = tasks.get(row["task_id"])
        if teacher is None or task is None or row["format"] not in teacher["formats"]:
            continue
        pair = (modelled_episode(config, task, teacher, row["format"]), usage_figures(row["usage"]))
        measured.teachers.setdefault((teacher["name"], row["format"]), Calibration()).pairs.append(pair)
        measured.rows.setdefault((teacher["name"], row["format"]), []).append(row)


def from_run_dir(measured: Measured, config, run_dir: Path) -> None:
    """Episodes of a run directory's finished trajectories, and the share of its LLM rows that failed."""
    def read(folder: str, kind: str) -> list[dict]:
        return [row for path in sorted((run_dir / folder).glob("part-*.parquet")) for row in shards.read_shard(path, kind, validate=False)]

    tasks = {task["id"]: task for task in read("tasks", "task")}
    before = sum(len(c.pairs) for c in measured.teachers.values())
    add_rows(measured, config, read("trajectories", "trajectory"), tasks)
    verified = [row["passed"] for row in read("verified", "trajectory") if row["source"].startswith("llm:")]
    if verified:
        measured.failing = 1 - sum(map(bool, verified)) / len(verified)
    if sum(len(c.pairs) for c in measured.teachers.values()) > before:
        measured.sources.append(f"episodes of {run_dir}")


class Recording:
    """An LLM client that keeps the replies of its chat requests (the probe's judges)."""

    def __init__(self, client):
        self.client, self.replies = client, []

    def __getattr__(self, name):
        return getattr(self.client, name)

    async def chat(self, *args, **kwargs):
        reply = await self.client.chat(*args, **kwargs)
        self.replies.append(reply)
        return reply


def probe_jobs(config, work, per_format: int) -> list[tuple]:
    """The first `per_format` jobs of each LLM teacher and format."""
    stage, taken, jobs = SampleStage(config, "probe"), {}, []
    for k in sorted(work.tasks):
        for task, teacher, fmt, sample in stage.jobs(work.tasks[k]):
            key = (teacher["name"], fmt)
            if teacher["policy"] == "llm" and taken.get(key, 0) < per_format:
                taken[key] = taken.get(key, 0) + 1
                jobs.append((task, teacher, fmt, sample))
    return jobs


async def _judge_all(config, profiles: dict, rows: list[dict], folder: Path, measured: Measured) -> None:
    verify = config["verify"]
    specs = [(judge["name"], judge, False) for judge in verify["judges"]]
    specs += [("step_judge", verify["step_judge"], True)] if verify["step_judge"] else []
    if not specs or not rows:
        return
    async with Endpoints(profiles, [spec["endpoint"] for _, spec, _ in specs], folder) as clients:
        for name, spec, steps in specs:
            client = Recording(clients[spec["endpoint"]])
            system = estimate.judge_system(spec, steps)
            for row in rows:
                before = len(client.replies)
                style = structured_output_style(client.profile)
                if steps:
                    await judges.judge_steps(client, spec, row, style)
                else:
                    await judges.judge_row(client, spec, row, style)
                replies = client.replies[before:]
                with_truth = not steps and (spec.get("rubric") == "correctness" or spec.get("with_ground_truth", False))
                modelled = estimate.judgment(system, len(judges.render_trajectory(row, with_truth)), spec, "expected", False)
                actual = {"requests": len(replies), "prompt_tokens": sum(r.prompt_tokens for r in replies),
                          "cached_tokens": sum(r.cached_tokens or 0 for r in replies), "completion_tokens": sum(r.completion_tokens for r in replies)}
                measured.judges.setdefault(name, Calibration()).pairs.append((modelled, actual))
                measured.probe_requests += len(replies)
                measured.probe_usd += sum(r.cost_usd for r in replies if not r.cached)


async def _probe(config, jobs: list[tuple], folder: Path, measured: Measured) -> None:
    teachers = {t["name"]: t for t in config["sample"]["teachers"]}
    names = {t["endpoint"] for t in teachers.values() if t["policy"] == "llm"} | {j["endpoint"] for j in config["verify"]["judges"]}
    names |= {t["user_simulator"]["endpoint"] for t in teachers.values() if "user_simulator" in t}
    names |= {config["verify"]["step_judge"]["endpoint"]} if config["verify"]["step_judge"] else set()
    with local.Serving(folder) as serving:
        profiles = serving.profiles(config["endpoints"], names)
        served = configlib.Config({**config.data, "endpoints": profiles}, config.path)
        stage = SampleStage(served, "probe")
        async with stage.open(folder):
            rows = await asyncio.gather(*(stage.sample_one(*job) for job in jobs))
        add_rows(measured, config, rows, {job[0]["id"]: job[0] for job in jobs})
        measured.probe_requests += sum(row["usage"]["llm_calls"] for row in rows)
        measured.probe_usd += sum(row["usage"]["cost_usd"] for row in rows)
        await _judge_all(served, profiles, rows, folder / "judges", measured)


def probe(measured: Measured, config, work, per_format: int) -> None:
    """Measure `per_format` real episodes per LLM teacher and format (and their judgments)."""
    jobs = probe_jobs(config, work, per_format)
    if not jobs:
        return
    with tempfile.TemporaryDirectory(prefix="trajforge-probe-") as folder:
        asyncio.run(_probe(config, jobs, Path(folder), measured))
    measured.sources.append(f"a probe of {len(jobs)} episode(s) ({measured.probe_requests} requests, ${measured.probe_usd:.4f})")
