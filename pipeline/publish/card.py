"""The dataset card: README.md with Hub YAML front matter (license, language, tags, size, a config per view with
its data files per split), stats tables, the licence and the terms of the models whose text the rows hold,
provenance and PNG plots of the distributions.

The licence is the user's choice (`curate.card.license`): without one the card names none and publishing is
refused; `other` is allowed, with a warning (the Hub then shows no terms)."""

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import yaml

from pipeline import __version__
from pipeline import config as configlib
from pipeline.curate.scan import RATE_BINS
from pipeline.publish import plots
from pipeline.stages import ROW_STAGES

log = logging.getLogger("trajforge")

LICENSE_HELP = ("set curate.card.license to the licence you choose for this data (a Hub licence id such as "
                "cc-by-4.0, apache-2.0 or mit; `other` for terms the Hub does not list)")
# Terms of use of model families, by a word of the served model's name: they bind the text those models wrote.
MODEL_TERMS = {
    "gemma": ("the Gemma Terms of Use (https://ai.google.dev/gemma/terms) and the Gemma Prohibited Use Policy "
              "(https://ai.google.dev/gemma/prohibited_use_policy); under them, a model trained on Gemma's outputs "
              "to perform like Gemma is a Model Derivative"),
}
SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]
VIEW_NOTES = {
    "trl": "messages + tools + train_mask, ready for TRL's SFTTrainer and `apply_chat_template(messages, tools=...)`",
    "sharegpt": "ShareGPT conversations (human / gpt / function_call / observation), system and tools apart",
    "react": "one plain-text ReAct transcript per trajectory (`text`)",
    "dpo": "preference pairs: a passed vs a failed trajectory of the same task (prompt / chosen / rejected / tools)",
    "dpo_step": "step-level preference pairs: the same history, a better and a worse next action (first bad steps, rollout branches, step candidates)",
    "rl": "trajectories with the teacher's sampled token ids and logprobs per assistant turn (`tokens`), and the verify score",
    "prm": "stepwise supervision for process reward models: prompt / completions (one per step) / labels (one bool per step) / tools",
}


@dataclass
class CardInputs:
    config: object  # the run Config
    kept: pa.Table  # the catalog of kept rows, with their split
    stats: object  # scan.Stats over every verified row
    splits: dict[str, int]
    views: dict[str, dict[str, int]]
    report: dict
    stage_hash: str


def size_category(n: int) -> str:
    return next((label for limit, label in SIZE_CATEGORIES if n < limit), "10M<n<100M")


def front_matter(card_config: dict, splits: dict[str, int], views: dict[str, dict[str, int]]) -> dict:
    configs = [{"config_name": "default", "default": True,
                "data_files": [{"split": split, "path": f"data/{split}-*.parquet"} for split in splits]}]
    for view, counts in views.items():
        if sum(counts.values()):
            configs.append({"config_name": view, "data_files": [{"split": s, "path": f"{view}/{s}-*.parquet"} for s in counts]})
    licence = {"license": card_config["license"]} if card_config["license"] else {}
    return {
        "pretty_name": card_config["pretty_name"],
        **licence,
        "language": card_config["language"],
        "task_categories": ["text-generation"],
        "tags": ["agent", "tool-use", "function-calling", "trajectories", "synthetic", "trajforge"],
        "size_categories": [size_category(sum(splits.values()))],
        "configs": configs,
    }


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(headers) - 1)) + " |"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def counts_table(title: str, counts: Counter) -> str:
    total = sum(counts.values()) or 1
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return table([title, "rows", "share"], [[k, n, f"{n / total:.1%}"] for k, n in ordered])


def public_config(config) -> dict:
    """The resolved config without operational keys (so the card depends only on what made the data) and with
    endpoints reduced to model and mode (no addresses, no key variable names)."""
    data = {k: v for k, v in configlib.semantic(config.data).items() if k != "endpoints"}
    data["endpoints"] = {name: {"model": e["model"], "mode": e.get("mode", "chat")} for name, e in config.data.get("endpoints", {}).items()}
    return data


def verification(stats) -> str:
    sources = table(["source", "verified", "passed", "pass rate"],
                    [[n, stats.sources[n], stats.sources_passed[n], f"{stats.sources_passed[n] / stats.sources[n]:.1%}"] for n in sorted(stats.sources)])
    checks = table(["check", "rows", "pass rate"], [[n, stats.checks[n], f"{stats.checks_passed[n] / stats.checks[n]:.1%}"] for n in sorted(stats.checks)])
    text = (f"{stats.verified} trajectories verified, {stats.passed} passed ({stats.passed / max(stats.verified, 1):.1%}).\n\n"
            f"By source (the program teacher, each LLM teacher):\n\n{sources}\n\nBy check:\n\n{checks}")
    if stats.judges:
        judges = table(["judge", "verdicts", "pass rate"], [[n, stats.judges[n], f"{stats.judges_passed[n] / stats.judges[n]:.1%}"] for n in sorted(stats.judges)])
        agreement = (f"{stats.agreeing_rows / stats.judged_rows:.1%} of the {stats.judged_rows} rows with two or more verdicts"
                     if stats.judged_rows else "no row had two or more verdicts")
        text += f"\n\nJudges:\n\n{judges}\n\nJudge agreement (all verdicts equal): {agreement}."
    return text


