"""The labeled suite (tests/verify_suite) is deterministic and covers every class in every format, and the
program checks meet the targets on it: >= 99% of corrupted rows rejected, >= 98% of good rows kept
(scripts/bench_verify.py prints the figures per class, over more seeds)."""

from collections import defaultdict

from pipeline.jsonutil import canonical_json
from scripts.bench_verify import KEEP_TARGET, REJECT_TARGET, stage
from tests.verify_suite import DEFECTS, GOOD, cases
from tests.verify_suite.rows import FORMAT_NAMES, GENERATOR_NAMES

FORMAT_SPECIFIC = {"codeact_invalid_call": {"codeact"}, "step_ids": {"function_calling"}, "tool_call_id_mismatch": {"function_calling"},
                   "invalid_tool_call": set(FORMAT_NAMES) - {"codeact"}}


def test_the_suite_is_deterministic():
    first = [canonical_json(c.row) for c in cases(seeds=(2,), generators=("arithmetic", "store_refunds"))]
    again = [canonical_json(c.row) for c in cases(seeds=(2,), generators=("arithmetic", "store_refunds"))]
    assert first == again


def test_every_class_has_rows_in_every_format_it_applies_to():
    formats = defaultdict(set)
    generators = {c.generator for c in cases(seeds=(1,), kinds={"program"})}
    for case in cases(seeds=(1,)):
        formats[case.kind].add(case.fmt)
    assert generators == set(GENERATOR_NAMES)
    for kind in [*DEFECTS, *GOOD]:
        assert formats[kind] == FORMAT_SPECIFIC.get(kind, set(FORMAT_NAMES)), kind


def test_program_checks_meet_the_targets_on_the_suite():
    verifier = stage()
    outcome = {"good": [], "corrupt": []}
    missed = []
    for case in cases(seeds=(1,)):
        right = verifier.verify_row(case.row)["passed"] is (case.label == "good")
        outcome[case.label].append(right)
        if not right:
            missed.append((case.label, case.kind, case.generator, case.fmt))
    assert sum(outcome["corrupt"]) / len(outcome["corrupt"]) >= REJECT_TARGET, missed
    assert sum(outcome["good"]) / len(outcome["good"]) >= KEEP_TARGET, missed
