"""What several commands share: loading a config (a file or a run directory) with its overrides."""

from pathlib import Path

from pipeline.errors import UserError


def load_config(target: str, overrides: list[str]):
    """CONFIG may be a YAML file or a run directory (which holds the config it was made with)."""
    from pipeline import config_check

    path = Path(target)
    if path.is_dir():
        if not (path / "config.yaml").exists():
            raise UserError(f"{path}: not a run directory (no config.yaml)")
        return config_check.load(path / "config.yaml", overrides), path
    return config_check.load(path, overrides), None


def overrides(args) -> list[str]:
    """--set, and --allow-weak-sandbox as the config key it stands for."""
    return args.set + (["sample.sandbox.allow_weak=true"] if args.allow_weak_sandbox else [])


def live_replay_overrides(config) -> list[str]:
    """--live: the replay checks call environment tools again instead of answering from the recordings."""
    checks = config["verify"]["checks"]
    found = [f"verify.checks[{i}].options.live=true" for i, check in enumerate(checks) if check["name"] == "replay"]
    if not found:
        raise UserError("--live: verify.checks has no replay check to run live")
    return found
