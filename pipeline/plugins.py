"""Components from installed packages, through entry points: generators, environments, checks and views.

A package adds its own by declaring entry points in its pyproject.toml:

    [project.entry-points."trajforge.generators"]
    tickets = "mypackage.generators:GENERATOR"       # a pipeline.synthesize.generators.base.Generator
    [project.entry-points."trajforge.checks"]
    polite = "mypackage.checks:check_polite"         # (row, options) -> {name, passed, detail}
    [project.entry-points."trajforge.views"]
    alpaca = "mypackage.views"                       # a module (or object) with SCHEMA and build(rows, context)
    [project.entry-points."trajforge.environments"]
    crm = "mypackage.crm:open_environment"           # (name, options) -> pipeline.environments.base.Environment

The entry point's name is the name configs use. Each registry is the built-in dict with the plugins merged in
(a `Registry`), so a config names a plugin's component exactly as a built-in one; `origin` says where each
came from (`trajforge list`). A plugin that fails to load, or reuses a built-in name, is skipped with a
warning: an installed package must not break trajforge.
"""

import logging
from collections.abc import Mapping
from functools import lru_cache
from importlib.metadata import entry_points

log = logging.getLogger("trajforge")
GROUPS = ("generators", "environments", "checks", "views")
BUILTIN = "builtin"
_origins: dict[tuple[str, str], str] = {}


@lru_cache(maxsize=1)
def _all_points():
    return entry_points()  # one scan of the installed packages for every group


def load(kind: str) -> dict[str, object]:
    """Name -> loaded object of every `trajforge.<kind>` entry point."""
    found = {}
    for point in _all_points().select(group=f"trajforge.{kind}"):
        try:
            found[point.name] = point.load()
        except Exception as exc:
            log.warning("plugin %s %r (%s) failed to load and is skipped: %s: %s", kind, point.name, point.value, type(exc).__name__, exc)
            continue
        dist = point.dist
        _origins[(kind, point.name)] = f"plugin {dist.name} {dist.version}" if dist is not None else f"plugin {point.value}"
    return found


def merged(kind: str, builtin: dict, adapt=lambda name, value: value) -> dict:
    """`builtin` with the plugins of `kind` added under their entry-point names (`adapt` turns a loaded object
    into the registry's value type)."""
    registry = dict(builtin)
    for name, value in load(kind).items():
        if name in builtin:
            log.warning("plugin %s %r is skipped: a built-in %s has that name", kind, name, kind.rstrip("s"))
            _origins.pop((kind, name), None)
            continue
        try:
            registry[name] = adapt(name, value)
        except (TypeError, ValueError, AttributeError) as exc:
            log.warning("plugin %s %r is skipped: %s", kind, name, exc)
            _origins.pop((kind, name), None)
    return registry


def origin(kind: str, name: str) -> str:
    return _origins.get((kind, name), BUILTIN)


class Registry(Mapping):
    """The built-in components of `kind` with the plugins merged in on first use, not at import: a plugin's
    module imports trajforge's own modules (a Generator, an Environment), which define these registries."""

    def __init__(self, kind: str, builtin: dict, adapt=lambda name, value: value):
        self.kind, self.builtin, self.adapt = kind, builtin, adapt
        self._merged: dict | None = None

    def _all(self) -> dict:
        if self._merged is None:
            self._merged = self.builtin  # while plugins load, a lookup sees the built-ins
            self._merged = merged(self.kind, self.builtin, self.adapt)
        return self._merged

    def __getitem__(self, name):
        return self._all()[name]

    def __iter__(self):
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())
