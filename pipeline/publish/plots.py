"""PNG plots of the curated dataset's distributions for the card (matplotlib, headless, byte-stable)."""

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

# file -> (title, column, what the x axis shows)
PLOTS = {
    "steps.png": ("Steps per trajectory", "steps", "steps (tool calls and the final answer)"),
    "difficulty.png": ("Task difficulty", "difficulty", "difficulty level set by the task generator"),
    "completion_tokens.png": ("Completion tokens per trajectory", "completion_tokens", "completion tokens the teacher wrote"),
    "domains.png": ("Rows per domain and format", None, "domain / format"),
}


def _bar(ax, counts: Counter, title: str) -> None:
    keys = sorted(counts)
    ax.bar(range(len(keys)), [counts[k] for k in keys], color="#4c72b0")
    ax.set_xticks(range(len(keys)), [str(k) for k in keys], rotation=30, ha="right")
    ax.set_title(title)


def draw(catalog: pa.Table, folder: Path) -> list[str]:
    """Write the plots into folder; returns their file names. A distribution with nothing in it (no completion
    tokens counted: only the program teacher's rows) gets no plot rather than one bar at 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (title, column, xlabel) in PLOTS.items():
        if column == "completion_tokens" and not catalog.column(column).to_numpy().any():
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        if column is None:
            pairs = zip(catalog.column("domain").to_pylist(), catalog.column("format").to_pylist())
            _bar(ax, Counter(f"{d}/{f}" for d, f in pairs), title)
        else:
            values = catalog.column(column).to_numpy()
            if column == "completion_tokens" or len(np.unique(values)) > 30:
                ax.hist(values, bins=30, color="#4c72b0")
                ax.set_title(title)
            else:
                _bar(ax, Counter(values.tolist()), title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("trajectories in the dataset")
        fig.tight_layout()
        fig.savefig(folder / name, format="png", metadata={"Software": None})  # no version: same data, same bytes
        plt.close(fig)
        written.append(name)
    return written
