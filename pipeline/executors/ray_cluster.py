"""The Ray executor (`--executor ray [--address HOST:PORT]`): a row stage's shards as Ray tasks, for runs that
outgrow one machine (optional extra: trajforge[ray]).

Each task rebuilds the shard job from plain data (the config dict, the run directory, a shard index) and
writes its shard exactly as the other executors do, so resume, stage hashes and manifests behave the same.
The run directory must be on a filesystem every Ray node can reach. Endpoint limits (max_concurrency, rpm,
tpm) are divided among the concurrent workers, so together they stay within each endpoint's budget.

STYLE: an executor only decides where `job.run_all` runs and shows progress; reading, processing, writing
and done-ness of a shard are the shard job's (pipeline/shardjob.py).
"""

import asyncio
import socket
from pathlib import Path

from tqdm import tqdm

from pipeline import config as configlib
from pipeline.errors import UserError
from pipeline.llm.endpoints import share_endpoint_limits

PROBE_TIMEOUT_S = 5


def _shard_task(name: str, data: dict, config_path: str, run_dir: str, k: int) -> int:
    from pipeline.shardjob import ShardJob

    job = ShardJob.build(name, configlib.Config(data, Path(config_path)), Path(run_dir))
    asyncio.run(job.run_all([k], lambda n: None))
    return k


def probe(address: str) -> None:
    """Ray retries an unreachable address for minutes; a plain TCP connect to its GCS port answers at once."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address!r}: expected HOST:PORT of the Ray head node")
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(f"Ray cluster is not reachable at {address}: {exc.strerror or exc}") from None


def connect(address: str | None):
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install -e '.[ray]'") from None
    if address and address != "auto":
        probe(address)
    try:
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=True,
                 logging_level="ERROR", configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a new local Ray instance"
        raise UserError(f"Ray cluster is not reachable at {where}: {str(exc).splitlines()[0]}") from None
    return ray


def prepare(options: dict) -> None:
    connect(options.get("address"))  # unreachable cluster: fail before any shard starts


def run(job, todo: list[int], options: dict) -> dict:
    ray = connect(options.get("address"))
    workers = max(1, min(len(todo), int(ray.cluster_resources().get("CPU", 1))))
    data = share_endpoint_limits(job.config.data, workers)
    task = ray.remote(num_cpus=1, max_retries=2)(_shard_task)
    run_dir = str(Path(job.run_dir).resolve())
    pending = [task.remote(job.name, data, str(job.config.path), run_dir, k) for k in todo]
    with tqdm(total=len(pending), desc=f"{job.name} (ray, {workers} workers)", unit="shard", dynamic_ncols=True) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(done)
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, UserError):
                    raise UserError(str(cause)) from None
                raise
            bar.update(1)
    return {}
