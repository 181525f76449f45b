"""The dataset card: README.md with Hub YAML front matter (configs, license, tags) and stats tables."""

from collections import Counter

import yaml

from pipeline import __version__

SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]


def size_category(n: int) -> str:
    return next((label for limit, label in SIZE_CATEGORIES if n < limit), "10M<n<100M")


def front_matter(card_config: dict, splits: dict[str, int]) -> dict:
    total = sum(splits.values())
    return {
        "pretty_name": card_config["pretty_name"],
        "license": card_config["license"],
        "task_categories": ["text-generation"],
        "tags": ["agent", "tool-use", "trajectories", "synthetic", "trajforge"],
        "size_categories": [size_category(total)],
        "configs": [{
            "config_name": "default",
            "default": True,
            "data_files": [{"split": split, "path": f"data/{split}-*.parquet"} for split, n in splits.items() if n],
        }],
    }


def _table(title: str, counts: Counter) -> str:
    lines = [f"| {title} | rows |", "| --- | ---: |"]
    lines += [f"| {key} | {n} |" for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))]
    return "\n".join(lines)


def check_rates(rows: list[dict]) -> Counter:
    passed, seen = Counter(), Counter()
    for row in rows:
        for check in row.get("checks") or []:
            seen[check["name"]] += 1
            passed[check["name"]] += check["passed"]
    return Counter({name: f"{passed[name] / seen[name]:.1%}" for name in seen})


def render(card_config: dict, kept: list[dict], verified: list[dict], splits: dict[str, int], funnel: dict, config_hash: str) -> str:
    """The whole README.md: front matter, what the data is, stats, provenance and how to load it."""
    models = Counter(f"{r['teacher']['model']} ({r['teacher']['mode']})" for r in kept)
    tokens = sum(r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"] for r in verified)
    cost = sum(r["usage"]["cost_usd"] for r in verified)
    rates = check_rates(verified)
    sections = [
        f"# {card_config['pretty_name']}",
        "Agent trajectories made by [trajforge](https://github.com/trajforge/trajforge): tasks with known ground truth, "
        "trajectories whose every action was executed by a real tool, verified by program checks before curation.",
        "## Splits\n" + _table("split", Counter(splits)),
        "## Rows by domain\n" + _table("domain", Counter(r["domain"] for r in kept)),
        "## Rows by source\n" + _table("source", Counter(r["source"] for r in kept)),
        "## Rows by format\n" + _table("format", Counter(r["format"] for r in kept)),
        "## Verification (all sampled trajectories)\n" + "| check | pass rate |\n| --- | ---: |\n"
        + "\n".join(f"| {name} | {rate} |" for name, rate in sorted(rates.items())),
        "## Funnel\n" + "| stage | rows |\n| --- | ---: |\n" + "\n".join(f"| {k} | {v} |" for k, v in funnel.items()),
        "## Provenance\n" + "\n".join([
            f"- teachers: {', '.join(f'{m} x{n}' for m, n in models.most_common())}",
            f"- tokens spent sampling: {tokens}; cost: ${cost:.4f}",
            f"- pipeline version: {__version__}; curate config hash: `{config_hash}`",
        ]),
        "## Schema\nEach row holds `messages` (OpenAI/TRL chat messages; tool-call arguments are objects), `tools` "
        "(OpenAI function schemas, or null when the system prompt describes them), `train_mask` (one flag per message), "
        "`steps` (thought, action, observation per step), `final_answer`, `ground_truth`, `checks`, `passed` and `score`. "
        "The JSON Schema is `schemas/trajectory.schema.json` in trajforge.",
        "## Load\n```python\nfrom datasets import load_dataset\nds = load_dataset(\"<this repo or folder>\")\n```",
    ]
    header = yaml.safe_dump(front_matter(card_config, splits), sort_keys=False)
    return f"---\n{header}---\n\n" + "\n\n".join(sections) + "\n"
