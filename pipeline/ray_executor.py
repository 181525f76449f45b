"""Run a row stage's shards as Ray tasks, for runs that outgrow one machine (optional extra: trajforge[ray]).

Each task builds the stage from plain data (the config dict, the run directory, a shard index) and writes its
shard exactly as the local executor does, so resume, stage hashes and manifests behave the same. The run
directory must be on a filesystem every Ray node can reach. Endpoint limits (max_concurrency, rpm, tpm) are
divided among the concurrent workers, so together they stay within each endpoint's budget.
"""

import asyncio
import copy
import math
import socket
from pathlib import Path

from tqdm import tqdm

from pipeline import config as configlib
from pipeline.errors import UserError

SHARED_LIMITS = ("max_concurrency", "rpm", "tpm")
PROBE_TIMEOUT_S = 5


def share_endpoint_limits(data: dict, workers: int) -> dict:
    """A copy of the config whose endpoint limits are each worker's share (at least 1)."""
    data = copy.deepcopy(data)
    for profile in data.get("endpoints", {}).values():
        for key in SHARED_LIMITS:
            if isinstance(profile.get(key), (int, float)) and profile[key] > 0:
                profile[key] = max(1, math.floor(profile[key] / workers))
    return data


def _shard_task(name: str, data: dict, config_path: str, run_dir: str, k: int) -> int:
    from pipeline import runner

    job = runner.ShardJob.build(name, configlib.Config(data, Path(config_path)), Path(run_dir))
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


def run_shards(name: str, config: configlib.Config, run_dir: Path, todo: list[int], address: str | None) -> None:
    ray = connect(address)
    workers = max(1, min(len(todo), int(ray.cluster_resources().get("CPU", 1))))
    data = share_endpoint_limits(config.data, workers)
    task = ray.remote(num_cpus=1, max_retries=2)(_shard_task)
    pending = [task.remote(name, data, str(config.path), str(Path(run_dir).resolve()), k) for k in todo]
    with tqdm(total=len(pending), desc=f"{name} (ray, {workers} workers)", unit="shard", dynamic_ncols=True) as bar:
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
