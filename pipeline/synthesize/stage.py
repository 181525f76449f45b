"""The synthesize stage: task rows from seeded program generators, from imported seed files and from LLM
task synthesis (validated blueprints, pipeline/synthesize/llm_tasks.py).

Its input is a plan of seeds, (generator, index), (seed source, row) or (llm_tasks entry, index), cut into
shards; each becomes at most one task. A generated task comes from an RNG seeded by (run seed, generator,
index), so the same config yields the same tasks however the run is sharded; an LLM task comes from cached
requests keyed by (entry, index, round), so a re-run asks nothing again.
"""

import asyncio
import random
from contextlib import AsyncExitStack, asynccontextmanager

from pipeline import __version__, environments
from pipeline.errors import UserError
from pipeline.jsonutil import content_hash
from pipeline.llm.endpoints import Endpoints, summed_stats
from pipeline.rowstats import shard_rows, summed
from pipeline.synthesize import seeds as seedlib
from pipeline.synthesize.explore import read_only_tools
from pipeline.synthesize.llm_tasks import LLMTaskSynthesizer
from pipeline.synthesize.generators import GENERATORS


class SynthesizeStage:
    name = "synthesize"
    output_kind = "task"

    def __init__(self, config, stage_hash: str):
        self.config = config
        self.stage_hash = stage_hash
        self.seed = config["run"]["seed"]
        self.clients = {}
        self.llm: LLMTaskSynthesizer | None = None

    @asynccontextmanager
    async def open(self, run_dir):
        """Open the config's environments (every seed task's tools must exist in them) and the proposers' and
        reviewers' endpoints when LLM task synthesis is configured."""
        specs = self.config["synthesize"]["llm_tasks"]
        names = [s["endpoint"] for s in specs] + [r["endpoint"] for s in specs for r in s["reviewers"]]
        async with AsyncExitStack() as stack:
            toolbox = environments.Toolbox()
            if self.config["environments"]:
                toolbox = await stack.enter_async_context(environments.opened(self.config, run_dir, self.name))
            self.check_tools(toolbox)
            if names:
                self.clients = await stack.enter_async_context(Endpoints(self.config["endpoints"], names, run_dir))
                self.llm = LLMTaskSynthesizer(self.config, self.clients, toolbox)
            yield
        self.clients, self.llm = {}, None

    def check_tools(self, toolbox) -> None:
        """A seed task naming a tool that no environment has fails the stage before any work, naming the row;
        so does an explore step over an environment without read-only tools."""
        for position, spec in enumerate(self.config["synthesize"]["seeds"]):
            for index in range(len(seedlib.load_rows(spec["path"], spec["split"], spec.get("limit")))):
                content, _ = seedlib.seed_content(spec, index)
                if content is not None:
                    toolbox.check_task(content, f"synthesize.seeds[{position}] ({spec['path']}, row {index})")
        for position, spec in enumerate(self.config["synthesize"]["llm_tasks"]):
            if "environment" in spec and spec["explore"]["max_calls"] and not read_only_tools(toolbox, spec["environment"]):
                raise UserError(f"synthesize.llm_tasks[{position}].explore: environment '{spec['environment']}' has no read-only "
                                "tools to explore (annotate them readOnlyHint, list them in read_only_tools, or @tool(read_only=True))")

    def stats(self) -> dict:
        """LLM requests of this invocation and the blueprint funnel, for the stage summary."""
        totals = summed_stats(self.clients)
        if self.llm is not None:
            totals["funnels"] = {"llm_tasks": dict(self.llm.counts)}
        return totals

    @staticmethod
    def summarize(paths) -> dict:
        """The summary of finished task shards `paths`."""
        return summed(paths, shard_rows)

    def plan(self) -> list[list[dict]]:
        if self.config.data.get("import"):  # the run imports its trajectories: its shards are the source's records
            from pipeline.ingest import stage as ingest

            return ingest.plan(self.config)
        section = self.config["synthesize"]
        if not section["generators"] and not section["seeds"] and not section["llm_tasks"]:
            raise UserError("synthesize: configure at least one of synthesize.generators, synthesize.seeds or synthesize.llm_tasks "
                            "(or an `import` section, to verify trajectories from elsewhere)")
        items = []
        for position, spec in enumerate(section["generators"]):
            items += [{"generator": spec["name"], "position": position, "index": i} for i in range(spec["count"])]
        for position, spec in enumerate(section["seeds"]):
            seedlib.check_mapping(spec, position)
            count = len(seedlib.load_rows(spec["path"], spec["split"], spec.get("limit")))
            items += [{"seeds": spec["name"], "position": position, "index": i} for i in range(count)]
        for position, spec in enumerate(section["llm_tasks"]):
            items += [{"llm_tasks": spec["name"], "position": position, "index": i} for i in range(spec["count"])]
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

    async def make_task(self, item: dict) -> dict | None:
        """A task row, or None for a seed row that cannot become a valid task (skipped and logged) or a
        blueprint that was rejected (counted and logged)."""
        if "generator" in item:
            content = self.generate(item)
        elif "llm_tasks" in item:
            content = await self.llm.make(item)
            if content is None:
                return None
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
        async def one(item):
            task = await self.make_task(item)
            progress(1)
            return task

        made = await asyncio.gather(*(one(item) for item in items))
        tasks = [task for task in made if task is not None]
        return self.llm.drop_duplicates(tasks) if self.llm else tasks
