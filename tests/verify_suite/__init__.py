"""The labeled verification suite: good program-teacher rows of all seven generators in all four formats (as
made, and with final answers phrased as LLM teachers phrase them), and corrupted copies in every defect class.
Deterministic: each corruption draws from an RNG seeded by (class, generator, format, seed).

    from tests.verify_suite import cases
    for case in cases(seeds=(1,)):
        case.label, case.kind, case.row      # "good" / "corrupt", the class, the row
"""

import random
import re
from dataclasses import dataclass

from pipeline.jsonutil import content_hash
from tests.verify_suite import action_defects, answer_defects, structure_defects, text_defects
from tests.verify_suite.rows import FORMAT_NAMES, GENERATOR_NAMES, SEEDS, base

DEFECTS = {**answer_defects.DEFECTS, **structure_defects.DEFECTS, **action_defects.DEFECTS, **text_defects.DEFECTS}
GOOD = {"program": lambda row, ctx: row, **text_defects.GOOD}

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
PLACES = ["North", "South", "East", "West", "Central", "Lisbon", "Oslo", "Quito", "Hanoi", "Accra", "Perth",
          "12 Harbor Road, Lakeside", "200 Mill Lane, Fairview"]


@dataclass
class Case:
    label: str  # "good" or "corrupt"
    kind: str  # "program", "phrased:<template>" or the defect class
    generator: str
    fmt: str
    seed: int
    row: dict


class Context:
    """What a corruption may draw on: its RNG, rows of other tasks, the entities of a row's world."""

    def __init__(self, rng: random.Random, generator: str, fmt: str, seed: int):
        self.rng, self.generator, self.fmt, self.seed = rng, generator, fmt, seed

    def other(self, row: dict, fmt: str | None = None) -> dict:
        """A row of a task with other tools (or, for the same generator, another task)."""
        tools = set(row["meta"]["tools"])
        others = [g for g in GENERATOR_NAMES if g != self.generator]
        for name in self.rng.sample(others, len(others)):
            candidate = base(name, self.seed, fmt or row["format"])
            if set(candidate["meta"]["tools"]) != tools:
                return candidate
        return base(self.generator, self.seed % 3 + 1, fmt or row["format"])

    def entities(self, row: dict) -> set[str]:
        truth = str(row["ground_truth"]["answer"])
        if truth in MONTHS:
            return set(MONTHS)
        if truth in WEEKDAYS:
            return set(WEEKDAYS)
        documents = (row["environment"] or {}).get("documents")
        if documents:
            return {d["title"] for d in documents if d["title"] != truth and not re.search(re.escape(d["title"]), truth)}
        return set(PLACES)


def _rng(*key) -> random.Random:
    return random.Random(int(content_hash(*key, length=16), 16))


def cases(seeds=SEEDS, generators=GENERATOR_NAMES, formats=FORMAT_NAMES, kinds=None) -> list[Case]:
    """Every good and corrupted case over the given bases (kinds: a subset of GOOD and DEFECTS names)."""
    out = []
    for seed in seeds:
        for generator in generators:
            for fmt in formats:
                for label, table in (("good", GOOD), ("corrupt", DEFECTS)):
                    for kind, make in table.items():
                        if kinds is not None and kind not in kinds:
                            continue
                        ctx = Context(_rng(kind, generator, fmt, seed), generator, fmt, seed)
                        row = make(base(generator, seed, fmt), ctx)
                        if row is not None:
                            out.append(Case(label, kind, generator, fmt, seed, row))
    return out
