"""Load a run config: YAML, then `--set key=value` overrides, then schema validation and defaults.

Also owns the stage hashes: each stage's hash covers its own config section (minus operational keys such as
concurrency limits, which do not change what a stage produces) plus the hash of the stage before it.
"""

import copy
import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline import schema
from pipeline.errors import UserError
from pipeline.jsonutil import content_hash

from pipeline.stages import STAGES

DEFAULT_IMPORT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "import.yaml"

# Keys that change how a stage runs, never what it produces: left out of stage hashes and config comparisons.
OPERATIONAL_KEYS = (
    "run.name",
    "run.stages",
    "run.workers",
    "endpoints.*.base_url",
    "endpoints.*.api_key_env",
    "endpoints.*.max_concurrency",
    "endpoints.*.rpm",
    "endpoints.*.tpm",
    "endpoints.*.timeout_s",
    "curate.workers",
    "endpoints.*.max_retries",
    "endpoints.*.rate_limit_patience_s",
    "endpoints.*.adaptive_concurrency",
    "endpoints.*.target_latency_s",
    "endpoints.*.price_input_per_mtok",
    "endpoints.*.price_output_per_mtok",
    "endpoints.*.price_cached_input_per_mtok",
    "endpoints.*.batch_discount",
    "endpoints.*.budget_usd",
    "endpoints.*.batch",
    "endpoints.*.batch_poll_s",
    "endpoints.*.batch_max_requests",
    "endpoints.*.batch_max_bytes",
    "endpoints.*.structured_output",  # follows from the server (llama.cpp or not); the verdict asked for is the same
    "endpoints.*.local_server",  # the running local server's pid and log (set while a run serves it)
    "sample.sandbox.allow_weak",  # whether model-written code may run at all here, not what it produces
    # where an environment's server runs and how long to wait for it, never what its tools do
    "environments.*.mcp.url",
    "environments.*.mcp.headers",
    "environments.*.mcp.cwd",
    "environments.*.mcp.max_sessions",
    "environments.*.mcp.call_timeout_s",
    "environments.*.mcp.startup_timeout_s",
    "environments.*.python.path",
    "environments.*.python.call_timeout_s",
)

# Keys added after run directories existed, at the value that makes what configs without them made: left out of
# stage hashes and config comparisons while at that value, so those run directories keep their hashes.
NEUTRAL_DEFAULTS = {
    "endpoints.*.reasoning": "auto",
    "endpoints.*.reasoning_history": "drop",
    "endpoints.*.capture": {"logprobs": False, "token_ids": False},
    "curate.view_reasoning": "render",
    "environments": {},
    "synthesize.llm_tasks.*.explore": {"max_calls": 4, "max_tokens": 400},
    "curate.recordings": False,
}

_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass
class Config:
    data: dict
    path: Path

    def __getitem__(self, key):
        return self.data[key]

    @property
    def name(self) -> str:
        return self.data["run"]["name"]

    def stage_hash(self, stage: str) -> str:
        """Hash of everything that determines `stage`'s output, chained through the stages before it."""
        chain = ""
        for name in STAGES:
            chain = content_hash(chain, name, _stage_inputs(self.data, name))
            if name == stage:
                return chain
        raise KeyError(stage)


def _stage_inputs(data: dict, stage: str) -> dict:
    section = semantic(data.get(stage, {}), stage)
    inputs = {"section": section}
    if stage == "synthesize":
        inputs["run"] = {k: data["run"][k] for k in ("seed", "rows_per_shard")}
        if data.get("environments"):  # the tools every later stage calls (chained into their hashes)
            inputs["environments"] = semantic(data["environments"], "environments")
    if stage == "curate":
        inputs["seed"] = data["run"]["seed"]
    if stage == "sample" and data.get("import"):  # an import run's trajectories come from its source
        from pipeline.ingest import source

        inputs["import"] = {"section": semantic(data["import"], "import"), "content": source.fingerprint(data["import"])}
    if stage == "sample" and any("stop_after_passing" in t or "step_candidates" in t for t in data["sample"]["teachers"]):
        # adaptive sampling and candidate scoring decide with the program checks at sample time
        inputs["checks"] = semantic({k: data["verify"][k] for k in ("checks", "min_score")}, "verify")
    endpoints = sorted(_referenced_endpoints(data.get(stage, {})))
    inputs["endpoints"] = {name: semantic(data["endpoints"].get(name), f"endpoints.{name}") for name in endpoints}
    return inputs


def stage_endpoints(data: dict, stage: str) -> set[str]:
    """The endpoints a stage talks to: those its section names, and for verify's feedback rounds the teachers'."""
    names = _referenced_endpoints(data.get(stage, {}))
    if stage == "verify" and data.get("verify", {}).get("feedback", {}).get("rounds"):
        names |= {t["endpoint"] for t in data["sample"]["teachers"] if t.get("policy") == "llm"}
    return names


