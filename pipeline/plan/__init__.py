"""`trajforge plan CONFIG`: what a run will ask of its endpoints, before it asks anything.

Per stage and endpoint: requests, prompt tokens (of which cached), completion tokens and dollars, each low /
expected / high, and what dominates. Counted from the tasks (those a run directory made, or made in memory
as synthesize would), the teachers' formats, samples_per_task, max_steps and max_tokens, the judges and
feedback rounds (estimate.py says how), corrected by what runs measured (measure.py: a run directory's
episodes, or `--probe N` real ones). Shards a run directory already finished are not counted: their replies
are in its cache.

`trajforge run` (and each stage command) prints the plan's line before starting when an endpoint it uses has
prices, and refuses to start when an endpoint's spend so far plus its expected cost exceeds its budget_usd,
unless `--go-on`.
"""

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import UserError
from pipeline.llm import pricing
from pipeline.llm.cache import ResponseCache
from pipeline.llm.endpoints import CACHE_FILE
from pipeline.plan import estimate, lines, measure, tasks
from pipeline.plan.estimate import LEVELS


@dataclass
class Plan:
    lines: list[lines.Line]
    work: tasks.Work
    measured: measure.Measured
    notes: list[str] = field(default_factory=list)

    def total(self, level: str, endpoint: str | None = None) -> dict:
        out = {**estimate.zero(), "usd": 0.0}
        for line in self.lines:
            if endpoint is None or line.endpoint == endpoint:
                for key, value in line.figures[level].items():
                    out[key] += value
        return out

    def _weight(self, figures: dict) -> float:
        """What a line weighs: its expected cost, or its expected tokens where nothing has a price."""
        if self.total("expected")["usd"]:
            return figures["expected"]["usd"]
        return figures["expected"]["prompt_tokens"] + figures["expected"]["completion_tokens"]

    def dominant(self, by_endpoint: bool = False) -> tuple[str, float] | None:
        """The line (or stage and endpoint) with most of the expected cost, and its share."""
        weights: dict[str, float] = {}
        for line in self.lines:
            name = f"{line.stage} on {line.endpoint}" if by_endpoint else f"{line.stage} / {line.endpoint} / {line.what}"
            weights[name] = weights.get(name, 0.0) + self._weight(line.figures)
        if not weights:
            return None
        top, whole = max(weights, key=weights.get), sum(weights.values())
        return top, (weights[top] / whole if whole else 0.0)

    def to_json(self) -> dict:
        return {"lines": [{"stage": l.stage, "endpoint": l.endpoint, "what": l.what, "basis": l.basis, **l.figures} for l in self.lines],
                "total": {level: self.total(level) for level in LEVELS}, "tasks": self.work.source, "scale": self.work.scale,
                "measured_from": self.measured.sources, "notes": self.notes}


def make(config, stages: list[str], run_dir: Path | None = None, measure_dir: Path | None = None, probe: int = 0) -> Plan:
    """The plan of running `stages` of `config` (into `run_dir`, whose finished shards cost nothing more)."""
    from pipeline.stages import STAGES

    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise UserError(f"--stages: unknown stage(s) {', '.join(unknown)} (stages: {', '.join(STAGES)})")
    if probe < 0:
        raise UserError(f"--probe {probe}: the number of episodes to probe must be 0 or more")
    if measure_dir and not (measure_dir / "trajectories").is_dir():
        raise UserError(f"--measure {measure_dir}: not a run directory with trajectories/")
    work = tasks.work(config, run_dir if run_dir and run_dir.is_dir() else None)
    measured = measure.Measured()
    for folder in dict.fromkeys(p for p in (measure_dir, run_dir) if p and (p / "trajectories").is_dir()):
        measure.from_run_dir(measured, config, folder)
    if probe:
        measure.probe(measured, config, work, probe)
    planned = lines.build(config, stages, work, measured, run_dir)
    notes = []
    if "sample" in stages and config["sample"]["reflection"]["from_failures"]:
        notes.append("not counted: reflections written by the teacher for failed samples (sample.reflection.from_failures)")
    return Plan(planned, work, measured, notes)


