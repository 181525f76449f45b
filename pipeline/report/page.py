"""report.html: the figures of report.json for people: rounded numbers, tables with one linked example per
failure, charts embedded in the page so the file stands alone.

Example rows link into `trajforge view`: relative links when the viewer serves the page (/report), links to a
running viewer's address when one was running as the file was written, plain ids otherwise.
"""

import base64
from pathlib import Path
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, Undefined, select_autoescape
from markupsafe import Markup, escape

HERE = Path(__file__).parent
PLOTS = "report_plots"
COMMAND_FIGURES = ("commands", "seconds", "written", "reused", "funnels", "spent_usd")  # shown elsewhere than the LLM table


def _missing(value) -> bool:
    return value is None or isinstance(value, Undefined)


def count(value) -> str:
    return "—" if _missing(value) else f"{int(value):,}"


def share(value) -> str:
    return "—" if _missing(value) else f"{value:.1%}"


def number(value) -> str:
    """Three significant digits, thousands separated: 0.9629537 -> 0.963, 12345.6 -> 12,346."""
    if _missing(value):
        return "—"
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def usd(value) -> str:
    if _missing(value):
        return "—"
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}" if value >= 0.01 or value == 0 else "$" + f"{value:.6f}".rstrip("0")


def seconds(value) -> str:
    if _missing(value):
        return "—"
    if value >= 120:
        minutes, rest = divmod(round(value), 60)
        return f"{minutes} min {rest} s"
    return f"{value:.2g} s" if value < 10 else f"{value:.0f} s"


LABELS = {"failed": "failed for good", "cache_hits": "cache hits"}
LLM_ORDER = ("requests", "cache_hits", "retries", "failed")  # then whatever else the client counts


def label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " "))


class Links:
    """Where a row or a filter of the run lives in the viewer (None: no viewer, ids are shown as text)."""

    def __init__(self, base: str | None):
        self.base = base

    def row(self, stage: str, row_id: str) -> Markup:
        if self.base is None:
            return Markup("<code>{}</code>").format(row_id)
        return Markup('<a href="{}">{}</a>').format(f"{self.base}/stage/{stage}/row/{quote(row_id)}", row_id)

    def rows(self, stage: str, text: str, **filters) -> Markup:
        if self.base is None:
            return escape(text)
        return Markup('<a href="{}">{}</a>').format(f"{self.base}/stage/{stage}?{urlencode(filters)}", text)


def embedded_plots(run_dir: Path, names: list[str]) -> dict[str, str]:
    """name -> data: URI of each chart, so report.html needs no folder beside it."""
    out = {}
    for name in names:
        path = Path(run_dir) / PLOTS / name
        if path.exists():
            out[name] = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    return out


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
    env.filters.update(count=count, share=share, number=number, usd=usd, seconds=seconds, label=label)
    return env


def render(run_dir: Path, report: dict, link_base: str | None) -> str:
    stats = report.get("stats") or {}
    llm = {stage: {k: v for k, v in figures.items() if k not in COMMAND_FIGURES and not isinstance(v, dict)}
           for stage, figures in stats.get("commands", {}).items()}
    llm = {stage: figures for stage, figures in llm.items() if figures}
    found = {k for figures in llm.values() for k in figures}
    llm_keys = [k for k in LLM_ORDER if k in found] + sorted(found - set(LLM_ORDER))
    funnels = {(stage, name): counts for stage, figures in stats.get("commands", {}).items() for name, counts in figures.get("funnels", {}).items()}
    return environment().get_template("report.html").render(
        run_name=Path(run_dir).resolve().name, run_dir=str(run_dir), stats=stats, llm=llm, llm_keys=llm_keys,
        funnels=funnels, plots=embedded_plots(run_dir, stats.get("plots", [])), links=Links(link_base), viewer=link_base)
