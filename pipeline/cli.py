"""trajforge: manufacture verified agent trajectories.

Examples:
  trajforge run configs/quickstart.yaml                 # every stage of the config, in order
  trajforge sample configs/quickstart.yaml --shard 0/4  # one stage, shards 0, 4, 8, ... (one array task)
  trajforge run configs/quickstart.yaml --set run.seed=7 --run-dir runs/seed7
  trajforge show runs/quickstart --stage verify --limit 3
  trajforge validate runs/quickstart/verified/part-00000.parquet
  trajforge publish runs/quickstart --dry-run --out /tmp/hub-folder
  trajforge report runs/quickstart                      # regenerate report.html / report.json
  trajforge view runs/quickstart                        # browse the run's rows at http://127.0.0.1:8765
  trajforge publish runs/quickstart --repo-id me/agent-trajectories   # token from HF_TOKEN
  trajforge export runs/quickstart --view trl --out /tmp/trl
  trajforge sample configs/run.yaml --batch             # LLM teachers through the Batch API, one round per step
  trajforge plan configs/run.yaml --probe 3             # requests, tokens and dollars before spending
  trajforge verify runs/inventory-mcp --live --reconfigure   # replay against the live MCP server: drift since sampling
  trajforge local-teacher start                         # the embedded llama.cpp teacher, for manual use
  trajforge list tools configs/inventory_mcp.yaml       # every tool of the config's environments, with its schema
  trajforge import logs.jsonl --format openai --run-dir runs/logs   # trajectories from elsewhere, then
  trajforge run runs/logs                                          # verify and curate them
"""

import argparse
import inspect
import json
import logging
import os
import signal
import sys
from pathlib import Path

from pipeline.errors import UserError
from pipeline.stages import STAGE_DIRS

# Commands import what they use when they run, so `trajforge --help` and `trajforge list` start at once.
STAGE_COMMANDS = ("synthesize", "sample", "verify", "curate")


def load_config(target: str, overrides: list[str]):
    """CONFIG may be a YAML file or a run directory (which holds the config it was made with)."""
    from pipeline import config_check

    path = Path(target)
    if path.is_dir():
        if not (path / "config.yaml").exists():
            raise UserError(f"{path}: not a run directory (no config.yaml)")
        return config_check.load(path / "config.yaml", overrides), path
    return config_check.load(path, overrides), None


def _overrides(args) -> list[str]:
    """--set, and --allow-weak-sandbox as the config key it stands for."""
    return args.set + (["sample.sandbox.allow_weak=true"] if args.allow_weak_sandbox else [])


def live_replay_overrides(config) -> list[str]:
    """--live: the replay checks call environment tools again instead of answering from the recordings."""
    checks = config["verify"]["checks"]
    found = [f"verify.checks[{i}].options.live=true" for i, check in enumerate(checks) if check["name"] == "replay"]
    if not found:
        raise UserError("--live: verify.checks has no replay check to run live")
    return found


def _run(args, stages: list[str] | None) -> int:
    """Check everything that can refuse the command (config, shard spec, executor, endpoints and keys, the
    publish target), then open the run directory (the first write) and run the stages."""
    from pipeline import report, runner
    from pipeline.shardjob import ShardSpec

    config, implied_dir = load_config(args.config, _overrides(args))
    stages = stages or (args.stages.split(",") if args.stages else config["run"]["stages"])
    if getattr(args, "live", False):
        config, implied_dir = load_config(args.config, _overrides(args) + live_replay_overrides(config))
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


def _publish(dataset_dir: Path, repo_id: str | None, private: bool, config, rerun: str) -> None:
    from pipeline.publish import stage as publish

    url, changed = publish.publish(dataset_dir, publish.check_repo_id(repo_id), private, config["publish"]["commit_message"], rerun)
    print(f"published: {url}" if changed else f"already up to date (nothing changed since the last publish): {url}")


