"""The import graph of pipeline/: no circles, and layers import downwards only (DESIGN.md, "Layers"):
cli -> runner -> executors -> shard job -> stages -> shared machinery."""

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "pipeline"
# Top to bottom. A module may import its own layer and the layers below it, never one above.
LAYERS = [
    {"pipeline.cli", "pipeline.show", "pipeline.__main__", "pipeline.config_check", "pipeline.view"},
    {"pipeline.runner", "pipeline.summary", "pipeline.report", "pipeline.plan"},
    {"pipeline.executors"},
    {"pipeline.shardjob"},
    {"pipeline.synthesize", "pipeline.sample", "pipeline.verify", "pipeline.curate", "pipeline.publish"},
]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict) -> set[str]:
    """Modules of pipeline/ that `name` imports anywhere in its body (lazy imports inside functions count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            targets = submodules + ([base] if len(submodules) < len(node.names) else [])
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def layer(name: str) -> int:
    for depth, members in enumerate(LAYERS):
        if any(name == m or name.startswith(m + ".") for m in members):
            return depth
    return len(LAYERS)  # shared machinery: llm/, tools/, formats/, shards.py, schema.py, rows.py, ...


def test_the_import_graph_has_no_circles():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers_import_downwards_only():
    upward = sorted(f"{name} -> {target}" for name, targets in graph().items() for target in targets if layer(target) < layer(name))
    assert upward == []
