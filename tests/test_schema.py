import pyarrow as pa
import pytest

from pipeline import rows as rowlib
from pipeline import schema
from pipeline.sample.agent import run_episode
from pipeline.formats import FORMATS
from tests.helpers import make_task, make_trajectory


def test_arrow_schemas_have_exactly_the_json_schema_fields():
    for kind in ("task", "trajectory"):
        assert rowlib.SCHEMAS[kind].names == list(schema.load_schema(kind)["properties"]), kind


def test_step_struct_matches_the_step_schema():
    step_fields = [f.name for f in rowlib.STEP]
    assert step_fields == list(schema.load_schema("trajectory")["$defs"]["step"]["properties"])


def test_generated_task_is_valid():
    assert schema.errors("task", make_task()) == []


def test_program_trajectory_is_valid():
    assert schema.errors("trajectory", make_trajectory()) == []


def test_missing_field_is_named():
    row = make_trajectory()
    del row["steps"]
    assert schema.errors("trajectory", row) == ["steps: missing required field"]


def test_wrong_type_names_the_nested_field():
    row = make_trajectory()
    row["steps"][1]["observation"] = 42
    problems = schema.errors("trajectory", row)
    assert problems == ["steps[1].observation: must be a string or null, got 42"]


def test_tool_call_arguments_must_be_objects_not_strings():
    row = make_trajectory()
    row["messages"][2] = {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": "{\"expression\": \"1+1\"}"}}]}
    problems = schema.errors("trajectory", row)
    assert any("messages[2].tool_calls[0].function.arguments" in p and "object" in p for p in problems), problems


def test_null_message_keys_are_rejected():
    row = make_trajectory()
    row["messages"][2] = {"role": "assistant", "content": "x", "tool_calls": None}
    assert any(p.startswith("messages[2]") for p in schema.errors("trajectory", row))


def test_empty_tools_list_is_rejected_null_is_fine():
    row = make_trajectory()
    row["tools"] = []
    assert schema.errors("trajectory", row)
    row["tools"] = None
    assert schema.errors("trajectory", row) == []


def test_rows_round_trip_through_arrow_with_json_types():
    row = make_trajectory()
    table = rowlib.to_table([row], "trajectory")
    assert isinstance(table.schema.field("messages").type.value_type, pa.JsonType)
    assert isinstance(table.schema.field("ground_truth").type, pa.JsonType)
    assert rowlib.from_table(table, "trajectory") == [row]


def test_fast_path_and_jsonschema_agree_on_corrupted_rows():
    from jsonschema import Draft202012Validator

    reference = Draft202012Validator(schema.load_schema("trajectory"))
    corruptions = [
        lambda r: r.update(format="xml"),
        lambda r: r["steps"][0].update(action_type="dance"),
        lambda r: r["messages"].append({"role": "tool", "content": "x"}),
        lambda r: r["messages"].append({"role": "assistant"}),
        lambda r: r["usage"].update(cost_usd=-1),
        lambda r: r.update(split="test"),
        lambda r: r["steps"][0].pop("seconds"),
        lambda r: r.update(extra=1),
        lambda r: r["messages"][0].update(name="x"),
    ]
    for corrupt in corruptions:
        row = make_trajectory("units_dates", 4)
        corrupt(row)
        assert not reference.is_valid(row)
        assert schema.errors("trajectory", row), row
