"""The report's charts (matplotlib, headless): each has a title saying what it shows and labelled axes."""

from pathlib import Path

import numpy as np

STEP_COLOURS = ("#8da0cb", "#66c2a5", "#1a9850", "#005a32")


def _figure(height: float, rows: int | None = None):
    """(pyplot, figure, axes): one axes, or a list of `rows` axes stacked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows or 1, 1, figsize=(7.5, height), dpi=100, squeeze=False)
    axes = list(axes[:, 0])
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
    return plt, fig, axes if rows else axes[0]


def _save(plt, fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path.name


def funnel_by_source(funnel: dict, path: Path) -> str | None:
    """One panel per source, each on its own scale (a handful of LLM rows beside thousands of program rows stay
    readable): the rows sampled, ended without error, passed verify, kept."""
    sources = list(funnel["by_source"])
    if not sources:
        return None
    steps = funnel["steps"]
    plt, fig, axes = _figure(0.6 + 1.15 * len(sources), rows=len(sources))
    for ax, source in zip(axes, sources):
        values = [funnel["by_source"][source][step] for step in steps]
        bars = ax.barh(steps, values, color=STEP_COLOURS[: len(steps)])
        ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=3, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(source, fontsize=9, loc="left")
        ax.margins(x=0.12)
        ax.tick_params(labelsize=8)
    axes[-1].set_xlabel("rows")
    fig.suptitle("Rows per teacher source at each stage", fontsize=11)
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
    median = float(np.median(seconds))
    skewed = seconds.min() > 0 and seconds.max() > 20 * median  # a few slow LLM episodes among fast program ones
    ax.hist(seconds, bins=np.geomspace(seconds.min(), seconds.max(), 40) if skewed else 30, color="#4c72b0")
    if skewed:
        ax.set_xscale("log")
    ax.axvline(median, color="#222", linestyle="--", linewidth=1)
    ax.annotate(f"median {median:.2g} s", (median, ax.get_ylim()[1] * 0.9), xytext=(4, 0), textcoords="offset points", fontsize=8)
    ax.set_xlabel("seconds to sample one trajectory (tool calls and LLM replies)" + (", log scale" if skewed else ""))
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
