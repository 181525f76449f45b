"""`trajforge import`: trajectories trajforge did not sample (its own rows, OpenAI chat with tools and
tool_calls, ShareGPT with function calls, ATIF) become a run's trajectories, which verify, curate and publish
treat as sampled ones; unmappable records are counted with their line; rows that break the schema fail its
check."""

import json

import datasets
import pytest

from pipeline import schema, shards
from pipeline.ingest import CONVERSATIONS, build
from pipeline.ingest.source import Record
from pipeline.ingest.stage import map_record
from tests.conftest import run_cli
from tests.external_files import atif_document, openai_record, rows, sharegpt_record, write_jsonl

SPEC = {"name": "ext", "format": "openai", "domain": "imported", "fields": {}, "split": "train"}


def mapped(record, fmt: str = "openai") -> dict:
    row, reason = map_record(Record("x.jsonl:1", record), {**SPEC, "format": fmt}, "h")
    assert reason is None, reason
    return row


@pytest.mark.parametrize("make,fmt", [(openai_record, "openai"), (sharegpt_record, "sharegpt"), (atif_document, "atif")])
def test_each_format_maps_onto_the_same_trajectory(make, fmt):
    original = rows()[0]
    row = mapped(make(original), fmt)
    assert schema.errors("trajectory", row) == []
    assert [m["role"] for m in row["messages"]] == [m["role"] for m in original["messages"]]
    assert [(s["tool_name"], s["tool_arguments"], s["observation"]) for s in row["steps"]] == \
           [(s["tool_name"], s["tool_arguments"], s["observation"]) for s in original["steps"]]
    assert row["final_answer"] == original["final_answer"] and row["ground_truth"] == original["ground_truth"]
    assert row["meta"]["tools"] == original["meta"]["tools"] and row["format"] == "function_calling"


def test_openai_string_arguments_content_parts_and_parallel_calls():
    record = {"messages": [
        {"role": "developer", "content": "You are helpful."},
        {"role": "user", "content": [{"type": "text", "text": "Add 2+2 and 3+3."}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "calculator", "arguments": "{\"expression\": \"2+2\"}"}},
            {"id": "b", "type": "function", "function": {"name": "calculator", "arguments": "{\"expression\": \"3+3\"}"}}]},
        {"role": "tool", "tool_call_id": "a", "name": "calculator", "content": "4"},
        {"role": "tool", "tool_call_id": "b", "content": "6"},
        {"role": "assistant", "content": "4 and 6", "refusal": None}]}
    row = mapped(record)
    assert row["messages"][0] == {"role": "system", "content": "You are helpful."} and row["instruction"] == "Add 2+2 and 3+3."
    assert [(s["message_index"], s["tool_call_id"], s["observation"]) for s in row["steps"][:2]] == [(2, "a", "4"), (2, "b", "6")]
    assert row["messages"][2]["tool_calls"][0]["function"]["arguments"] == {"expression": "2+2"}
    assert row["source"] == "import:ext" and row["final_answer"] == "4 and 6"


@pytest.mark.parametrize("record,reason", [
    ({"foo": 1}, "no 'messages'"),
    ({"messages": [{"role": "narrator", "content": "x"}]}, "not a system, user"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "no user message"),
])
def test_unmappable_openai_records_say_why(record, reason):
    row, why = map_record(Record("x.jsonl:3", record), SPEC, "h")
    assert row is None and reason in why


def test_sharegpt_observation_without_a_call_is_unmappable():
    record = {"conversations": [{"from": "human", "value": "hi"}, {"from": "observation", "value": "4"}]}
    assert "answers no function call" in map_record(Record("s.json", record), {**SPEC, "format": "sharegpt"}, "h")[1]


def test_atif_is_read_with_its_models_and_copied_context_is_untrained():
    document = atif_document(rows()[0])
    document["steps"][2]["is_copied_context"] = True
    row = mapped(document, "atif")
    assert row["source"] == "llm:claude-test" and row["meta"]["untrained_messages"] == [2] and row["train_mask"][2] is False
    bad = {**document, "steps": [{**document["steps"][0], "step_id": 5}] + document["steps"][1:]}
    assert "not an ATIF trajectory" in map_record(Record("t.json", bad), {**SPEC, "format": "atif"}, "h")[1]


def test_a_row_that_maps_but_breaks_the_schema_is_kept_repaired():
    record = openai_record(rows()[0])
    record["messages"][2]["tool_calls"][0]["function"]["arguments"] = "{not json"
    row = mapped(record)
    assert schema.errors("trajectory", row) == [] and "schema_repair" in row["meta"]
    assert any("arguments" in p for p in row["meta"]["schema_repair"]["problems"])


def test_trajforge_rows_are_taken_as_they_are_less_what_verify_wrote():
    row = {**rows()[0], "checks": [{"name": "x", "passed": True, "detail": None}], "passed": True, "score": 1.0}
    back = mapped(row, "trajforge")
    assert back["checks"] is None and back["passed"] is None and back["messages"] == row["messages"]


def test_steps_of_a_conversation_with_a_user_reply():
    messages = [build.message("user", content="hi"), build.message("assistant", content="Which order?"),
                build.message("user", content="O1"), build.message("assistant", content="Done.")]
    steps, final = build.steps_of(messages)
    assert [s["action_type"] for s in steps] == ["ask_user", "final_answer"] and steps[0]["observation"] == "O1" and final == "Done."