def pass_rates(inputs: CardInputs) -> str:
    """Task pass rates (the share of a task's model samples that passed verification): tasks per band and bin over
    every verified task, kept rows per band. Shown when some task has a rate."""
    stats, bands = inputs.stats, inputs.config["curate"]["pass_rate_bands"]
    kept = Counter(inputs.kept.column("pass_rate_band").to_pylist())
    edges = {"too_hard": f"rate <= {bands['too_hard_max']}", "learnable": f"{bands['too_hard_max']} < rate < {bands['too_easy_min']}",
             "too_easy": f"rate >= {bands['too_easy_min']}", "unknown": "no model samples"}
    text = ("A task's pass rate is the share of its samples by model teachers that passed verification "
            "(`meta.pass_rate`).\n\n" + table(["band", "pass rate", "tasks", "kept rows"],
                                                 [[b, edges[b], stats.task_bands.get(b, 0), kept.get(b, 0)] for b in edges]))
    return text + "\n\nDistribution over tasks with a pass rate:\n\n" + table(["pass rate", "tasks"], [[b, stats.task_rate_bins.get(b, 0)] for b in RATE_BINS])


def curation(report: dict) -> str:
    parts = [table(["step", "rows"], [[k, v] for k, v in report["funnel"].items()])]
    if report["removed"]:
        parts.append("Removed, by reason:\n\n" + table(["reason", "rows"], [[k, v] for k, v in report["removed"].items()]))
    if report["near_dedup"]:
        n = report["near_dedup"]
        parts.append(f"Near-duplicates: MinHash with {n['num_perm']} permutations over {n['shingle_words']}-word shingles, "
                     f"{n['bands']} LSH bands of {n['rows_per_band']} rows, estimated Jaccard >= {n['threshold']}.")
    if report["contaminated"]:
        by_ref = Counter(r["reference"] for r in report["contaminated"])
        parts.append("Decontamination (rows removed for sharing an n-gram with a benchmark):\n\n" + counts_table("benchmark", by_ref))
    if report["mix"]:
        parts.append("Mix:\n\n" + table(["bucket", "ratio", "available", "selected", "achieved share"],
                                        [[m["bucket"], m["ratio"], m["available"], m["selected"], f"{m['share']:.1%}"] for m in report["mix"]]))
    return "\n\n".join(parts)


def model_terms(config) -> list[str]:
    """One line per LLM endpoint the run's stages used: its model and the terms known to bind its outputs."""
    lines = []
    for name in sorted(set().union(*(configlib.stage_endpoints(config.data, s) for s in ROW_STAGES))):
        model = config.data["endpoints"][name]["model"]
        terms = next((t for word, t in MODEL_TERMS.items() if word in model.lower()), None)
        lines.append(f"- `{model}` (endpoint `{name}`): " + (terms or "not known to trajforge: see the terms of its provider"))
    return lines


def licence(config) -> str:
    chosen = config["curate"]["card"]["license"]
    text = (f"License: `{chosen}`, chosen by the dataset's maker (`curate.card.license`)." if chosen else
            "No licence was chosen for this dataset (`curate.card.license` is not set).")
    terms = model_terms(config)
    if terms:
        text += ("\n\nRows hold text written by these models (tasks, trajectories, judgments), and their terms apply "
                 "to it as well:\n\n" + "\n".join(terms))
    else:
        text += "\n\nNo LLM wrote any of it: every task and trajectory was generated by trajforge's programs."
    return text


