"""What checking finished shards against their done-markers costs a resumed run (pipeline/shards.py `examine`).

    python scripts/bench_resume.py [--rows 200000] [--rows-per-shard 10000]

Writes verified shards of generated rows (as scripts/bench_curate.py does), then times, over all of them: the
check a resumed stage makes the first time (size, footer, sha256), the same check again in the same process
(remembered), the manifest's check (size and footer, no hash), and reading every footer alone (what telling a
finished shard cost before). Prints seconds and throughput. The shards were just written, so they are in the
page cache: a resume after a reboot reads them from disk once more (the first check is then disk-bound).
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_curate import generate  # noqa: E402

from pipeline import shards  # noqa: E402


def timed(label: str, paths: list[Path], check, size: int) -> None:
    began = time.perf_counter()
    results = [check(p) for p in paths]
    seconds = time.perf_counter() - began
    assert all(results), f"{label}: a shard did not pass"
    print(f"{label:<44} {seconds:7.3f} s  ({size / 1e6 / max(seconds, 1e-9):8.0f} MB/s, {seconds / len(paths) * 1e3:6.2f} ms per shard)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rows-per-shard", type=int, default=10_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    try:
        generate(root / "verified", args.rows, args.rows_per_shard)
        paths = sorted((root / "verified").glob("part-*.parquet"))
        size = sum(p.stat().st_size for p in paths)
        print(f"{len(paths)} shards, {args.rows} rows, {size / 1e6:.0f} MB")
        shards._verified.clear()
        timed("first check (size, footer, sha256)", paths, lambda p: shards.examine(p)[0], size)
        timed("again in the same process (remembered)", paths, lambda p: shards.examine(p)[0], size)
        shards._verified.clear()
        timed("manifest's check (size, footer)", paths, lambda p: shards.examine(p, checksum=False)[0], size)
        timed("footer alone (the check before)", paths, lambda p: shards.footer(p), size)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