def _referenced_endpoints(obj) -> set[str]:
    if isinstance(obj, dict):
        found = {obj["endpoint"]} if isinstance(obj.get("endpoint"), str) else set()
        for value in obj.values():
            found |= _referenced_endpoints(value)
        return found
    if isinstance(obj, list):
        return set().union(*map(_referenced_endpoints, obj)) if obj else set()
    return set()


def _neutral(path: str, value) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) and value == neutral for pattern, neutral in NEUTRAL_DEFAULTS.items())


def semantic(obj, path: str = ""):
    """`obj` without its operational keys (see OPERATIONAL_KEYS) and NEUTRAL_DEFAULTS."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            sub = f"{path}.{key}" if path else str(key)
            if not any(fnmatch.fnmatchcase(sub, pattern) for pattern in OPERATIONAL_KEYS) and not _neutral(sub, value):
                out[key] = semantic(value, sub)
        return out
    if isinstance(obj, list):
        return [semantic(v, f"{path}.{i}") for i, v in enumerate(obj)]
    return obj


def parse_override(text: str) -> tuple[list, object]:
    """'sample.teachers[0].temperature=0.7' -> (['sample', 'teachers', 0, 'temperature'], 0.7)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {text!r}: expected KEY=VALUE, e.g. --set run.seed=3")
    parts = [name if name else int(index) for name, index in _PATH_TOKEN.findall(key.strip())]
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise UserError(f"--set {text!r}: value is not valid YAML ({exc.problem})") from None
    return parts, value


def apply_override(data: dict, parts: list, value) -> None:
    node = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise UserError(f"--set {schema.field_path(parts)}: {schema.field_path(parts[: i + 1])} does not exist")
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise UserError(f"--set {schema.field_path(parts)}: {schema.field_path(parts[:i])} is not a mapping")
            node = node.setdefault(part, [] if isinstance(nxt, int) else {})
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last > len(node):
            raise UserError(f"--set {schema.field_path(parts)}: index out of range")
        node[last:last + 1] = [value]
    else:
        if not isinstance(node, dict):
            raise UserError(f"--set {schema.field_path(parts)}: {schema.field_path(parts[:-1])} is not a mapping")
        node[last] = value


def apply_defaults(node_schema: dict, instance, root: dict):
    """Fill in the `default`s the config schema declares, recursively (the schema is the one source of defaults)."""
    if "$ref" in node_schema:
        name = node_schema["$ref"].rsplit("/", 1)[-1]
        node_schema = root["$defs"][name]
    if isinstance(instance, dict):
        for key, sub in node_schema.get("properties", {}).items():
            if key not in instance and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            if key in instance:
                apply_defaults(sub, instance[key], root)
        extra = node_schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, value in instance.items():
                if key not in node_schema.get("properties", {}):
                    apply_defaults(extra, value, root)
    elif isinstance(instance, list) and isinstance(node_schema.get("items"), dict):
        for item in instance:
            apply_defaults(node_schema["items"], item, root)
    return instance


def validate_data(data, where: str) -> dict:
    """Schema validation and defaults. The names a config uses (generators, checks, endpoints, ...) are
    checked against the registries by pipeline/config_check.py, which sits above the stages."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: a config must be a YAML mapping with at least 'synthesize'")
    problems = schema.errors("config", data)
    if problems:
        raise UserError(f"{where}: invalid config\n  " + "\n  ".join(problems))
    apply_defaults(schema.load_schema("config"), data, schema.load_schema("config"))
    problems = schema.errors("config", data)
    if problems:
        raise UserError(f"{where}: invalid config after defaults\n  " + "\n  ".join(problems))
    return data


def load(path: str | Path, overrides: list[str] = ()) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"{path}: cannot read config ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{path}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if isinstance(data, dict):
        for text in overrides:
            apply_override(data, *parse_override(text))
    return Config(validate_data(data, str(path)), path)


def flatten(obj, prefix: str = "") -> dict[str, object]:
    """{'a': {'b': [1]}} -> {'a.b[0]': 1}: for naming the keys where two configs differ."""
    if isinstance(obj, dict) and obj:
        out = {}
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(obj, list) and obj:
        out = {}
        for i, value in enumerate(obj):
            out.update(flatten(value, f"{prefix}[{i}]"))
        return out
    return {prefix: obj}


def differences(old: dict, new: dict) -> list[str]:
    """Semantic keys whose values differ, as 'key: old -> new'. An empty section on one side whose keys the
    other side sets is said by those keys alone (`endpoints.local.model: (unset) -> 'm'`, not `endpoints: {}`)."""
    a, b = flatten(semantic(old)), flatten(semantic(new))

    def under(side: dict, key: str) -> bool:
        return any(other.startswith((key + ".", key + "[")) for other in side)

    def shown(side: dict, key: str) -> str:
        text = repr(side[key]) if key in side else "(unset)"
        return text if len(text) <= 60 else text[:59] + "…"

    keys = [key for key in sorted(set(a) | set(b)) if (key in a, a.get(key)) != (key in b, b.get(key))
            and not (key not in a and under(a, key)) and not (key not in b and under(b, key))]
    return [f"{key}: {shown(a, key)} -> {shown(b, key)}" for key in keys]
