"""The commands that run stages: run, the stage commands, import, plan and slurm. Each checks everything
that can refuse it before the first write (runner.preflight), then opens the run directory."""

import json
from pathlib import Path

from pipeline.cli.common import live_replay_overrides, load_config, overrides
from pipeline.errors import UserError


def _run(args, stages: list[str] | None) -> int:
    """Check everything that can refuse the command (config, shard spec, executor, endpoints and keys, the
    publish target), then open the run directory (the first write) and run the stages."""
    from pipeline import report, runner
    from pipeline.shardjob import ShardSpec

    config, implied_dir = load_config(args.config, overrides(args))
    stages = stages or (args.stages.split(",") if args.stages else config["run"]["stages"])
    if getattr(args, "live", False):
        config, implied_dir = load_config(args.config, overrides(args) + live_replay_overrides(config))
    importing = bool(config.data.get("import")) and bool({"synthesize", "sample"} & set(stages))
    if importing:  # an import run has no synthesize or sample stage: the import writes its trajectories
        if args.command in ("synthesize", "sample"):
            raise UserError(f"{args.config}: this run imports its trajectories (import: section); `trajforge import` "
                            "writes them, then run verify, curate and publish")
        stages = [s for s in stages if s not in ("synthesize", "sample")]
    if getattr(args, "batch", False):
        for profile in config["endpoints"].values():
            profile["batch"] = True
    spec = ShardSpec.parse(args.shard)
    if getattr(args, "dry_run", False) and not args.out:
        raise UserError("--dry-run needs --out DIR (the folder publish would upload)")
    executor = {"name": args.executor, "address": args.address, "publish_out": getattr(args, "out", None)}
    runner.preflight(stages, config, executor)
    if spec.count == 1:  # one shard of an array is no whole run to plan
        from pipeline import plan

        plan.guard(config, stages, Path(args.run_dir or implied_dir or Path("runs") / config.name), args.go_on)
    run_dir = runner.open_run(config, args.run_dir or implied_dir, args.reconfigure)
    if importing:
        _import(config, run_dir)
    runner.run_stages(stages, config, run_dir, spec, executor=executor)
    print(f"run directory: {run_dir}; report: {report.write(run_dir)}")
    return 0


def _import(config, run_dir: Path) -> None:
    from tqdm import tqdm

    from pipeline import report
    from pipeline.ingest import stage as ingest

    with tqdm(desc="import", unit="record", dynamic_ncols=True) as bar:
        summary = ingest.run_import(config, run_dir, bar.update)
    report.record_summary(run_dir, summary)
    print(ingest.format_summary(summary))


def cmd_import(args) -> int:
    """Import trajectories from elsewhere into a run directory, as its trajectories/ shards: the config
    (--config, default configs/import.yaml) with its `import` section set from the arguments."""
    import yaml

    from pipeline import config as configlib
    from pipeline import config_check, runner

    path = Path(args.config) if args.config else configlib.DEFAULT_IMPORT_CONFIG
    path = path / "config.yaml" if path.is_dir() else path
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read the config ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config must be a YAML mapping")
    for text in args.set:
        configlib.apply_override(data, *configlib.parse_override(text))
    source = Path(args.source)
    data["import"] = {**(data.get("import") or {}), "format": args.format,
                      "path": str(source.resolve()) if source.exists() else args.source, **({"name": args.name} if args.name else {})}
    config = configlib.Config(config_check.validate_data(data, str(path)), path)
    runner.preflight([], config, {"name": "local"})  # the plan: the source exists and has records
    run_dir = runner.open_run(config, args.run_dir, args.reconfigure)
    _import(config, run_dir)
    print(f"run directory: {run_dir}; next: trajforge run {run_dir} (verify and curate)")
    return 0


def cmd_run(args) -> int:
    return _run(args, None)


def cmd_stage(args) -> int:
    if args.command == "curate" and args.shard:
        raise UserError("curate reads every shard at once: run it without --shard, after all shards are verified")
    return _run(args, [args.command])


def cmd_plan(args) -> int:
    """Estimate what a run asks of its endpoints, without sending anything (or N real episodes with --probe N).

    Examples: trajforge plan configs/run.yaml --probe 3 | trajforge plan configs/run.yaml --measure runs/pilot
              trajforge plan runs/big --json   (what remains of a run directory)
    """
    from pipeline import plan

    config, implied_dir = load_config(args.config, args.set)
    if args.batch:
        for profile in config["endpoints"].values():
            profile["batch"] = True
    stages = args.stages.split(",") if args.stages else config["run"]["stages"]
    made = plan.make(config, stages, args.run_dir or implied_dir or Path("runs") / config.name, args.measure, args.probe)
    print(json.dumps(made.to_json(), indent=2) if args.json else plan.table(made))
    return 0


def cmd_slurm(args) -> int:
    from pipeline import report, runner
    from pipeline.executors import slurm
    from pipeline.shardjob import num_shards

    config, implied_dir = load_config(args.config, overrides(args))
    run_dir = runner.open_run(config, args.run_dir or implied_dir, args.reconfigure)
    stages = args.stages.split(",") if args.stages else [s for s in config["run"]["stages"] if s != "publish"]
    folder = slurm.write_scripts(run_dir, stages, args.array, num_shards(config), args.sbatch_arg, args.wait)
    print(f"wrote {', '.join(f'{s}.sbatch' for s in stages)} and submit.sh to {folder}")
    if args.submit:
        for stage, job in slurm.submit(folder).items():
            print(f"submitted {stage}: job {job}")
        if args.wait:
            print(f"report: {report.write(run_dir)}")
    else:
        print(f"submit with: bash {folder / 'submit.sh'}")
    return 0
