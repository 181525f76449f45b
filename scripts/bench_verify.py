"""Measure the program checks on the labeled suite (tests/verify_suite): per class, how many corrupted rows
are rejected and how many good rows are kept, with every registered check on and no judges.

    .venv/bin/python scripts/bench_verify.py                 # seeds 1-3: every generator x format x class
    .venv/bin/python scripts/bench_verify.py --seeds 1 --misses 3   # one seed; show 3 missed rows per class

Prints one line per class (rows, fraction rejected or kept, the checks that fired most) and the totals, and
exits 1 when the targets (>= 99% of corrupted rows rejected, >= 98% of good rows kept) are not met.
"""

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import config as configlib  # noqa: E402
from pipeline.verify.checks import CHECKS  # noqa: E402
from pipeline.verify.stage import VerifyStage  # noqa: E402
from tests.verify_suite import cases  # noqa: E402

REJECT_TARGET, KEEP_TARGET = 0.99, 0.98


def stage() -> VerifyStage:
    data = {"run": {}, "synthesize": {"generators": [{"name": "arithmetic", "count": 1}]},
            "verify": {"checks": [{"name": name} for name in CHECKS]}, "endpoints": {}}
    return VerifyStage(configlib.Config(configlib.validate_data(data, "bench"), None), "bench")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated task seeds (default 1,2,3)")
    parser.add_argument("--misses", type=int, default=0, help="print up to N wrongly judged rows per class")
    args = parser.parse_args()
    began = time.perf_counter()
    suite = cases(seeds=tuple(int(s) for s in args.seeds.split(",")))
    built = time.perf_counter() - began
    verifier = stage()
    outcome, fired, wrong = defaultdict(list), defaultdict(Counter), defaultdict(list)
    began = time.perf_counter()
    for case in suite:
        verified = verifier.verify_row(case.row)
        right = verified["passed"] is (case.label == "good")
        outcome[(case.label, case.kind)].append(right)
        failed = [c for c in verified["checks"] if not c["passed"]]
        fired[(case.label, case.kind)].update(c["name"] for c in failed)
        if not right:
            wrong[(case.label, case.kind)].append((case, failed))
    seconds = time.perf_counter() - began
    print(f"{'class':<28} {'rows':>5} {'fraction':>9}  checks that failed rows (most often first)")
    totals = {"good": [0, 0], "corrupt": [0, 0]}
    for label in ("corrupt", "good"):
        print(f"-- {'rejected' if label == 'corrupt' else 'kept'} --")
        for (lab, kind), results in sorted(outcome.items()):
            if lab != label:
                continue
            totals[label][0] += sum(results)
            totals[label][1] += len(results)
            top = ", ".join(f"{name} {n}" for name, n in fired[(lab, kind)].most_common(4))
            print(f"{kind:<28} {len(results):>5} {sum(results) / len(results):>9.3f}  {top}")
            for case, failed in wrong[(lab, kind)][: args.misses]:
                print(f"    missed: {case.generator}/{case.fmt}/seed {case.seed}: final answer {case.row.get('final_answer')!r}; "
                      f"failed: {[(c['name'], c['detail']) for c in failed][:3]}")
    rejected = totals["corrupt"][0] / totals["corrupt"][1]
    kept = totals["good"][0] / totals["good"][1]
    print(f"corrupted rows rejected: {totals['corrupt'][0]}/{totals['corrupt'][1]} = {rejected:.4f} (target >= {REJECT_TARGET})")
    print(f"good rows kept:          {totals['good'][0]}/{totals['good'][1]} = {kept:.4f} (target >= {KEEP_TARGET})")
    print(f"built {len(suite)} rows in {built:.1f}s, verified in {seconds:.1f}s ({1000 * seconds / len(suite):.1f} ms/row)")
    return 0 if rejected >= REJECT_TARGET and kept >= KEEP_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
