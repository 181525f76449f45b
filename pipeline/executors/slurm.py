"""Slurm batch jobs: one sbatch script per stage (an array job for row stages, one task for curate),
chained with dependencies, plus a submit.sh that submits the chain.

Row stages are chained task by task (`aftercorr`): shard k of sample starts as soon as shard k of synthesize
is done. Curate waits for the whole verify array (`afterok`). Every task runs
`trajforge <stage> RUN_DIR --shard $SLURM_ARRAY_TASK_ID/N`, so nothing is pickled: a job is one command line,
and re-submitting skips every finished shard.
"""

import shlex
import subprocess
import sys
from pathlib import Path

from pipeline.errors import UserError
from pipeline.stages import ROW_STAGES


def sbatch_script(stage: str, run_dir: Path, array: int | None, sbatch_args: list[str]) -> str:
    run_dir = run_dir.resolve()
    lines = ["#!/bin/bash", f"#SBATCH --job-name=trajforge-{run_dir.name}-{stage}"]
    if array:
        lines += [f"#SBATCH --array=0-{array - 1}", f"#SBATCH --output={run_dir}/logs/{stage}-%A_%a.log"]
        shard = f" --shard ${{SLURM_ARRAY_TASK_ID}}/{array}"
    else:
        lines.append(f"#SBATCH --output={run_dir}/logs/{stage}-%j.log")
        shard = ""
    lines += [f"#SBATCH {arg}" for arg in sbatch_args]
    command = f"{shlex.quote(sys.executable)} -m pipeline {stage} {shlex.quote(str(run_dir))}{shard}"
    lines += ["set -euo pipefail", f"cd {shlex.quote(str(Path.cwd()))}", f"exec {command}", ""]
    return "\n".join(lines)


def submit_script(stages: list[str], folder: Path, wait: bool) -> str:
    """Submits the chain in order; prints one line `<stage> <job id>` per job."""
    lines = ["#!/bin/bash", "set -euo pipefail", f"cd {shlex.quote(str(folder.resolve()))}"]
    previous = None
    for i, stage in enumerate(stages):
        flags = ["--parsable", "--kill-on-invalid-dep=yes"]
        if previous:
            kind = "aftercorr" if stage in ROW_STAGES and previous[0] in ROW_STAGES else "afterok"
            flags.append(f"--dependency={kind}:${previous[1]}")
        if wait and i == len(stages) - 1:
            flags.append("--wait")
        var = f"job_{stage}"
        lines.append(f'{var}=$(sbatch {" ".join(flags)} {stage}.sbatch | cut -d";" -f1)')
        lines.append(f'echo "{stage} ${var}"')
        previous = (stage, var)
    return "\n".join(lines) + "\n"


def write_scripts(run_dir: Path, stages: list[str], array: int, num_shards: int, sbatch_args: list[str], wait: bool) -> Path:
    unknown = [s for s in stages if s not in ROW_STAGES + ("curate",)]
    if unknown:
        raise UserError(f"--stages: {', '.join(unknown)} cannot run as Slurm jobs (use: {', '.join(ROW_STAGES)}, curate)")
    if array < 1:
        raise UserError("--array: must be at least 1")
    folder = run_dir / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    (run_dir / "logs").mkdir(exist_ok=True)
    tasks = min(array, num_shards)
    for stage in stages:
        script = sbatch_script(stage, run_dir, tasks if stage in ROW_STAGES else None, sbatch_args)
        (folder / f"{stage}.sbatch").write_text(script)
    submit = folder / "submit.sh"
    submit.write_text(submit_script(stages, folder, wait))
    submit.chmod(0o755)
    return folder


def check_reachable() -> None:
    """A clear error before anything is submitted when there is no Slurm controller to talk to."""
    try:
        proc = subprocess.run(["sinfo", "--noheader", "--summarize"], capture_output=True, text=True, timeout=20)
    except FileNotFoundError:
        raise UserError("Slurm is not reachable: `sinfo` is not installed on this machine") from None
    except subprocess.TimeoutExpired:
        raise UserError("Slurm is not reachable: `sinfo` did not answer within 20 s") from None
    if proc.returncode != 0:
        raise UserError(f"Slurm is not reachable: sinfo: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")


def submit(folder: Path) -> dict[str, str]:
    check_reachable()
    proc = subprocess.run(["bash", str(folder / "submit.sh")], capture_output=True, text=True)
    jobs = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    if proc.returncode != 0:
        raise UserError(f"sbatch failed after submitting {jobs or 'nothing'}: {proc.stderr.strip()}")
    return jobs