def provenance(inputs: CardInputs) -> str:
    kept = inputs.kept
    teachers = Counter(kept.column("teacher_model").to_pylist())
    prompts = Counter(kept.column("prompt_id").to_pylist())
    tokens = int(sum(kept.column(c).to_numpy().sum() for c in ("prompt_tokens", "completion_tokens")))
    stats = inputs.stats
    config_yaml = yaml.safe_dump(public_config(inputs.config), sort_keys=False)
    return "\n".join([
        f"- teacher models: {', '.join(f'{m} ({n} rows)' for m, n in teachers.most_common()) or 'none'}",
        f"- prompt hashes: {', '.join(f'`{p}` ({n})' for p, n in prompts.most_common(12))}{' ...' if len(prompts) > 12 else ''}",
        f"- tokens spent sampling every verified trajectory: {stats.prompt_tokens + stats.completion_tokens} "
        f"({stats.prompt_tokens} prompt, {stats.completion_tokens} completion); cost ${stats.cost_usd:.4f}",
        f"- tokens of the kept trajectories: {tokens}; cost ${float(kept.column('cost_usd').to_numpy().sum()):.4f}",
        f"- pipeline: trajforge {__version__}; curate stage hash `{inputs.stage_hash}`",
        "", "<details><summary>Config</summary>", "", "```yaml", config_yaml.rstrip(), "```", "", "</details>",
    ])


def load_example(views: dict) -> str:
    lines = ["```python", "from datasets import load_dataset", "", 'ds = load_dataset("<this repo or folder>")  # default config']
    lines += [f'{view} = load_dataset("<this repo or folder>", "{view}")' for view, c in views.items() if sum(c.values())]
    return "\n".join(lines + ["```"])


def render(inputs: CardInputs, plot_files: list[str]) -> str:
    card_config = inputs.config["curate"]["card"]
    kept = inputs.kept
    views = {v: c for v, c in inputs.views.items() if sum(c.values())}
    configs = [["default", "full trajectory rows (the source of truth)", *[inputs.splits.get(s, 0) for s in ("train", "validation")]]]
    configs += [[v, VIEW_NOTES.get(v, "an export view from a plugin"), c.get("train", 0), c.get("validation", 0)] for v, c in views.items()]
    sections = [
        f"# {card_config['pretty_name']}",
        "Agent trajectories made by trajforge: tasks with known ground truth, trajectories whose every action was "
        "executed by a real tool, verified by program checks (and LLM judges where configured), then filtered, "
        "decontaminated, deduplicated and mixed.",
        "## Configs\n" + table(["config", "what", "train", "validation"], configs),
        "## Rows by domain\n" + counts_table("domain", Counter(kept.column("domain").to_pylist())),
        "## Rows by source\n" + counts_table("source", Counter(kept.column("source").to_pylist())),
        "## Rows by format\n" + counts_table("format", Counter(kept.column("format").to_pylist())),
        "## Verification (every sampled trajectory)\n" + verification(inputs.stats),
        *(["## Task pass rates\n" + pass_rates(inputs)] if inputs.stats.task_rate_bins else []),
        "## Curation\n" + curation(inputs.report),
        "## License\n" + licence(inputs.config),
        "## Provenance\n" + provenance(inputs),
    ]
    if plot_files:
        sections.append("## Distributions\n" + "\n".join(f"![{plots.PLOTS[name][0]}](plots/{name})" for name in plot_files))
    sections += [
        "## Schema\nEach default row holds `messages` (OpenAI/TRL chat messages; tool-call arguments are objects), `tools` "
        "(OpenAI function schemas, or null when the system prompt describes them), `train_mask` (one flag per message), "
        "`steps` (thought, action, observation per step), `final_answer`, `ground_truth`, `checks`, `judgments`, `passed` "
        "and `score`. JSON fields use Parquet's JSON type (`datasets` reads them as `Json()`). The JSON Schema is "
        "`schemas/trajectory.schema.json` in trajforge.",
        "## Load\n" + load_example(views),
    ]
    header = yaml.safe_dump(front_matter(card_config, inputs.splits, views), sort_keys=False)
    return f"---\n{header}---\n\n" + "\n\n".join(sections) + "\n"


def chosen_license(card_path: Path) -> str | None:
    """The licence in a written card's front matter (None when it names none, or the card is unreadable)."""
    try:
        text = card_path.read_text()
        meta = yaml.safe_load(text[4:text.index("\n---\n", 4)]) if text.startswith("---\n") else None
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return meta.get("license") if isinstance(meta, dict) else None


def write(folder: Path, inputs: CardInputs) -> None:
    """README.md (and plots/*.png when curate.card.plots) into the dataset folder."""
    chosen = inputs.config["curate"]["card"]["license"]
    if chosen is None:
        log.warning(f"curate: the card names no licence, and publishing it will be refused: {LICENSE_HELP}")
    elif chosen == "other":
        log.warning("curate: curate.card.license is `other`: the Hub shows no terms for it; "
                    "prefer a licence id the Hub lists (https://huggingface.co/docs/hub/repositories-licenses)")
    plot_files = plots.draw(inputs.kept, folder / "plots") if inputs.config["curate"]["card"]["plots"] and inputs.kept.num_rows else []
    (folder / "README.md").write_text(render(inputs, plot_files))
