"""Each new program check on good and corrupted rows of every format it applies to: the good program-teacher
row passes it, the row with its defect (made by the labeled suite's corruption, tests/verify_suite) fails it."""

import pytest

from pipeline.verify.checks import CHECKS, DEFAULT_OPTIONS
from tests.verify_suite import DEFECTS, Context, _rng
from tests.verify_suite.rows import FORMAT_NAMES, base

ALL = FORMAT_NAMES
# check -> (defect class, formats it applies to, generators to try)
CASES = {
    "grounding": ("answered_without_acting", ALL, ("arithmetic", "doc_search", "kb_multihop")),
    "consistency": ("contradicted_observation", ALL, ("arithmetic", "python_compute", "units_dates")),
    "context": ("context_user_turn", ALL, ("arithmetic", "store_refunds")),
    "mask": ("wrong_mask", ALL, ("arithmetic", "sql_table")),
    "code_safety": ("unsafe_code", ALL, ("python_compute",)),
    "tool_calls": ("codeact_invalid_call", ("codeact",), ("arithmetic", "python_compute", "store_refunds")),
    "step_ids": ("step_ids", ("function_calling",), ("arithmetic", "store_refunds")),
    "secrets": ("secrets", ALL, ("arithmetic", "kb_multihop")),
    "format_junk": ("format_junk", ALL, ("arithmetic", "units_dates")),
    "refusal": ("refusal", ALL, ("arithmetic", "doc_search")),
    "answer": ("hedged_answer", ALL, ("arithmetic", "doc_search")),
}


def run_check(name: str, row: dict) -> dict:
    options = {**DEFAULT_OPTIONS.get(name, {}), "values": {}} if name == "secrets" else dict(DEFAULT_OPTIONS.get(name, {}))
    if name == "replay":
        options.update(max_observation_chars=4000, sandbox=None)
    return CHECKS[name](row, options)


def params():
    for check, (defect, formats, generators) in CASES.items():
        for fmt in formats:
            for generator in generators:
                yield pytest.param(check, defect, fmt, generator, id=f"{check}-{fmt}-{generator}")


@pytest.mark.parametrize("check,defect,fmt,generator", list(params()))
def test_check_keeps_the_good_row_and_rejects_the_defect(check, defect, fmt, generator):
    good = base(generator, 1, fmt)
    assert run_check(check, good)["passed"], run_check(check, good)
    corrupted = DEFECTS[defect](base(generator, 1, fmt), Context(_rng(defect, generator, fmt, 1), generator, fmt, 1))
    assert corrupted is not None
    result = run_check(check, corrupted)
    assert not result["passed"], f"{defect} not caught by {check}: {result}"
