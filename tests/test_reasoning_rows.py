"""A reasoning-model teacher end to end through the CLI, against the fake OpenAI server over real HTTP: rows keep
the reasoning as reasoning_content and out of content, pass format_junk (a leaked </think> fails it), the agent
loop sends a byte-identical prefix every step (so prompt caching hits, and the cost says so), token ids and
logprobs land in the tokens column and the rl view, and the views render reasoning as the Qwen3 template and
the text conventions say."""

import importlib.util
import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline import cli, config as configlib, shards
from tests.fake_openai import FakeOpenAI, calculator_solver
from tests.helpers import make_trajectory, rewrite_shard
from tests.solution_teacher import THOUGHT, SolutionTeacher
from tests.test_consumer import render as render_with

QWEN3 = (Path(importlib.util.find_spec("trl").origin).parent / "chat_templates" / "qwen3.jinja").read_text()  # the trl wheel's file
STAGES = "synthesize,sample,verify"


def config(server, fmt="function_calling", tasks=3, views=(), **endpoint) -> dict:
    return {
        "run": {"name": "t", "rows_per_shard": 2},
        "endpoints": {"teacher": {"base_url": server.base_url, "model": "fake-model", "max_retries": 1, "timeout_s": 5, **endpoint}},
        "synthesize": {"generators": [{"name": "arithmetic", "count": tasks}]},
        "sample": {"teachers": [{"name": "teacher", "policy": "llm", "endpoint": "teacher", "formats": [fmt], "max_steps": 6}]},
        "curate": {"validation_fraction": 0.0, "views": list(views)},
    }


def run(tmp_path: Path, data: dict, stages: str = STAGES, *extra) -> int:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return cli.main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--stages", stages, *extra])


def rows(tmp_path: Path, stage: str = "verified") -> list[dict]:
    return [r for p in sorted((tmp_path / "run" / stage).glob("part-*.parquet")) for r in shards.read_shard(p, "trajectory")]


def check(row: dict, name: str) -> dict:
    return next(c for c in row["checks"] if c["name"] == name)


def messages_as_sent(raw: bytes) -> str:
    """The `messages` array of a request body, exactly as its bytes arrived."""
    text = raw.decode()
    start = text.index('"messages":') + len('"messages":')
    start += len(text[start:]) - len(text[start:].lstrip())
    _, end = json.JSONDecoder().raw_decode(text, start)
    return text[start:end]


def teacher_server(tmp_path, **options):
    return FakeOpenAI(responder=SolutionTeacher(tmp_path / "run", **options), counting=True)


@pytest.mark.parametrize("fmt, think", [("function_calling", "reasoning_content"), ("function_calling", "reasoning"),
                                        ("function_calling", "tags"), ("react", "tags")])
def test_reasoning_rows_keep_the_trace_apart_and_pass_format_junk(tmp_path, fmt, think):
    with teacher_server(tmp_path, think=think) as server:
        assert run(tmp_path, config(server, fmt)) == 0
    out = rows(tmp_path)
    assert len(out) == 3
    for row in out:
        assistant = [m for m in row["messages"] if m["role"] == "assistant"]
        assert assistant and all(m["reasoning_content"] == THOUGHT for m in assistant)
        assert not any("think>" in (m.get("content") or "") for m in assistant)
        assert check(row, "format_junk")["passed"] and row["passed"], row["checks"]


def test_a_leaked_think_tag_in_content_fails_format_junk(tmp_path):
    with teacher_server(tmp_path, think="leaked") as server:
        assert run(tmp_path, config(server, reasoning="off")) == 0
    for row in rows(tmp_path):
        junk = check(row, "format_junk")
        assert not junk["passed"] and "'</think>'" in junk["detail"] and not row["passed"]


def test_each_step_resends_the_previous_request_byte_for_byte(tmp_path):
    """What makes prompt caching hit: the messages of step k+1 begin with exactly the bytes of step k's."""
    with teacher_server(tmp_path, think="reasoning_content") as server:
        assert run(tmp_path, config(server, "react", tasks=2)) == 0
    episodes: dict[str, list[str]] = {}
    for raw in server.raw_bodies:
        episodes.setdefault(json.loads(raw)["messages"][1]["content"], []).append(messages_as_sent(raw))
    assert len(episodes) == 2 and all(len(sent) >= 3 for sent in episodes.values())
    for sent in episodes.values():
        for before, after in zip(sent, sent[1:]):
            assert after.startswith(before[:-1]) and len(after) > len(before)
    assert all(b"reasoning_content" not in raw for raw in server.raw_bodies)  # reasoning_history: drop


