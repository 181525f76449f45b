"""Secrets (detect-secrets plus the shapes it misses and the configured env vars' values, on every text field),
format junk (chat-template tokens collected from installed packages, reasoning tags, fences, run-on turns,
leftover action syntax) and refusals in several styles."""

import json

import pytest

from pipeline.verify import credentials, junk
from pipeline.verify.content import refusal_problem
from tests.verify_suite.rows import base, render, set_final_answer

SECRETS = {
    "GitHub fine-grained token": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123",
    "private key": "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0w\n-----END ENCRYPTED PRIVATE KEY-----",
    "Stripe Access Key": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "AWS secret access key": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


@pytest.mark.parametrize("kind", SECRETS)
@pytest.mark.parametrize("where", ["thought", "final_answer", "meta", "tools"])
def test_secrets_are_found_in_every_text_field_without_echoing_them(kind, where):
    row = base("arithmetic", 1, "function_calling")
    secret = SECRETS[kind]
    if where == "thought":
        row["steps"][0]["thought"] = f"Using {secret} now."
        render(row)
    elif where == "final_answer":
        set_final_answer(row, f"{row['final_answer']} {secret}")
    elif where == "meta":
        row["meta"]["notes"] = secret
    else:
        row["tools"][0]["function"]["description"] = secret
    problem = credentials.secret_problem(row, {})
    assert problem and kind in problem and secret not in problem


def test_the_value_of_a_configured_env_var_is_found_in_the_environment_field():
    row = base("sql_table", 1, "react")
    row["environment"]["sqlite_setup"] += "\n-- token plain-looking-value-42"
    assert credentials.secret_problem(row, {"MY_KEY": "plain-looking-value-42"}) == "the value of $MY_KEY appears in environment.sqlite_setup"


def test_good_rows_hold_no_secret():
    for generator in ("store_refunds", "doc_search", "sql_table"):
        assert credentials.secret_problem(base(generator, 2, "codeact"), {}) is None


def test_chat_tokens_come_from_the_installed_templates():
    special, reasoning = junk.chat_tokens()
    assert {"<｜end▁of▁sentence｜>", "<|im_end|>", "<|eot_id|>", "<end_of_turn>", "[INST]", "<|start_header_id|>"} <= special
    assert "</think>" in reasoning
    data = json.loads(junk.TOKENS_FILE.read_text())
    assert data["generated_by"] == "scripts/gen_chat_tokens.py" and any("trl/chat_templates" in s for s in data["sources"])


@pytest.mark.parametrize("answer", ["{a}<｜end▁of▁sentence｜>", "</think>{a}", "{a}\n```python\nprint(1)", "{a}\n\nUser: and tomorrow?",
                                    "{a}\nAction: finish", "{a}<|eot_id|>", "Action: finish[{a}]"])
@pytest.mark.parametrize("fmt", ["react", "cota", "function_calling", "codeact"])
def test_format_junk_in_the_final_answer_is_caught(answer, fmt):
    row = base("arithmetic", 1, fmt)
    set_final_answer(row, answer.format(a=row["final_answer"]))
    assert junk.junk_problem(row)


def test_reasoning_belongs_in_reasoning_content():
    row = base("arithmetic", 1, "function_calling")
    row["messages"][2]["reasoning_content"] = "The total is the sum of both parts."
    assert junk.junk_problem(row) is None
    row["messages"][2]["content"] = "<think>The total is the sum.</think> " + row["messages"][2]["content"]
    assert "reasoning tag" in junk.junk_problem(row)


def test_good_rows_are_clean():
    for fmt in ("react", "cota", "function_calling", "codeact"):
        for generator in ("python_compute", "store_refunds"):
            assert junk.junk_problem(base(generator, 1, fmt)) is None


@pytest.mark.parametrize("text", ["As a large language model, I cannot browse the web.", "I'm sorry, but I can't help with that.",
                                  "I apologize, but I am unable to assist.", "Unfortunately, I cannot provide that.",
                                  "I'm not able to help with that.", "As an AI, I don't have access to the data.",
                                  "I must decline this request.", "That would be against my guidelines."])
def test_refusals_in_several_styles_are_caught(text):
    row = base("kb_multihop", 1, "react")
    row["steps"][0]["thought"] = text
    assert refusal_problem(render(row))


def test_a_thought_about_a_tool_is_not_a_refusal():
    row = base("kb_multihop", 1, "react")
    row["steps"][0]["thought"] = "I cannot guess the founder, so I look it up."
    assert refusal_problem(render(row)) is None
