"""Plugins: an installed package (a real dist-info with entry points, on the path of a trajforge process)
provides a generator, a check, an environment and an export view; configs name them like built-ins and
`trajforge list` says where each comes from."""

import json
import os
import subprocess
import sys
import textwrap

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline import shards
from tests.conftest import ROOT

PACKAGE = '''
import pyarrow as pa

from pipeline.environments.base import Environment
from pipeline.synthesize.generators.base import Generator, step, task


def make(rng, lo, hi):
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return task(f"What is {a} times {b}?", ["calculator"], a * b, [step("I multiply.", "calculator", expression=f"{a} * {b}")], "{s0}", 1)


GENERATOR = Generator("times_table", "arithmetic", ("calculator",), make, "Times-table questions.")


def check_short(row, options):
    steps = len(row["steps"])
    return {"name": "short", "passed": steps <= options["max_steps"], "detail": f"{steps} steps (at most {options['max_steps']})"}


check_short.default_options = {"max_steps": 3}


class Counter(Environment):
    def __init__(self, name, options):
        super().__init__()
        self.name, self.start = name, options.get("start", 0)

    def open(self):
        self.add_tool("next", "The next number.", {"type": "object", "properties": {}}, lambda args, env: str(env.resource(self.name, self.resource).bump()))

    def resource(self, env):
        return Count(self.start)


class Count:
    def __init__(self, start):
        self.value = start

    def bump(self):
        self.value += 1
        return self.value


class view:
    SCHEMA = pa.schema([("id", pa.string()), ("instruction", pa.string())])

    @staticmethod
    def build(rows, context):
        return [{"id": r["id"], "instruction": r["instruction"]} for r in rows]
'''

ENTRY_POINTS = """
[trajforge.generators]
times_table = tf_demo_plugin:GENERATOR

[trajforge.checks]
short = tf_demo_plugin:check_short

[trajforge.environments]
counter = tf_demo_plugin:Counter

[trajforge.views]
instructions = tf_demo_plugin:view
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder holding the package and its dist-info, as pip would install it."""
    folder = tmp_path_factory.mktemp("site")
    (folder / "tf_demo_plugin.py").write_text(textwrap.dedent(PACKAGE))
    info = folder / "tf_demo_plugin-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tf-demo-plugin\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return folder


def trajforge(site, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)])}
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_list_shows_where_each_component_comes_from(site):
    generators = trajforge(site, "list", "generators").stdout
    assert "times_table    domain=arithmetic" in generators and "[plugin tf-demo-plugin 0.3]" in generators
    assert "arithmetic     domain=arithmetic" in generators and "[builtin]" in generators
    assert "short            [plugin tf-demo-plugin 0.3]" in trajforge(site, "list", "checks").stdout
    assert "instructions     [plugin tf-demo-plugin 0.3]" in trajforge(site, "list", "views").stdout
    assert "counter          [plugin tf-demo-plugin 0.3]" in trajforge(site, "list", "environments").stdout


def test_a_config_uses_plugin_components_by_name(site, tmp_path):
    task = {"domain": "count", "instruction": "Count twice.", "tools": ["cnt.next"], "environment": {}, "ground_truth": {"answer": 12},
            "solution": {"steps": [{"thought": "one", "tool": "cnt.next", "arguments": {}}, {"thought": "two", "tool": "cnt.next", "arguments": {}}],
                         "answer": "{s1}"}, "difficulty": 2, "meta": {}}
    (tmp_path / "count.jsonl").write_text(json.dumps(task) + "\n")
    data = {"run": {"name": "plugins"},
            "environments": {"cnt": {"plugin": "counter", "options": {"start": 10}}},
            "synthesize": {"generators": [{"name": "times_table", "count": 3}], "seeds": [{"name": "count", "path": str(tmp_path / "count.jsonl")}]},
            "sample": {"teachers": [{"name": "program", "policy": "program", "formats": ["function_calling"]}]},
            "verify": {"checks": [{"name": "schema"}, {"name": "answer"}, {"name": "replay"}, {"name": "short", "options": {"max_steps": 2}}]},
            "curate": {"validation_fraction": 0.0, "views": ["instructions"]}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    done = trajforge(site, "run", tmp_path / "config.yaml", "--run-dir", tmp_path / "run")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [r for p in sorted((tmp_path / "run" / "verified").glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")]
    short = {r["domain"]: next(c for c in r["checks"] if c["name"] == "short") for r in rows}
    times = [r for r in rows if r["domain"] == "arithmetic"]
    assert len(times) == 3 and all(r["passed"] for r in times) and short["arithmetic"]["detail"] == "2 steps (at most 2)"
    counted = next(r for r in rows if r["domain"] == "count")
    assert [s["observation"] for s in counted["steps"][:2]] == ["11", "12"] and counted["final_answer"] == "12"
    assert short["count"] == {"name": "short", "passed": False, "detail": "3 steps (at most 2)"} and not counted["passed"]
    [view] = (tmp_path / "run" / "dataset" / "instructions").glob("*.parquet")
    assert sorted(pq.read_table(view).column("instruction").to_pylist()) == sorted(r["instruction"] for r in times)


def test_an_unknown_plugin_name_is_a_config_error(site, tmp_path):
    data = {"run": {"name": "plugins"}, "environments": {"cnt": {"plugin": "countr"}}, "synthesize": {"generators": [{"name": "times_table", "count": 1}]}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    done = trajforge(site, "synthesize", tmp_path / "config.yaml", "--run-dir", tmp_path / "run")
    assert done.returncode == 2 and "environments.cnt.plugin: unknown environment plugin 'countr' (did you mean 'counter'?)" in done.stderr