def test_cached_prompt_tokens_make_the_recorded_cost_honest(tmp_path):
    prices = {"price_input_per_mtok": 3.0, "price_cached_input_per_mtok": 0.3, "price_output_per_mtok": 15.0}
    with teacher_server(tmp_path) as server:
        assert run(tmp_path, config(server, "react", tasks=2, **prices)) == 0
    out = rows(tmp_path, "trajectories")
    for row in out:
        usage = row["usage"]
        assert 0 < usage["cached_tokens"] < usage["prompt_tokens"]
        uncached = usage["prompt_tokens"] - usage["cached_tokens"]
        assert usage["cost_usd"] == pytest.approx((uncached * 3.0 + usage["cached_tokens"] * 0.3 + usage["completion_tokens"] * 15.0) / 1e6)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["stages"]["sample"]["spent_usd"] == pytest.approx(sum(r["usage"]["cost_usd"] for r in out))


def test_token_ids_and_logprobs_fill_the_tokens_column_and_the_rl_view(tmp_path):
    def tokens(path, body):
        return {"token_ids": [7, 8, 9], "logprobs": [("a", -0.5), ("b", -0.25), ("c", 0.0)], "prompt_token_ids": list(range(len(body["messages"])))}

    with FakeOpenAI(responder=SolutionTeacher(tmp_path / "run", think="reasoning_content", extra=tokens)) as server:
        data = config(server, views=["trl", "rl"], capture={"logprobs": True, "token_ids": True})
        assert run(tmp_path, data, STAGES + ",curate") == 0
        requests = [body for _, body, _ in server.completions]
    assert all(b["logprobs"] is True and b["return_token_ids"] is True for b in requests)
    for row in rows(tmp_path):
        assistant = [i for i, m in enumerate(row["messages"]) if m["role"] == "assistant"]
        assert [t["message_index"] for t in row["tokens"]] == assistant
        for entry in row["tokens"]:
            assert entry["token_ids"] == [7, 8, 9] and entry["logprobs"] == [-0.5, -0.25, 0.0] and entry["missing"] == []
            assert entry["prompt_token_ids"] == list(range(entry["message_index"]))  # the prompt that produced the message
    assert cli.main(["export", str(tmp_path / "run"), "--view", "rl", "--out", str(tmp_path / "rl")]) == 0
    loaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "rl" / "*.parquet"), split="train")
    assert len(loaded) == 3 and loaded[0]["tokens"][0]["token_ids"] == [7, 8, 9] and loaded[0]["score"] is not None
    assert loaded.features["tokens"].feature["logprobs"].feature.dtype == "float64"


def test_a_server_without_token_support_is_recorded_not_an_error(tmp_path):
    with teacher_server(tmp_path) as server:
        assert run(tmp_path, config(server, capture={"logprobs": True, "token_ids": True})) == 0
    for row in rows(tmp_path):
        assert row["error"] is None and row["passed"]
        assert all(e["missing"] == ["logprobs", "token_ids"] and e["token_ids"] is None for e in row["tokens"])


def test_views_render_reasoning_as_the_qwen3_template_and_the_text_conventions_say(tmp_path):
    with teacher_server(tmp_path, think="reasoning_content") as server:
        assert run(tmp_path, config(server, views=["trl", "sharegpt", "react"]), STAGES + ",curate") == 0
    dataset = tmp_path / "run" / "dataset"
    [trl] = datasets.load_dataset("parquet", data_files=str(dataset / "trl" / "*.parquet"), split="train").select([0])
    text = render_with(trl["messages"], trl["tools"], QWEN3)
    turns = [m for m in trl["messages"] if m["role"] == "assistant"]
    assert text.count(f"<think>\n{THOUGHT}\n</think>\n\n") == len(turns)  # tool turns follow the last user query
    assert text.rstrip().endswith(f"<think>\n{THOUGHT}\n</think>\n\n{turns[-1]['content']}<|im_end|>")
    [share] = datasets.load_dataset("parquet", data_files=str(dataset / "sharegpt" / "*.parquet"), split="train").select([0])
    assert share["conversations"][-1]["value"] == f"<think>\n{THOUGHT}\n</think>\n\n{turns[-1]['content']}"
    [react] = datasets.load_dataset("parquet", data_files=str(dataset / "react" / "*.parquet"), split="train").select([0])
    assert react["text"].count(f"<think>\n{THOUGHT}\n</think>") == len(turns)
    for view in ("sharegpt", "react"):
        assert cli.main(["export", str(tmp_path / "run"), "--view", view, "--reasoning", "drop", "--out", str(tmp_path / view)]) == 0
        dropped = datasets.load_dataset("parquet", data_files=str(tmp_path / view / "*.parquet"), split="train")
        assert THOUGHT not in json.dumps(dropped[0])


