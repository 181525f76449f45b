"""The synthesize stage: task rows from seeded program generators and from imported seed files.

Its input is a plan of seeds, (generator, index) or (seed source, row), cut into shards; each becomes one task.
A generated task comes from an RNG seeded by (run seed, generator, index), so the same config yields the same
tasks however the run is sharded.
"""

import random

from pipeline import __version__
from pipeline.errors import UserError
from pipeline.jsonutil import content_hash
from pipeline.synthesize import seeds as seedlib
from pipeline.synthesize.generators import GENERATORS


class SynthesizeStage:
    name = "synthesize"
    output_kind = "task"

    def __init__(self, config, stage_hash: str):
        self.config = config
        self.stage_hash = stage_hash
        self.seed = config["run"]["seed"]

    def plan(self) -> list[list[dict]]:
        section = self.config["synthesize"]
        if not section["generators"] and not section["seeds"]:
            raise UserError("synthesize: configure at least one of synthesize.generators or synthesize.seeds")
        items = []
        for position, spec in enumerate(section["generators"]):
            items += [{"generator": spec["name"], "position": position, "index": i} for i in range(spec["count"])]
        for position, spec in enumerate(section["seeds"]):
            seedlib.check_mapping(spec, position)
            count = len(seedlib.load_rows(spec["path"], spec["split"], spec.get("limit")))
            items += [{"seeds": spec["name"], "position": position, "index": i} for i in range(count)]
        size = self.config["run"]["rows_per_shard"]
        return [items[i:i + size] for i in range(0, len(items), size)]

    def generate(self, item: dict) -> dict:
        spec = self.config["synthesize"]["generators"][item["position"]]
        generator = GENERATORS[item["generator"]]
        rng = random.Random(int(content_hash(self.seed, generator.name, item["index"]), 16))
        try:
            content = generator.make(rng, spec["min_difficulty"], spec["max_difficulty"])
        except ValueError as exc:
            raise UserError(f"synthesize.generators[{item['position']}]: {exc}") from None
        return {"domain": generator.domain, "source": f"program:{generator.name}", **content}

    def make_task(self, item: dict) -> dict | None:
        """A task row, or None for a seed row that cannot become a valid task (skipped and logged)."""
        if "generator" in item:
            content = self.generate(item)
        else:
            spec = self.config["synthesize"]["seeds"][item["position"]]
            content, reason = seedlib.seed_content(spec, item["index"])
            if content is None:
                seedlib.skip(spec, item["index"], reason)
                return None
        # The plan item is part of the id, so two items that happen to make the same task still get distinct
        # ids (ids are keys); equal content is caught by curate's dedup.
        return {"id": "task-" + content_hash(content, item, self.stage_hash), **content,
                "config_hash": self.stage_hash, "pipeline_version": __version__}

    def expected_outputs(self, inputs: int) -> int:
        return inputs

    async def process(self, items: list[dict], progress) -> list[dict]:
        tasks = []
        for item in items:
            task = self.make_task(item)
            if task is not None:
                tasks.append(task)
            progress(1)
        return tasks
