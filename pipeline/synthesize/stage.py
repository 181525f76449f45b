"""The synthesize stage: task rows from seeded program generators.

Its input is a plan of (generator, index) seeds cut into shards; each seed becomes one task, generated from
an RNG seeded by (run seed, generator, index), so the same config yields the same tasks however it is sharded.
"""

import random

from pipeline import __version__
from pipeline.errors import UserError
from pipeline.jsonutil import content_hash
from pipeline.synthesize.generators import GENERATORS


class SynthesizeStage:
    name = "synthesize"
    output_kind = "task"

    def __init__(self, config, stage_hash: str):
        self.config = config
        self.stage_hash = stage_hash
        self.seed = config["run"]["seed"]

    def plan(self) -> list[list[dict]]:
        seeds = []
        for position, spec in enumerate(self.config["synthesize"]["generators"]):
            for index in range(spec["count"]):
                seeds.append({"position": position, "generator": spec["name"], "index": index})
        size = self.config["run"]["rows_per_shard"]
        return [seeds[i:i + size] for i in range(0, len(seeds), size)]

    def make_task(self, seed: dict) -> dict:
        spec = self.config["synthesize"]["generators"][seed["position"]]
        generator = GENERATORS[seed["generator"]]
        rng = random.Random(int(content_hash(self.seed, generator.name, seed["index"]), 16))
        try:
            content = generator.make(rng, spec["min_difficulty"], spec["max_difficulty"])
        except ValueError as exc:
            raise UserError(f"synthesize.generators[{seed['position']}]: {exc}") from None
        content = {"domain": generator.domain, "source": f"program:{generator.name}", **content}
        # The seed is part of the id, so two seeds that happen to draw the same task still get distinct ids
        # (ids are keys); equal content is caught by curate's dedup.
        return {"id": "task-" + content_hash(content, seed, self.stage_hash), **content,
                "config_hash": self.stage_hash, "pipeline_version": __version__}

    def expected_outputs(self, inputs: int) -> int:
        return inputs

    async def process(self, seeds: list[dict], progress) -> list[dict]:
        tasks = []
        for seed in seeds:
            tasks.append(self.make_task(seed))
            progress(1)
        return tasks
