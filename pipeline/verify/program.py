"""The program verdict: the configured program checks (`verify.checks`) of a row, and whether they pass it.

The verify stage adds the judge committee to it; sampling uses it alone where a decision cannot wait for verify
(adaptive `samples_per_task`, step-wise candidate scoring), and so do Monte Carlo step values for each
continuation. Below the stages' own modules, so sample and verify both import it.
"""

from pipeline.verify import credentials
from pipeline.verify.checks import CHECKS, DEFAULT_OPTIONS, result


def check_options(config, spec: dict) -> dict:
    """A check's options: its defaults, then the config's; `replay` takes the sample stage's environment
    settings and `secrets` the endpoints' key variables."""
    options = {**DEFAULT_OPTIONS.get(spec["name"], {}), **spec.get("options", {})}
    if spec["name"] == "replay":  # replay must rebuild the environment exactly as sampling did
        options.update(max_observation_chars=config["sample"]["max_observation_chars"], sandbox=config["sample"]["sandbox"])
    if spec["name"] == "secrets":
        names = list(options["env"]) + [p["api_key_env"] for p in config["endpoints"].values() if p.get("api_key_env")]
        options["values"] = credentials.secret_values(names)  # held in memory for this process only
    return options


class ProgramChecks:
    def __init__(self, config):
        self.checks = [(spec, check_options(config, spec)) for spec in config["verify"]["checks"]]
        self.min_score = config["verify"]["min_score"]
        self.hard = {spec["name"]: spec["hard"] for spec in config["verify"]["checks"]}

    def use_toolbox(self, toolbox) -> None:
        """The tools the replay and tool_calls checks reach: a stage's opened environments (None: built-ins only)."""
        for spec, options in self.checks:
            if spec["name"] in ("replay", "tool_calls"):
                if toolbox is None:
                    options.pop("toolbox", None)
                else:
                    options["toolbox"] = toolbox

    def run(self, row: dict) -> list[dict]:
        results = []
        for spec, options in self.checks:
            try:
                results.append(CHECKS[spec["name"]](row, options))
            except Exception as exc:  # a check that trips on a malformed row fails that row, not the shard
                results.append(result(spec["name"], False, f"check crashed: {type(exc).__name__}: {exc}"))
        return results

    def verdict(self, results: list[dict], hard: dict) -> tuple[float, bool]:
        """(score, passed): score = fraction of results passed; passed = no hard result failed (a name missing
        from `hard` is hard) and score >= verify.min_score."""
        score = sum(r["passed"] for r in results) / len(results) if results else 1.0
        hard_failed = any(hard.get(r["name"], True) and not r["passed"] for r in results)
        return score, not hard_failed and score >= self.min_score

    def passes(self, row: dict) -> bool:
        """Whether the program checks alone pass the row."""
        return self.verdict(self.run(row), self.hard)[1]