def cmd_publish(args) -> int:
    from pipeline.publish import stage as publish

    config, implied_dir = load_config(args.config, args.set)
    run_dir = Path(args.run_dir) if args.run_dir else (implied_dir or Path("runs") / config.name)
    dataset_dir = run_dir / STAGE_DIRS["curate"]
    repo_id = args.repo_id or config["publish"]["repo_id"]
    if args.dry_run:
        if not args.out:
            raise UserError("--dry-run needs --out DIR (the folder that would be uploaded)")
        if repo_id:
            publish.check_repo_id(repo_id)
        files = publish.dry_run(dataset_dir, Path(args.out))
        print(f"dry run: wrote {len(files)} file(s) to {args.out} (nothing uploaded)")
        return 0
    private = args.private or config["publish"]["private"]
    _publish(dataset_dir, repo_id, private, config,
             f"trajforge publish {run_dir} --repo-id {repo_id}{' --private' if private else ''}")
    return 0


def cmd_export(args) -> int:
    from pipeline.curate import views

    if args.view not in views.VIEWS:
        raise UserError(f"--view {args.view!r}: unknown view (views: {', '.join(views.VIEWS)})")
    run_dir = Path(args.run_dir)
    dataset_dir = run_dir / STAGE_DIRS["curate"]
    if not list((dataset_dir / "data").glob("*.parquet")):
        raise UserError(f"{dataset_dir}: no curated data to export (run `trajforge curate` first)")
    verified = sorted((run_dir / STAGE_DIRS["verify"]).glob("part-*.parquet"))
    if args.view in views.NEEDS_FAILED and not verified:
        raise UserError(f"{run_dir}: --view {args.view} pairs passed with failed trajectories and reads them from verified/, which is empty")
    counts = views.export(args.view, dataset_dir, Path(args.out), verified, args.reasoning)
    print(f"export {args.view}: " + ", ".join(f"{split} {n}" for split, n in counts.items()) + f" row(s) in {args.out}")
    return 0


def read_rows(path: Path) -> tuple[list[dict], str | None]:
    """Rows of a Parquet or JSONL file, and the kind if the file says (Parquet columns)."""
    if path.suffix == ".jsonl":
        rows = []
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise UserError(f"{path}: cannot read ({exc.strerror})") from None
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
        return rows, None
    from pipeline import shards

    table = shards.read_table(path, "trajectory") if _has_column(path, "messages") else shards.read_table(path, "task")
    kind = "trajectory" if "messages" in table.column_names else "task"
    from pipeline import rows as rowlib

    return rowlib.from_table(table, kind), kind


def _has_column(path: Path, name: str) -> bool:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return name in pq.read_schema(path).names
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise UserError(f"{path}: not a readable Parquet file ({exc})") from None


def cmd_validate(args) -> int:
    """Each file on its own: its rows checked, or one line saying why it cannot be read; exit 2 when a file
    could not be read, else 1 when a row is invalid."""
    from pipeline import schema

    unreadable = invalid = 0
    for target in args.paths:
        path = Path(target)
        try:
            rows, kind = read_rows(path)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            unreadable += 1
            continue
        bad = 0
        for i, row in enumerate(rows):
            row_kind = args.kind or kind or (schema.detect_kind(row) if isinstance(row, dict) else "task")
            problems = schema.errors(row_kind, row) if isinstance(row, dict) else ["(top level): a row must be a JSON object"]
            for problem in problems:
                print(f"{path}: row {i} (id={row.get('id') if isinstance(row, dict) else None}): {problem}")
            bad += bool(problems)
        invalid += bad
        print(f"{path}: {len(rows)} row(s), {bad} invalid" if bad else f"{path}: {len(rows)} row(s), all valid against the {kind or 'detected'} schema")
    return 2 if unreadable else 1 if invalid else 0


SHOW_STAGES = ("sample", "verify", "curate")


