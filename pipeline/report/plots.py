"""The report's charts (matplotlib, headless): each has a title saying what it shows and labelled axes."""

from pathlib import Path

import numpy as np

STEP_COLOURS = ("#8da0cb", "#66c2a5", "#1a9850", "#005a32")


def _figure(height: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, height), dpi=100)
    ax.spines[["top", "right"]].set_visible(False)
    return plt, fig, ax


def _save(plt, fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path.name


def funnel_by_source(funnel: dict, path: Path) -> str | None:
    """Grouped bars: for each source, the rows sampled, ended without error, passed verify, kept."""
    sources = list(funnel["by_source"])
    if not sources:
        return None
    steps = funnel["steps"]
    plt, fig, ax = _figure(1.2 + 0.55 * len(sources) * len(steps) / 2)
    height = 0.8 / len(steps)
    for i, step in enumerate(steps):
        values = [funnel["by_source"][s][step] for s in sources]
        y = np.arange(len(sources)) + (i - (len(steps) - 1) / 2) * height
        bars = ax.barh(y, values, height=height, color=STEP_COLOURS[i % len(STEP_COLOURS)], label=step)
        ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3, fontsize=8)
    ax.set_yticks(np.arange(len(sources)), sources)
    ax.invert_yaxis()
    ax.set_xlabel("rows")
    ax.set_title("Rows per teacher source at each stage")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.margins(x=0.12)
    return _save(plt, fig, path)


def failures_by_check(failures: dict, path: Path) -> str | None:
    checks = failures["checks"]
    if not checks:
        return None
    plt, fig, ax = _figure(1.2 + 0.35 * len(checks))
    names, counts = [c["name"] for c in checks], [c["rows"] for c in checks]
    bars = ax.barh(names, counts, color="#d6604d")
    ax.bar_label(bars, labels=[f"{c['rows']:,} ({c['share']:.0%})" for c in checks], padding=3, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"rows that failed the check (of {failures['rows']:,} {failures['stage']} rows)")
    ax.set_title("Failures by check")
    ax.margins(x=0.15)
    return _save(plt, fig, path)


def latency(seconds: np.ndarray, path: Path) -> str | None:
    if not len(seconds):
        return None
    plt, fig, ax = _figure(3)
    ax.hist(seconds, bins=30, color="#4c72b0")
    median = float(np.median(seconds))
    ax.axvline(median, color="#222", linestyle="--", linewidth=1)
    ax.annotate(f"median {median:.2g} s", (median, ax.get_ylim()[1] * 0.9), xytext=(4, 0), textcoords="offset points", fontsize=8)
    ax.set_xlabel("seconds to sample one trajectory (tool calls and LLM replies)")
    ax.set_ylabel("trajectories")
    ax.set_title("Sampling time per trajectory")
    return _save(plt, fig, path)


def draw(stats: dict, seconds: np.ndarray, folder: Path) -> list[str]:
    """Write the charts into folder; returns their file names in the order the report shows them."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):  # charts of an older report version or a stage that no longer has data
        old.unlink()
    made = [funnel_by_source(stats["funnel"], folder / "funnel_by_source.png"),
            failures_by_check(stats["failures"], folder / "failures_by_check.png"),
            latency(seconds, folder / "latency.png")]
    return [name for name in made if name]
