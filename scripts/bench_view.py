"""Benchmark `trajforge view`: the list view of a 100,000-row run answering filtered pages.

    .venv/bin/python scripts/bench_view.py                   # 100,000 rows (target: a filtered page in < 500 ms)
    .venv/bin/python scripts/bench_view.py --rows 1000000 --keep /tmp/bench-view   # keep (and reuse) the run

The rows are real: a program-teacher run of the quickstart generators (with self-reflected copies and a tight
`limits` check, so there are failed rows, errors and lineage to filter by) is made by the CLI, then its verified
rows are replicated under new ids into shards of 1,000 rows. The viewer runs as a user starts it
(`trajforge view RUN --port 0`, a separate process) and is asked over HTTP: the first request builds the stage's
catalog (printed as the cold figure), then each filtered URL is asked several times.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import rundir, shards  # noqa: E402

ROWS_PER_SHARD = 1000
QUERIES = ["outcome=failed", "outcome=failed&check=limits", "domain=sql&format=react", "q=database",
           "error=tool+error&page=3", "kind=reflection&outcome=passed", "outcome=failed&check=answer&q=price&page=2",
           "source=program&domain=arithmetic&format=cota&page=40"]


def real_run(folder: Path) -> Path:
    """A program-teacher run (synthesize, sample, verify) made by the CLI."""
    data = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    data.pop("endpoints", None)
    data["run"]["rows_per_shard"] = 20
    data["sample"]["teachers"] = [t for t in data["sample"]["teachers"] if t["policy"] == "program"]
    data["sample"]["reflection"] = {"fraction": 0.2}
    for gen in data["synthesize"]["generators"]:
        gen["count"] = 15
    for check in data["verify"]["checks"]:
        if check["name"] == "limits":
            check["options"] = {"max_steps": 3}
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    run = folder / "source"
    subprocess.run([sys.executable, "-m", "pipeline", "run", str(config), "--run-dir", str(run), "--stages", "synthesize,sample,verify"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return run


def replicate(source: Path, target: Path, rows: int) -> None:
    """`rows` verified rows in shards of ROWS_PER_SHARD: the source's rows over and over, each copy a new id."""
    base = pa.concat_tables(pq.read_table(p) for p in rundir.stage_files(source, "verify"))
    folder = target / "verified"
    folder.mkdir(parents=True, exist_ok=True)
    (target / "config.yaml").write_text((source / "config.yaml").read_text())
    for k in range(-(-rows // ROWS_PER_SHARD)):
        n = min(ROWS_PER_SHARD, rows - k * ROWS_PER_SHARD)
        picked = base.take(pa.array([(k * ROWS_PER_SHARD + i) % base.num_rows for i in range(n)]))
        copy = pa.array([f"-copy{k:05d}{i:04d}" for i in range(n)])
        picked = picked.set_column(picked.schema.get_field_index("id"), "id", pc.binary_join_element_wise(picked["id"], copy, ""))
        shards.write_table_atomic(folder / shards.shard_name(k), picked)


def fetch(url: str) -> float:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as reply:
        reply.read()
        assert reply.status == 200
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="times each filtered URL is asked")
    parser.add_argument("--keep", type=Path, help="build the run here (reused when it already holds --rows rows)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-view-"))
    folder.mkdir(parents=True, exist_ok=True)
    run = folder / "run"
    have = sum(pq.read_metadata(p).num_rows for p in rundir.stage_files(run, "verify")) if (run / "verified").exists() else 0
    if have != args.rows:
        began = time.perf_counter()
        source = real_run(folder)
        replicate(source, run, args.rows)
        print(f"built {args.rows:,} verified rows from {sum(pq.read_metadata(p).num_rows for p in rundir.stage_files(source, 'verify'))} "
              f"program-teacher rows in {time.perf_counter() - began:.1f} s: {run}")
    size = sum(p.stat().st_size for p in rundir.stage_files(run, "verify"))
    print(f"run: {args.rows:,} rows in {len(rundir.stage_files(run, 'verify'))} shards, {size / 1e6:.0f} MB of Parquet")

    viewer = subprocess.Popen([sys.executable, "-m", "pipeline", "view", str(run), "--port", "0"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = viewer.stdout.readline().split()[2]
        cold = fetch(f"{base}/stage/verify")
        print(f"first list page (reads the shards' filter columns into the catalog): {cold * 1000:.0f} ms")
        worst, medians = 0.0, []
        for query in QUERIES:
            times = [fetch(f"{base}/stage/verify?{query}") for _ in range(args.repeat)]
            medians.append(statistics.median(times))
            worst = max(worst, max(times))
            print(f"  ?{query:<50} median {statistics.median(times) * 1000:6.0f} ms   max {max(times) * 1000:6.0f} ms")
        row_id = pq.read_table(rundir.stage_files(run, "verify")[-1], columns=["id"])["id"][-1].as_py()
        row = statistics.median(fetch(f"{base}/stage/verify/row/{row_id}") for _ in range(args.repeat))
        print(f"one trajectory page: median {row * 1000:.0f} ms")
        print(f"filtered list page of {args.rows:,} rows: median {statistics.median(medians) * 1000:.0f} ms, "
              f"worst {worst * 1000:.0f} ms (target: < 500 ms)")
    finally:
        viewer.terminate()
        viewer.wait(20)


if __name__ == "__main__":
    main()
