"""Consumers: exported rows render through a real tool-calling chat template (Qwen2.5's, rendered with jinja2
the way transformers renders chat templates) and pass TRL's own dataset helpers when trl is installed."""

import importlib.util
import json
from pathlib import Path

import datasets
import jinja2
import pyarrow.parquet as pq
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from pipeline import rows as rowlib
from pipeline.curate import views
from pipeline.curate.views import dpo, trl
from tests.curate_run import failed_copy
from tests.fc_rows import function_calling_row
from tests.helpers import make_trajectory

TEMPLATE = (Path(__file__).parent / "data" / "qwen2_5.jinja").read_text()


def render(messages: list[dict], tools: list[dict] | None, template: str = TEMPLATE) -> str:
    """transformers' chat-template environment: sandboxed, trim/lstrip blocks, loop controls, a tojson that
    keeps non-ASCII, raise_exception."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)

    def raise_exception(message):
        raise jinja2.TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, tools=tools, add_generation_prompt=False)


def load_trl_rows(tmp_path, rows: list[dict]) -> list[dict]:
    """Through Parquet and `datasets`, as a trainer would get them."""
    path = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(rowlib.to_table_with_schema(trl.build(rows, views.Context()), trl.SCHEMA), path)
    return list(datasets.load_dataset("parquet", data_files=str(path), split="train"))


def test_trl_rows_render_tool_calls_as_json_objects(tmp_path):
    [row] = load_trl_rows(tmp_path, [function_calling_row()])
    text = render(row["messages"], row["tools"])
    call = row["messages"][2]["tool_calls"][0]["function"]
    assert '"name": "calculator"' in text.split("<tools>\n")[1].split("\n</tools>")[0]
    assert f'<tool_call>\n{{"name": "calculator", "arguments": {json.dumps(call["arguments"])}}}\n</tool_call>' in text
    assert f"<tool_response>\n{row['messages'][3]['content']}\n</tool_response>" in text
    assert text.rstrip().endswith(f"{row['messages'][-1]['content']}<|im_end|>")


def test_text_format_rows_render_without_a_tool_preamble(tmp_path):
    [row] = load_trl_rows(tmp_path, [make_trajectory("units_dates", 2, "react")])
    assert row["tools"] is None
    text = render(row["messages"], row["tools"])
    assert "# Tools" not in text and text.startswith(f"<|im_start|>system\n{row['messages'][0]['content']}<|im_end|>")


@pytest.mark.skipif(importlib.util.find_spec("trl") is None, reason="trl not installed (scripts/setup.sh installs it)")
def test_trl_dataset_helpers_accept_the_views(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast
    from trl.data_utils import apply_chat_template, is_conversational

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]")))
    tokenizer.chat_template = TEMPLATE
    [row] = load_trl_rows(tmp_path, [function_calling_row()])
    example = {"messages": row["messages"]}
    assert is_conversational(example)
    assert apply_chat_template(example, tokenizer, tools=row["tools"])["text"] == render(row["messages"], row["tools"])
    chosen = make_trajectory("arithmetic", 5, "react")
    chosen.update(passed=True, score=1.0, checks=[{"name": "answer", "passed": True, "detail": None}])
    [pair] = dpo.trajectory_pairs([chosen], views.Context({chosen["task_id"]: [failed_copy(chosen, 1)]}))
    preference = {key: pair[key] for key in ("prompt", "chosen", "rejected")}
    assert is_conversational(preference)
    rendered = apply_chat_template(preference, tokenizer, tools=pair["tools"])
    assert rendered["chosen"] != rendered["rejected"] and rendered["prompt"].endswith("<|im_start|>assistant\n")
