"""The verify stage: program checks, then the judge committee and the step judge, then the verdict:
score = fraction of checks passed (the committee counts as one); passed = every hard check passed and
score >= verify.min_score. Failed LLM rows may be re-sampled with feedback (verify/feedback.py). Input rows are
read unvalidated: one that breaks the schema fails its `schema` check and is written repaired (pipeline/schema_repair.py).
Then every row gets its task's pass rate (verify/pass_rates.py) and, with `verify.step_values`, selected rows get
Monte Carlo step values (verify/step_values.py)."""

import asyncio
from contextlib import AsyncExitStack, asynccontextmanager

from pipeline import environments, shards
from pipeline import schema_repair as repair
from pipeline.llm import transient
from pipeline.llm.endpoints import Endpoints, summed_stats
from pipeline.rowstats import summed, trajectory_stats
from pipeline.sample.stage import SampleStage
from pipeline.verify import feedback, judges, pass_rates, step_values
from pipeline.verify.checks import result
from pipeline.verify.committee import aggregate, run_stats
from pipeline.verify.program import ProgramChecks


def structured_output_style(profile: dict) -> str:
    return profile.get("structured_output") or "json_schema"


class VerifyStage:
    name = "verify"
    output_kind = "trajectory"
    shards_in_flight = 2
    validate_input = False  # a row that breaks the schema is data: its `schema` check fails, the shard goes on

    def __init__(self, config, stage_hash: str):
        self.config = config
        section = config["verify"]
        self.program = ProgramChecks(config)
        self.checks = self.program.checks
        self.judges, self.committee, self.step_judge = section["judges"], section["committee"], section["step_judge"]
        self.feedback = section["feedback"]
        self.step_values = section["step_values"]
        self.stage_hash = stage_hash
        self.clients = {}
        self.teachers = {t["name"]: t for t in config["sample"]["teachers"]}
        self.sampler = None

    def endpoint_names(self) -> list[str]:
        names = [j["endpoint"] for j in self.judges] + ([self.step_judge["endpoint"]] if self.step_judge else [])
        if self.feedback["rounds"]:
            names += [t["endpoint"] for t in self.teachers.values() if t["policy"] == "llm"]
        if self.step_values:
            names.append(self.step_values["teacher"]["endpoint"])
        return names

    @asynccontextmanager
    async def open(self, run_dir):
        """Open the config's environments (offline from the run's recordings unless a live replay, feedback
        rounds or step values need them) and the judges' endpoints (the teachers', for feedback rounds; the
        rollout teacher's, for step values)."""
        async with AsyncExitStack() as stack:
            if self.config["environments"]:
                live = bool(self.feedback["rounds"] or self.step_values) or any(o.get("live") for spec, o in self.checks if spec["name"] == "replay")
                toolbox = await stack.enter_async_context(environments.opened(self.config, run_dir, self.name, live))
                self.program.use_toolbox(toolbox)
            if self.endpoint_names():
                self.clients = await stack.enter_async_context(Endpoints(self.config["endpoints"], self.endpoint_names(), run_dir))
                if self.feedback["rounds"] or self.step_values:
                    self.sampler = SampleStage(self.config, self.config.stage_hash("sample"))
                    self.sampler.clients = self.clients
                    if self.config["environments"]:
                        self.sampler.toolbox = toolbox
            yield
        self.clients, self.sampler = {}, None
        self.program.use_toolbox(None)

    def stats(self) -> dict:
        return summed_stats(self.clients)

    @staticmethod
    def summarize(paths) -> dict:
        """The summary of finished verified shards `paths`: as sample's, plus failed checks and the committee's
        figures over all of them (agreement and kappa are not sums of shards')."""
        summary = summed(paths, trajectory_stats)
        tables = [shards.read_parquet(path, columns=["judgments", "checks"]) for path in paths]
        summary["judges"] = run_stats([pair for t in tables for pair in zip(t["judgments"].to_pylist(), t["checks"].to_pylist())])
        summary.update(step_values.summary(paths))
        return summary

    def run_checks(self, row: dict) -> list[dict]:
        return self.program.run(row)

    def verdict(self, row: dict, results: list[dict], judgments: list[dict] | None) -> dict:
        if transient.is_transient(row):  # not the teacher's failure: never training or preference data
            results = results + [result("transient", False, "waiting for a retry after a transient failure ("
                                        + ", ".join(row["meta"]["transient"]) + "): re-run to retry it")]
        score, passed = self.program.verdict(results, self.program.hard | {"committee": self.committee["hard"], "transient": True})
        return {**row, "checks": results, "judgments": judgments, "score": score, "passed": passed, "config_hash": self.stage_hash}

    def verify_row(self, row: dict) -> dict:
        """Program checks only (what runs without any endpoint)."""
        return self.verdict(row, self.run_checks(row), None)

    @staticmethod
    def storable(row: dict) -> dict:
        """The verified row as it can be written: a row that breaks the schema in its repaired form
        (pipeline/schema_repair.py), failed, with a `schema` check saying why even if none was configured."""
        fixed = repair.repaired(row)
        if fixed is not row and not any(c["name"] == "schema" for c in fixed["checks"] or []):
            problems = fixed["meta"]["schema_repair"]["problems"]
            fixed["checks"] = (fixed["checks"] or []) + [result("schema", False, "; ".join(problems[:3]))]
        return fixed

    async def assess(self, row: dict) -> dict:
        results, judgments = self.run_checks(row), None
        if self.committee["apply_to"] == "llm" and str(row.get("source")) == "program":
            return self.verdict(row, results, None)
        if self.judges:
            judgments = list(await asyncio.gather(*(self._judge(j, row) for j in self.judges)))
            weights = {j["name"]: j["weight"] for j in self.judges}
            c = self.committee
            passed, detail = aggregate(judgments, weights, c["rule"], c["threshold"], c["quorum"])
            results.append(result("committee", bool(passed), detail))
        if self.step_judge:
            row = await self._judge_steps(row)
        return self.verdict(row, results, judgments)

    def mark_transient(self, row: dict, failures: list[str]) -> dict:
        """The row's verdict again, as waiting for a retry after the transient `failures`."""
        marked = {**row, "meta": {**row["meta"], "transient": transient.kinds(failures + row["meta"].get("transient", []))}}
        return self.verdict(marked, [c for c in row["checks"] if c["name"] != "transient"], row["judgments"])

    async def _judge(self, judge: dict, row: dict) -> dict:
        client = self.clients[judge["endpoint"]]
        return await judges.judge_row(client, judge, row, structured_output_style(client.profile))

    async def _judge_steps(self, row: dict) -> dict:
        client = self.clients[self.step_judge["endpoint"]]
        verdicts, problem = await judges.judge_steps(client, self.step_judge, row, structured_output_style(client.profile))
        row = {**row, "meta": dict(row["meta"]), "steps": [dict(s) for s in row["steps"]]}
        if verdicts is None:
            row["meta"]["step_judge"] = problem
            return row
        for step, verdict in zip(row["steps"], verdicts):
            step["step_verdict"] = verdict
        row["meta"]["first_bad_step"] = next((i for i, v in enumerate(verdicts) if v["label"] == "bad"), None)
        return row

    async def _retry(self, parent: dict, round_: int) -> dict | None:
        failures = feedback.fixable_failures(parent, self.feedback["checks"])
        teacher = self.teachers.get((parent.get("meta") or {}).get("teacher"))
        if not failures or teacher is None or teacher["policy"] != "llm":
            return None
        note = feedback.feedback_text(failures)
        task = feedback.retry_task(parent, note, round_)
        child = await self.sampler.sample_one(task, teacher, parent["format"], parent["meta"].get("sample_index", 0))
        return await self.assess(feedback.as_child(child, parent, note, round_))

    def expected_outputs(self, inputs: int) -> int:
        return inputs

    async def process(self, rows: list[dict], progress) -> list[dict]:
        """Verify every row (with step values, a row counts as done once it is valued or not selected)."""
        async def one(row):
            with transient.watching() as failures:
                verified = await self.assess(row)
            if failures:  # a judge that timed out: the next run of verify asks again (answered votes are cached)
                verified = self.mark_transient(verified, failures)
            if not self.step_values:
                progress(1)
            return verified

        out = list(await asyncio.gather(*(one(row) for row in rows)))
        latest = out
        for round_ in range(1, self.feedback["rounds"] + 1):
            retried = [r for r in await asyncio.gather(*(self._retry(row, round_) for row in latest if not row["passed"])) if r]
            out += retried
            latest = retried
        out = pass_rates.annotate([self.storable(row) for row in out])
        if self.step_values:
            client = self.clients[self.step_values["teacher"]["endpoint"]]
            valuer = step_values.StepValues(self.config, self.step_values, self.sampler, self.program, client, self.mark_transient)
            out = await valuer.process(out, rows, progress)
        return out
