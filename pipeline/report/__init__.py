"""The run report: runs/<name>/report.json (every figure, as JSON) and report.html (the same for people).

The runner calls `record_summary` after each stage command and `write` at the end; `trajforge report RUN_DIR`
calls `write` at any time. Figures about shards are read from the run directory itself, so they count every
shard's work whichever command did it; figures only a command knows come from the history of commands.
"""

import json
from pathlib import Path

from pipeline import atomic, rundir
from pipeline.errors import storage_error
from pipeline.report import figures, page, plots
from pipeline.report.history import editing, record_summary

__all__ = ["editing", "record_summary", "render", "write"]


def write(run_dir: Path) -> Path:
    """(Re)generate report.json, the charts and report.html; returns the HTML path."""
    run_dir = Path(run_dir)
    with editing(run_dir) as report:
        stats = figures.collect(run_dir, report)
        try:
            stats["plots"] = plots.draw(stats, figures.latencies(run_dir), run_dir / page.PLOTS)
        except OSError as exc:
            raise storage_error(run_dir / page.PLOTS, exc.strerror or str(exc)) from None
        report["stats"] = stats
        html = page.render(run_dir, report, link_base=rundir.viewer_url(run_dir))
        target = run_dir / "report.html"
        atomic.write_text(target, html)
    return target


def render(run_dir: Path, link_base: str | None) -> str:
    """report.html as of the last `write`, with example rows linked under `link_base` (the viewer's /report);
    reads report.json only (report.json is replaced atomically, so a reader never sees half of it)."""
    return page.render(Path(run_dir), json.loads((Path(run_dir) / "report.json").read_text()), link_base)
