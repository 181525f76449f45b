"""The commands that read what a run made: publish, export, validate, show, report and view."""

import json
import sys
from pathlib import Path

from pipeline.cli.common import load_config
from pipeline.errors import UserError
from pipeline.stages import STAGE_DIRS


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