def _import(source, fmt: str, run, *extra):
    return run_cli("import", source, "--format", fmt, "--run-dir", run, *extra, check=True)


def test_import_verify_curate_publish_end_to_end(tmp_path):
    external = rows()
    chat = tmp_path / "chat.jsonl"
    custom = {"messages": [{"role": "system", "content": "Use the tools."}, {"role": "user", "content": "Weather in Oslo?"},
                           {"role": "assistant", "tool_calls": [{"id": "w", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
                           {"role": "tool", "tool_call_id": "w", "content": "Oslo: 4 degrees, rain"},
                           {"role": "assistant", "content": "It is 4 degrees and raining in Oslo."}],
              "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]}
    wrong = openai_record(external[1])
    wrong["messages"][-1]["content"] = "It is probably 99."
    write_jsonl(chat, [openai_record(r) for r in external] + [custom, wrong], ["{not json", json.dumps({"foo": 1})])
    run = tmp_path / "run"
    imported = _import(chat, "openai", run, "--set", "run.rows_per_shard=3")
    assert "10 records -> 8 rows in 4 shard(s)" in imported.stdout
    assert "chat.jsonl:9: not valid JSON" in imported.stdout and "chat.jsonl:10: no 'messages' list" in imported.stdout

    run_cli("run", run, check=True)  # verify and curate, as for any run
    verified = [r for k in range(4) for r in shards.read_shard(run / "verified" / shards.shard_name(k), "trajectory")]
    by_task = {r["messages"][1]["content"]: r for r in verified}
    assert sum(r["passed"] for r in verified) == len(external) + 1
    weather = by_task["Weather in Oslo?"]
    assert weather["passed"] and "not replayed: get_weather" in next(c["detail"] for c in weather["checks"] if c["name"] == "replay")
    assert not by_task[wrong["messages"][1]["content"]]["passed"]
    replayed = [c for r in verified if r["meta"]["tools"] != ["get_weather"] for c in r["checks"] if c["name"] == "replay"]
    assert all(c["passed"] and c["detail"] == "every observation reproduced" for c in replayed if c is not None)

    out = tmp_path / "hub"
    run_cli("publish", run, "--dry-run", "--out", out, check=True)
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))
    published = list(loaded["train"]) + list(loaded.get("validation", []))
    assert len(published) == len(external) + 1
    assert {r["source"] for r in published} == {"llm:gpt-4o-mini", "import:imported"}
    assert isinstance(published[0]["messages"][0], dict) and isinstance(published[0]["tools"][0], dict)


@pytest.mark.parametrize("fmt", ["sharegpt", "atif"])
def test_sharegpt_and_atif_files_import_and_verify(tmp_path, fmt):
    external = rows()
    if fmt == "sharegpt":
        source = tmp_path / "sharegpt.json"
        source.write_text(json.dumps([sharegpt_record(r) for r in external]))
    else:
        source = tmp_path / "atif"
        source.mkdir()
        for i, row in enumerate(external):
            (source / f"trajectory-{i}.json").write_text(json.dumps(atif_document(row)))
        (source / "broken.json").write_text(json.dumps({"schema_version": "ATIF-v1.8", "steps": []}))
    run = tmp_path / "run"
    imported = _import(source, fmt, run)
    assert f"-> {len(external)} rows" in imported.stdout
    if fmt == "atif":
        assert "broken.json: not an ATIF trajectory: agent" in imported.stdout
    run_cli("verify", run, check=True)
    verified = shards.read_shard(run / "verified" / shards.shard_name(0), "trajectory")
    assert len(verified) == len(external) and all(r["passed"] for r in verified), [
        (c["name"], c["detail"]) for r in verified for c in r["checks"] if not c["passed"]]


def test_reimport_reuses_shards_and_a_changed_source_redoes_the_import_and_what_follows(tmp_path):
    chat = tmp_path / "chat.jsonl"
    write_jsonl(chat, [openai_record(r) for r in rows()[:2]])
    run = tmp_path / "run"
    _import(chat, "openai", run)
    run_cli("verify", run, check=True)
    again = _import(chat, "openai", run)
    assert "reused 1 finished shard(s), wrote 0" in again.stdout
    write_jsonl(chat, [openai_record(r) for r in rows()[:3]])  # the sample-stage hash covers the source's content
    redone = _import(chat, "openai", run)
    assert "-> 3 rows" in redone.stdout and "wrote 1" in redone.stdout
    verified = run_cli("verify", run, check=True)
    assert "3 rows in -> 3 out" in verified.stdout and "reused" not in verified.stdout.split("verify:")[1].splitlines()[0]


def test_import_errors_are_one_line(tmp_path):
    missing = run_cli("import", tmp_path / "nope.jsonl", "--format", "openai", "--run-dir", tmp_path / "run")
    assert missing.returncode != 0 and "nope.jsonl" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "a.jsonl").write_text("{}\n")
    unknown = run_cli("import", tmp_path / "a.jsonl", "--format", "sharegtp", "--run-dir", tmp_path / "run")
    assert unknown.returncode != 0 and "did you mean 'sharegpt'" in unknown.stderr
    assert sorted(CONVERSATIONS) == ["atif", "openai", "sharegpt"]