def cmd_show(args) -> int:
    from pipeline import shards, show

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.yaml").exists():
        raise UserError(f"{run_dir}: not a run directory (no config.yaml)")
    folder = run_dir / STAGE_DIRS[args.stage]
    files = sorted(folder.glob("part-*.parquet")) or sorted(folder.glob("data/*.parquet"))
    if not files:
        raise UserError(f"{folder}: no trajectories yet (run `trajforge {args.stage}`; --stage is one of {', '.join(SHOW_STAGES)})")
    shown = 0
    color = sys.stdout.isatty()
    for path in files:
        for row in shards.read_shard(path, "trajectory", validate=False):
            if args.id and row["id"] != args.id:
                continue
            if args.failed and row.get("passed") is not False:
                continue
            print(show.render(row, color=color) + "\n")
            shown += 1
            if shown >= args.limit:
                return 0
    if shown == 0 and args.id:
        raise UserError(f"{folder}: no trajectory has id {args.id}" + (" and failed verification" if args.failed else ""))
    if shown == 0:  # an answer, not an error: e.g. --failed on a run where every row passed
        print(f"{folder}: no trajectory " + ("failed verification" if args.failed else "in its shards"))
    return 0


def cmd_slurm(args) -> int:
    from pipeline import report, runner
    from pipeline.executors import slurm
    from pipeline.shardjob import num_shards

    config, implied_dir = load_config(args.config, _overrides(args))
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


def cmd_report(args) -> int:
    from pipeline import report

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.yaml").exists():
        raise UserError(f"{run_dir}: not a run directory (no config.yaml)")
    print(f"report: {report.write(run_dir)}")
    return 0


def cmd_view(args) -> int:
    from pipeline.view import server

    server.serve(Path(args.run_dir), args.host, args.port)
    return 0


def _list_tools(config_path: str | None, overrides: list[str]) -> None:
    """Every tool a config can reach, with its schema and where it comes from (its environments are opened:
    servers started and listed, modules imported)."""
    from pipeline.environments import Toolbox, open_toolbox

    toolbox = Toolbox()
    if config_path:
        config, _ = load_config(config_path, overrides)
        toolbox = open_toolbox(config, None, "list")
    try:
        for tool in toolbox.tools.values():
            tags = " [read-only]" if tool.read_only and tool.source != "builtin" else ""
            shown = f" (models see {tool.wire_name})" if tool.wire_name != tool.name else ""
            print(f"{tool.name}{shown}  from {tool.source}{tags}\n    {tool.description}\n    parameters: {json.dumps(tool.parameters, ensure_ascii=False)}")
    finally:
        toolbox.close()


def cmd_list(args) -> int:
    from pipeline import plugins

    if args.what == "tools":
        _list_tools(args.config, args.set)
    elif args.config:
        raise UserError(f"trajforge list {args.what} takes no CONFIG (only `trajforge list tools CONFIG` does)")
    elif args.what == "generators":
        from pipeline.synthesize.generators import GENERATORS

        for g in GENERATORS.values():
            print(f"{g.name:<14} domain={g.domain:<12} tools={','.join(g.tools):<26} {g.description}  [{plugins.origin('generators', g.name)}]")
    elif args.what == "checks":
        from pipeline.verify.checks import CHECKS

        print("\n".join(f"{name:<16} [{plugins.origin('checks', name)}]" for name in CHECKS))
    elif args.what == "views":
        from pipeline.curate.views import VIEWS

        print("\n".join(f"{name:<16} [{plugins.origin('views', name)}]" for name in VIEWS))
    elif args.what == "environments":
        from pipeline.environments import FACTORIES

        kinds = [("mcp", "builtin: an MCP server over stdio or streamable HTTP"), ("python", "builtin: a Python module of tool functions")]
        kinds += [(name, plugins.origin("environments", name)) for name in FACTORIES]
        print("\n".join(f"{name:<16} [{origin}]" for name, origin in kinds))
    else:
        from pipeline.formats import FORMATS

        print("\n".join(FORMATS))
    return 0


def cmd_local_teacher(args) -> int:
    from pipeline.llm import local

    if args.action == "start":
        state = local.start_manual(args.model, args.n_ctx)
        print(f"local teacher: {state['model']} at {state['base_url']} (pid {state['pid']}, log {state['log']})")
    elif args.action == "stop":
        state = local.stop_manual()
        print(f"local teacher stopped (pid {state['pid']})" if state else "local teacher: not running")
    elif args.action == "check":
        print(local.smoke_test(args.model))
    else:
        state = local.running()
        print(f"local teacher: {state['model']} at {state['base_url']} (pid {state['pid']})" if state else "local teacher: not running")
    return 0


