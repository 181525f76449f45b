"""The plan's lines: per stage, endpoint and part (a teacher's format, its simulated user, feedback re-samples,
a judge, the step judge, a blueprint proposer or its reviewers) the requests and tokens at each level, priced
with the endpoint's prices (pipeline/llm/pricing.py; Batch API endpoints at their batch discount)."""

from dataclasses import dataclass
from pathlib import Path

from pipeline import shards
from pipeline.llm import pricing
from pipeline.plan import estimate
from pipeline.plan.estimate import LEVELS, QUANTITIES
from pipeline.sample.stage import SampleStage
from pipeline.synthesize.stage import SynthesizeStage
from pipeline.verify import judges


@dataclass
class Line:
    stage: str
    endpoint: str
    what: str
    figures: dict  # level -> requests, prompt_tokens, cached_tokens, completion_tokens, usd
    basis: str = ""


def per_level() -> dict:
    return {level: estimate.zero() for level in LEVELS}


def scaled(average: dict, count: dict | float) -> dict:
    """Per-level figures times a count (one number, or one per level)."""
    return {level: {q: average[level][q] * (count[level] if isinstance(count, dict) else count) for q in QUANTITIES} for level in LEVELS}


def priced(stage: str, endpoint: str, what: str, figures: dict, profile: dict, basis: str = "") -> Line:
    for level in LEVELS:
        f = figures[level]
        f["usd"] = pricing.cost_usd(profile, f["prompt_tokens"], f["completion_tokens"], f["cached_tokens"], profile["batch"])
    return Line(stage, endpoint, what, figures, basis)


def mean(total: dict, count: int) -> dict:
    return scaled(total, 1 / count) if count else total


def teacher_lines(config, work, measured, stages: list[str]) -> list[Line]:
    sample = config["sample"]
    observation = estimate.observation_tokens(sample["max_observation_chars"])
    stage = SampleStage(config, "plan")
    rounds = config["verify"]["feedback"]["rounds"] if "verify" in stages else 0
    failing = measured.failing if measured.failing is not None else 0.5
    out = []
    for teacher in (t for t in sample["teachers"] if t["policy"] == "llm"):
        profile = config["endpoints"][teacher["endpoint"]]
        for fmt in teacher["formats"]:
            agent, user, jobs = per_level(), per_level(), {}
            for k, shard_tasks in work.tasks.items():
                mine = [task for task, t, f, _ in stage.jobs(shard_tasks) if t is teacher and f == fmt]
                jobs[k] = len(mine)
                for task in mine:
                    for level in LEVELS:
                        if "user_simulator" in teacher:
                            a, u = estimate.conversation(task, fmt, teacher, profile, level, observation)
                            estimate.add(agent[level], a)
                            estimate.add(user[level], u)
                        else:
                            estimate.add(agent[level], estimate.episode(task, fmt, teacher, profile, level, observation))
            count = sum(jobs.values())
            agent, user = mean(agent, count), mean(user, count)
            calibration = measured.teachers.get((teacher["name"], fmt))
            basis = "model"
            if calibration and calibration.pairs:
                agent, user = calibration.apply(agent), calibration.apply(user)
                basis = f"measured on {len(calibration.pairs)} episode(s)"
            pending = {stage_name: sum(n for k, n in jobs.items() if k not in work.done.get(stage_name, set())) * work.scale
                       for stage_name in ("sample", "verify")}
            what = f"{teacher['name']} / {fmt}"
            if "sample" in stages:
                out.append(priced("sample", teacher["endpoint"], what, scaled(agent, pending["sample"]), profile, basis))
                if "user_simulator" in teacher:
                    spec = teacher["user_simulator"]
                    out.append(priced("sample", spec["endpoint"], f"{what}: simulated user", scaled(user, pending["sample"]),
                                      config["endpoints"][spec["endpoint"]], basis))
            if rounds:
                share = {level: estimate.feedback_share(rounds, failing, level) * pending["verify"] for level in LEVELS}
                out.append(priced("verify", teacher["endpoint"], f"{what}: feedback re-samples", scaled(agent, share), profile, basis))
    return out


def judged_rows(config, work, k: int, run_dir: Path | None) -> list[tuple[dict, dict | None, dict | None, str]]:
    """(task, its trajectory if the run directory has it, teacher, format) for each row verify's committee
    will judge in shard k."""
    apply_to = config["verify"]["committee"]["apply_to"]
    if run_dir is not None and k in work.done.get("sample", set()):
        by_id = {task["id"]: task for task in work.tasks[k]}
        teachers = {t["name"]: t for t in config["sample"]["teachers"]}
        rows = shards.read_shard(run_dir / "trajectories" / shards.shard_name(k), "trajectory", validate=False)
        return [(by_id.get(row["task_id"], {"instruction": row["instruction"]}), row, teachers.get(row["meta"].get("teacher")), row["format"])
                for row in rows if apply_to == "all" or row["source"].startswith("llm:")]
    stage = SampleStage(config, "plan")
    return [(task, None, teacher, fmt) for task, teacher, fmt, _ in stage.jobs(work.tasks[k]) if apply_to == "all" or teacher["policy"] == "llm"]