def _n(value: float) -> str:
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k" if value >= 1e4 else f"{value:.0f}"


def _range(line_figures: dict, key: str, money: bool = False) -> str:
    show = (lambda v: f"${v:.4f}" if v < 1 else f"${v:,.2f}") if money else _n
    low, mid, high = (line_figures[level][key] for level in LEVELS)
    return f"{show(mid)} ({show(low)}-{show(high)})"


def table(plan: Plan) -> str:
    """The plan as a table, one line per stage, endpoint and part, then the total and what dominates."""
    head = ["stage", "endpoint", "what", "requests", "prompt tokens", "of which cached", "completion tokens", "USD", "basis"]
    body = []
    for line in plan.lines + [lines.Line("total", "", "", {level: plan.total(level) for level in LEVELS}, "")]:
        f = line.figures
        body.append([line.stage, line.endpoint, line.what, _range(f, "requests"), _range(f, "prompt_tokens"),
                     _n(f["expected"]["cached_tokens"]), _range(f, "completion_tokens"), _range(f, "usd", money=True), line.basis])
    widths = [max(len(str(row[i])) for row in [head] + body) for i in range(len(head))]
    text = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [head] + body]
    text.insert(1, "  ".join("-" * width for width in widths))
    text.append("figures: expected (low-high); tasks " + plan.work.source
                + (f", scaled x{plan.work.scale:.1f} from an even selection of shards" if plan.work.scale > 1 else ""))
    text.append("measured from: " + ("; ".join(plan.measured.sources) or "nothing (the model alone: docs/llm.md, Plan); "
                                     "--probe N measures N real episodes"))
    if top := plan.dominant():
        text.append(f"dominated by: {top[0]} ({top[1]:.0%})")
    return "\n".join(text + plan.notes)


def summary_line(plan: Plan) -> str:
    t = {level: plan.total(level) for level in LEVELS}
    exp = t["expected"]
    line = (f"plan: ~{_n(exp['requests'])} requests, {_n(exp['prompt_tokens'])} prompt ({_n(exp['cached_tokens'])} cached) + "
            f"{_n(exp['completion_tokens'])} completion tokens, ${exp['usd']:.4f} expected (${t['low']['usd']:.4f}-${t['high']['usd']:.4f})")
    if top := plan.dominant(by_endpoint=True):
        line += f"; most of it: {top[0]} ({top[1]:.0%})"
    return line + " [trajforge plan for details]"


def guard(config, stages: list[str], run_dir: Path, go_on: bool, echo=print) -> Plan | None:
    """Before a run: print the plan's line when an endpoint the stages use has prices; refuse to start when an
    endpoint's spend so far plus its expected cost exceeds its budget_usd, unless `go_on`."""
    from pipeline import config as configlib

    used = set().union(*(configlib.stage_endpoints(config.data, name) for name in stages))
    priced = sorted(name for name in used if pricing.has_prices(config["endpoints"][name]))
    if not priced:
        return None
    plan = make(config, stages, run_dir)
    echo(summary_line(plan))
    cache = ResponseCache(run_dir / CACHE_FILE) if (run_dir / CACHE_FILE).exists() else None
    try:
        for name in priced:
            budget = config["endpoints"][name]["budget_usd"]
            spent = cache.spent(name) if cache else 0.0
            expected = plan.total("expected", name)["usd"]
            if budget is not None and spent + expected > budget and not go_on:
                raise UserError(f"plan: endpoint '{name}' is expected to cost ${expected:.4f} more (${plan.total('low', name)['usd']:.4f}-"
                                f"${plan.total('high', name)['usd']:.4f}), ${spent:.4f} spent so far, over endpoints.{name}.budget_usd={budget}; "
                                f"see `trajforge plan`, raise the budget, or pass --go-on to start anyway (the run stops at the budget)")
    finally:
        if cache:
            cache.close()
    return plan