def test_without_reasoning_or_capture_rows_and_requests_are_as_before(tmp_path):
    with teacher_server(tmp_path) as server:
        assert run(tmp_path, config(server)) == 0
        requests = [body for _, body, _ in server.completions]
    assert all(set(b) == {"model", "messages", "tools", "temperature", "max_tokens", "seed"} for b in requests)
    for row in rows(tmp_path):
        assert row["tokens"] is None and not any("reasoning_content" in m for m in row["messages"])


def test_completion_mode_asks_and_stores_exactly_as_before(tmp_path):
    with FakeOpenAI(responder=calculator_solver) as server:
        assert run(tmp_path, config(server, "react", mode="completion")) == 0
        requests = [body for _, body, _ in server.completions]
    assert requests and all(set(b) == {"model", "prompt", "stop", "temperature", "max_tokens", "seed"} for b in requests)
    for row in rows(tmp_path):
        assert row["tokens"] is None and row["usage"]["cached_tokens"] is None and row["usage"]["reasoning_tokens"] is None
        assert not any("reasoning_content" in m for m in row["messages"])


def test_program_teacher_rows_fill_none_of_the_new_fields():
    row = make_trajectory("sql_table", 2, "function_calling")
    assert row["tokens"] is None and (row["usage"]["cached_tokens"], row["usage"]["reasoning_tokens"]) == (None, None)
    assert not any("reasoning_content" in m for m in row["messages"])


def test_new_endpoint_keys_at_their_defaults_keep_the_stage_hashes_of_older_configs(tmp_path):
    """A run directory's saved config from before these keys existed hashes like today's config."""
    current = configlib.load(Path(__file__).parents[1] / "configs" / "quickstart.yaml")
    older = json.loads(json.dumps(current.data))
    for profile in older["endpoints"].values():
        for key in ("reasoning", "reasoning_history", "capture", "price_cached_input_per_mtok", "batch_discount"):
            del profile[key]
    del older["curate"]["view_reasoning"]
    assert [configlib.Config(older, current.path).stage_hash(s) for s in configlib.STAGES] == \
        [current.stage_hash(s) for s in configlib.STAGES]
    assert configlib.differences(older, current.data) == []
    changed = configlib.load(Path(__file__).parents[1] / "configs" / "quickstart.yaml", ["endpoints.local.reasoning=off"])
    assert changed.stage_hash("sample") != current.stage_hash("sample") and changed.stage_hash("synthesize") == current.stage_hash("synthesize")


def as_written_before_tokens(path: Path) -> None:
    """Rewrite a trajectory shard as trajforge wrote it before the tokens column and the usage counts existed."""
    table = pq.read_table(path)
    old_usage = pa.struct([f for f in table.schema.field("usage").type if f.name not in ("cached_tokens", "reasoning_tokens")])
    table = table.drop_columns(["tokens"])
    table = table.set_column(table.schema.get_field_index("usage"), pa.field("usage", old_usage), table["usage"].cast(old_usage))
    rewrite_shard(path, table)


def test_shards_written_before_the_tokens_column_are_read_by_the_next_stages(tmp_path):
    with teacher_server(tmp_path) as server:
        data = config(server)
        assert run(tmp_path, data) == 0
        for path in (tmp_path / "run" / "trajectories").glob("part-*.parquet"):
            as_written_before_tokens(path)
        for path in (tmp_path / "run" / "verified").glob("*part-*"):
            path.unlink()  # verify reads the old trajectories again
        assert run(tmp_path, data, "verify") == 0
        for path in (tmp_path / "run" / "verified").glob("part-*.parquet"):
            as_written_before_tokens(path)
        assert run(tmp_path, data, "curate") == 0
    curated = datasets.load_dataset("parquet", data_files=str(tmp_path / "run" / "dataset" / "data" / "*.parquet"), split="train")
    assert len(curated) == 3 and curated[0]["tokens"] is None and curated[0]["usage"]["cached_tokens"] is None