def _stage_options(p: argparse.ArgumentParser, shard: bool = True) -> None:
    p.add_argument("config", metavar="CONFIG", help="a YAML config, or a run directory to re-run with its config")
    p.add_argument("--run-dir", type=Path, help="run directory (default: runs/<run.name>)")
    if shard:
        p.add_argument("--shard", metavar="I/N", help="process only shards I, I+N, I+2N, ... (one task of a scheduler array)")
        p.add_argument("--executor", choices=["local", "ray"], default="local", help="where row-stage shards run (ray: trajforge[ray])")
        p.add_argument("--address", help="with --executor ray: the cluster address (default: start a local Ray instance)")
        p.add_argument("--batch", action="store_true", help="send LLM requests through the Batch API (one round per agent step)")
        p.add_argument("--go-on", action="store_true", help="start even when the plan expects more than an endpoint's budget_usd")
        p.add_argument("--live", action="store_true", help="verify: replay environment tools against the live environment and report "
                       "drift, instead of answering them from the run's recordings (changes verify's config: with --reconfigure)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. sample.teachers[0].temperature=0.7")
    p.add_argument("--reconfigure", action="store_true", help="accept a changed config for an existing run dir and redo the stages it changes")
    p.add_argument("--allow-weak-sandbox", action="store_true",
                   help="run model-written code even without bubblewrap, in the weaker sandbox (sample.sandbox.allow_weak)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trajforge", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("run", help="run the config's stages in order")
    _stage_options(p)
    p.add_argument("--stages", help="comma-separated stages to run (default: run.stages of the config)")
    p.add_argument("--dry-run", action="store_true", help="with publish among the stages: write the folder that would be uploaded to --out, upload nothing")
    p.add_argument("--out", help="with --dry-run: where publish writes that folder")
    p.set_defaults(func=cmd_run)
    for name in STAGE_COMMANDS:
        p = sub.add_parser(name, help=f"run the {name} stage alone")
        _stage_options(p)
        p.set_defaults(func=cmd_stage)
    p = sub.add_parser("plan", help="estimate requests, tokens and dollars per stage and endpoint, before spending",
                       description=inspect.cleandoc(cmd_plan.__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", metavar="CONFIG", help="a YAML config, or a run directory")
    p.add_argument("--run-dir", type=Path, help="the run to plan (default: runs/<run.name>); its finished shards cost nothing more")
    p.add_argument("--stages", help="comma-separated stages (default: run.stages of the config)")
    p.add_argument("--measure", type=Path, metavar="RUN_DIR", help="correct the estimate with the episodes of this (pilot) run")
    p.add_argument("--probe", type=int, default=0, metavar="N", help="send N real episodes per teacher and format (and judge them) to measure")
    p.add_argument("--batch", action="store_true", help="plan for the Batch API (its discount)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_plan)
    p = sub.add_parser("import", help="import trajectories from elsewhere (trajforge rows, OpenAI chat, ShareGPT, ATIF) to verify, curate and publish",
                       description="Map a file, folder or Hub dataset of trajectories onto trajectory rows in RUN/trajectories/, "
                                   "so verify, curate and publish run on them as on sampled rows. Records that cannot be mapped are "
                                   "counted and listed with their line; rows that break the schema fail verify's schema check.")
    p.add_argument("source", metavar="FILE|DIR|HUB_NAME")
    p.add_argument("--format", required=True, help="trajforge, openai, sharegpt or atif")
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--config", help="a config for the run's verify, curate and publish (default: configs/import.yaml)")
    p.add_argument("--name", help="rows without a model name get source import:NAME (default: imported)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--reconfigure", action="store_true", help="accept a changed config or source for an existing run dir")
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("publish", help="upload the curated dataset to the Hugging Face Hub (or --dry-run to a folder)")
    p.add_argument("config", metavar="CONFIG_OR_RUN_DIR")
    p.add_argument("--run-dir", type=Path)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--repo-id", help="USER/NAME on the Hub (default: publish.repo_id)")
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="write the folder that would be uploaded, upload nothing")
    p.add_argument("--out", help="with --dry-run: where to write it")
    p.set_defaults(func=cmd_publish)
    p = sub.add_parser("export", help="write an export view of a curated run (trl, sharegpt, react, dpo, dpo_step, rl, prm)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--view", required=True, help="trl, sharegpt, react, dpo, dpo_step, rl, ... (`trajforge list views`)")
    p.add_argument("--reasoning", choices=["render", "drop"], default="render",
                   help="sharegpt and react views: reasoning_content as a <think> block before the reply, or left out")
    p.add_argument("--out", required=True, help="folder for {split}-k-of-n.parquet files")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("validate", help="check Parquet/JSONL files of tasks or trajectories against the schemas")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--kind", choices=["task", "trajectory"], help="schema to use (default: detected per file)")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("show", help="render trajectories of a run readably")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--stage", default="verify", choices=SHOW_STAGES)
    p.add_argument("--id", help="only this trajectory id")
    p.add_argument("--failed", action="store_true", help="only trajectories that failed verification")
    p.add_argument("--limit", type=int, default=5)
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("slurm", help="write sbatch scripts (an array job per stage, chained) and optionally submit them")
    _stage_options(p, shard=False)
    p.add_argument("--stages", help="comma-separated stages (default: run.stages without publish)")
    p.add_argument("--array", type=int, required=True, metavar="N", help="array tasks per row stage (capped at the number of shards)")
    p.add_argument("--sbatch-arg", action="append", default=[], metavar="ARG", help="extra #SBATCH line, e.g. --sbatch-arg=--partition=cpu")
    p.add_argument("--submit", action="store_true", help="submit the chain now (checks that Slurm answers first)")
    p.add_argument("--wait", action="store_true", help="with --submit: block until the last job ends")
    p.set_defaults(func=cmd_slurm)
    p = sub.add_parser("report", help="regenerate a run's report.html and report.json")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("view", help="browse a run's trajectories in a web browser (filters, steps, masks, checks; read-only)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (0: any free port; default 8765)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.set_defaults(func=cmd_view)
    p = sub.add_parser("local-teacher", help="start, stop or show the embedded llama.cpp teacher (Gemma 3 270M) for manual use")
    p.add_argument("action", choices=["start", "stop", "status", "check"],
                   help="check: start a server, ask for one short completion, stop (what setup runs after installing)")
    p.add_argument("--model", default="gemma-3-270m", help="the name it serves the model under (an endpoint's `model`)")
    p.add_argument("--n-ctx", type=int, default=4096, help="context size in tokens")
    p.set_defaults(func=cmd_local_teacher)
    p = sub.add_parser("list", help="list registered generators, tools, checks, formats, views or environment kinds, and where each comes from")
    p.add_argument("what", choices=["generators", "tools", "checks", "formats", "views", "environments"])
    p.add_argument("config", metavar="CONFIG", nargs="?", help="with tools: also the tools of this config's environments (they are started)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_list)
    return parser


class _Terminated:
    """SIGTERM (what Slurm and most schedulers send at a time limit) is handled as Ctrl-C is: the handler
    raises SIGINT in this process, so the stages unwind the same way (finished shards kept, the local server
    and sandboxes stopped), and `main` answers 143 instead of 130."""

    received = False

    @classmethod
    def handle(cls, signum, frame) -> None:
        cls.received = True
        os.kill(os.getpid(), signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)  # libraries: warnings only
    logging.getLogger("trajforge").setLevel(logging.INFO)
    previous = signal.signal(signal.SIGTERM, _Terminated.handle)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        what = "terminated (SIGTERM)" if _Terminated.received else "interrupted"
        print(f"{what}: finished shards are kept; re-run the same command to resume", file=sys.stderr)
        return 143 if _Terminated.received else 130
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