class Rendered:
    """How many characters a judge reads about a row: the row rendered where it exists; for a row not sampled
    yet, the mean of the measured rows of its teacher and format, else the model's guess."""

    def __init__(self, config, measured, with_truth: bool):
        self.measured, self.with_truth = measured, with_truth
        self.observation = estimate.observation_tokens(config["sample"]["max_observation_chars"])
        self.means: dict[tuple[str, str], float] = {}

    def chars(self, task: dict, row: dict | None, teacher: dict | None, fmt: str, level: str) -> float:
        if row is not None:
            return len(judges.render_trajectory(row, self.with_truth))
        key = (teacher["name"], fmt) if teacher else None
        if key in self.measured.rows:
            if key not in self.means:
                seen = self.measured.rows[key]
                self.means[key] = sum(len(judges.render_trajectory(r, self.with_truth)) for r in seen) / len(seen)
            return self.means[key]
        program = teacher is None or teacher["policy"] == "program"
        return estimate.rendered_chars(task, program, teacher["max_steps"] if teacher else 8, teacher["max_tokens"] if teacher else 0,
                                       level, self.observation)


def judge_lines(config, work, measured, run_dir: Path | None) -> list[Line]:
    verify = config["verify"]
    specs = [(judge["name"], judge, False) for judge in verify["judges"]]
    specs += [("step_judge", verify["step_judge"], True)] if verify["step_judge"] else []
    if not specs:
        return []
    rows = {k: judged_rows(config, work, k, run_dir) for k in work.tasks}
    count = sum(map(len, rows.values()))
    pending = sum(len(r) for k, r in rows.items() if k not in work.done.get("verify", set())) * work.scale
    llm_share = sum(1 for r in rows.values() for _, _, t, _ in r if t and t["policy"] == "llm") / count if count else 0.0
    rounds, failing = verify["feedback"]["rounds"], measured.failing if measured.failing is not None else 0.5
    out = []
    for name, spec, steps in specs:
        system, total = estimate.judge_system(spec, steps), per_level()
        caching = config["endpoints"][spec["endpoint"]]["price_cached_input_per_mtok"] is not None
        rendered = Rendered(config, measured, not steps and (spec.get("rubric") == "correctness" or spec.get("with_ground_truth", False)))
        for shard_rows in rows.values():
            for job in shard_rows:
                for level in LEVELS:
                    estimate.add(total[level], estimate.judgment(system, rendered.chars(*job, level), spec, level, caching))
        average = mean(total, count)
        calibration, basis = measured.judges.get(name), "model"
        if calibration and calibration.pairs:
            average, basis = calibration.apply(average), f"measured on {len(calibration.pairs)} judgment(s)"
        judged = {level: pending * (1 + llm_share * estimate.feedback_share(rounds, failing, level)) for level in LEVELS}
        what = "step judge" if steps else f"judge {name}"
        out.append(priced("verify", spec["endpoint"], what, scaled(average, judged), config["endpoints"][spec["endpoint"]], basis))
    return out


def synthesis_lines(config, work) -> list[Line]:
    plan = SynthesizeStage(config, config.stage_hash("synthesize")).plan()
    out = []
    for position, spec in enumerate(config["synthesize"]["llm_tasks"]):
        items = sum(1 for k, shard in enumerate(plan) if k not in work.done.get("synthesize", set())
                    for item in shard if item.get("llm_tasks") == spec["name"] and item["position"] == position)
        proposer, reviewer = per_level(), per_level()
        for level in LEVELS:
            proposer[level], reviewer[level] = estimate.blueprint(spec, level)
        out.append(priced("synthesize", spec["endpoint"], f"{spec['name']}: proposer", scaled(proposer, items),
                          config["endpoints"][spec["endpoint"]], "model"))
        for r in spec["reviewers"]:
            share = scaled(reviewer, items / len(spec["reviewers"]))
            out.append(priced("synthesize", r["endpoint"], f"{spec['name']}: reviewer {r['name']}", share, config["endpoints"][r["endpoint"]], "model"))
    return out


def build(config, stages: list[str], work, measured, run_dir: Path | None) -> list[Line]:
    out = synthesis_lines(config, work) if "synthesize" in stages else []
    if "sample" in stages or "verify" in stages:
        out += teacher_lines(config, work, measured, stages)
    if "verify" in stages:
        out += judge_lines(config, work, measured, run_dir)
    return out
