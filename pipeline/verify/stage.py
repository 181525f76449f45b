"""The verify stage: run the configured program checks on each trajectory and set `passed` and `score`.

score = fraction of checks passed; passed = every hard check passed and score >= verify.min_score.
"""

from pipeline.verify import content
from pipeline.verify.checks import CHECKS, DEFAULT_OPTIONS, result


def check_options(config, spec: dict) -> dict:
    """A check's options: its defaults, then the config's; `replay` takes the sample stage's environment
    settings and `secrets` the endpoints' key variables."""
    options = {**DEFAULT_OPTIONS.get(spec["name"], {}), **spec.get("options", {})}
    if spec["name"] == "replay":  # replay must rebuild the environment exactly as sampling did
        options.update(max_observation_chars=config["sample"]["max_observation_chars"], sandbox=config["sample"]["sandbox"])
    if spec["name"] == "secrets":
        names = list(options["env"]) + [p["api_key_env"] for p in config["endpoints"].values() if p.get("api_key_env")]
        options["values"] = content.secret_values(names)  # held in memory for this process only
    return options


class VerifyStage:
    name = "verify"
    output_kind = "trajectory"

    def __init__(self, config, stage_hash: str):
        self.checks = [(spec, check_options(config, spec)) for spec in config["verify"]["checks"]]
        self.min_score = config["verify"]["min_score"]
        self.stage_hash = stage_hash

    def verify_row(self, row: dict) -> dict:
        results, hard_failed = [], False
        for spec, options in self.checks:
            try:
                outcome = CHECKS[spec["name"]](row, options)
            except Exception as exc:  # a check that trips on a malformed row fails that row, not the shard
                outcome = result(spec["name"], False, f"check crashed: {type(exc).__name__}: {exc}")
            results.append(outcome)
            hard_failed |= spec["hard"] and not outcome["passed"]
        score = sum(r["passed"] for r in results) / len(results) if results else 1.0
        return {**row, "checks": results, "score": score, "passed": not hard_failed and score >= self.min_score,
                "config_hash": self.stage_hash}

    def expected_outputs(self, inputs: int) -> int:
        return inputs

    async def process(self, rows: list[dict], progress) -> list[dict]:
        out = []
        for row in rows:
            out.append(self.verify_row(row))
            progress(1)
        return out
