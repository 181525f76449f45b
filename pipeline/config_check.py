"""A config as the commands load it: the schema and defaults (pipeline/config.py), then every name the config
uses checked against the registries of the stages and the endpoints it defines: generators, checks and their
options, formats, endpoints, judges, simulated users, LLM task synthesis, the import format, curate settings.

It sits above the stages (it reads their registries), so pipeline/config.py stays below them."""

from pathlib import Path

from pipeline import config as configlib
from pipeline.errors import UserError


def load(path: str | Path, overrides: list[str] = ()) -> configlib.Config:
    config = configlib.load(path, overrides)
    check_references(config.data, str(config.path))
    return config


def validate_data(data, where: str) -> dict:
    data = configlib.validate_data(data, where)
    check_references(data, where)
    return data


def check_references(data: dict, where: str) -> None:
    """Names the schema cannot know: generators, checks, endpoints."""
    from pipeline.formats import FORMATS
    from pipeline.synthesize.generators import GENERATORS
    from pipeline.verify.checks import CHECKS, DEFAULT_OPTIONS

    for i, gen in enumerate(data["synthesize"]["generators"]):
        _check_name(where, f"synthesize.generators[{i}].name", gen["name"], GENERATORS, "generator")
    if data.get("import"):
        _check_import(data["import"], where)
    for i, check in enumerate(data["verify"]["checks"]):
        _check_name(where, f"verify.checks[{i}].name", check["name"], CHECKS, "check")
        for key in check.get("options", {}):
            _check_name(where, f"verify.checks[{i}].options.{key}", key, DEFAULT_OPTIONS.get(check["name"], {}), "option")
    for i, teacher in enumerate(data["sample"]["teachers"]):
        field = f"sample.teachers[{i}]"
        for j, fmt in enumerate(teacher["formats"]):
            _check_name(where, f"{field}.formats[{j}]", fmt, FORMATS, "format")
        if teacher["policy"] == "llm":
            if "endpoint" not in teacher:
                raise UserError(f"{where}: {field}.endpoint: missing required field (an llm teacher needs an endpoint)")
            _check_name(where, f"{field}.endpoint", teacher["endpoint"], data["endpoints"], "endpoint")
            if data["endpoints"][teacher["endpoint"]]["mode"] == "completion":
                for j, fmt in enumerate(teacher["formats"]):
                    if FORMATS[fmt].completion is None:
                        raise UserError(f"{where}: {field}.formats[{j}]: {fmt} needs a chat endpoint "
                                        f"('{teacher['endpoint']}' has mode: completion; react drives base models)")
        if "user_simulator" in teacher:
            _check_user_simulator(data, where, field, teacher)
        _check_step_sampling(where, field, teacher)
    _check_judges(data, where)
    _check_llm_tasks(data, where)
    _check_environments(data, where)
    _check_views(data, where)
    from pipeline.curate import settings

    settings.check(data, where)


def _check_import(spec: dict, where: str) -> None:
    from pipeline.ingest import FORMATS
    from pipeline.ingest.stage import FIELDS

    _check_name(where, "import.format", spec["format"], FORMATS, "import format")
    for key in spec["fields"]:
        _check_name(where, f"import.fields.{key}", key, FIELDS, "task field")


def _check_judges(data: dict, where: str) -> None:
    from pipeline.verify.checks import CHECKS

    verify = data["verify"]
    names = [judge["name"] for judge in verify["judges"]]
    for i, judge in enumerate(verify["judges"]):
        _check_name(where, f"verify.judges[{i}].endpoint", judge["endpoint"], data["endpoints"], "endpoint")
        if names.count(judge["name"]) > 1:
            raise UserError(f"{where}: verify.judges[{i}].name: '{judge['name']}' names two judges")
    if verify["judges"] and verify["committee"]["quorum"] > len(verify["judges"]):
        raise UserError(f"{where}: verify.committee.quorum: {verify['committee']['quorum']} is more than the "
                        f"{len(verify['judges'])} judge(s) configured")
    if verify["step_judge"]:
        _check_name(where, "verify.step_judge.endpoint", verify["step_judge"]["endpoint"], data["endpoints"], "endpoint")
    if verify["step_values"]:
        _check_name(where, "verify.step_values.teacher.endpoint", verify["step_values"]["teacher"]["endpoint"], data["endpoints"], "endpoint")
    for i, name in enumerate(verify["feedback"]["checks"]):
        _check_name(where, f"verify.feedback.checks[{i}]", name, [*CHECKS, "committee"], "check")


def _check_step_sampling(where: str, field: str, teacher: dict) -> None:
    for key in ("stop_after_passing", "step_candidates"):
        if key in teacher and teacher["policy"] != "llm":
            raise UserError(f"{where}: {field}.{key}: only llm teachers sample adaptively or by candidates (program rows are gold)")
    if "step_candidates" in teacher and "user_simulator" in teacher:
        raise UserError(f"{where}: {field}.step_candidates: not with a user_simulator (each candidate would need its own simulated user)")
    if teacher.get("stop_after_passing", 0) > teacher["samples_per_task"]:
        raise UserError(f"{where}: {field}.stop_after_passing: {teacher['stop_after_passing']} is more than samples_per_task "
                        f"({teacher['samples_per_task']}), the most samples a task gets")


def _check_user_simulator(data: dict, where: str, field: str, teacher: dict) -> None:
    if teacher["policy"] != "llm" or teacher["formats"] != ["function_calling"]:
        raise UserError(f"{where}: {field}.user_simulator: a simulated user talks to an llm teacher in the function_calling format "
                        "(a reply without a tool call is a message to the user)")
    _check_name(where, f"{field}.user_simulator.endpoint", teacher["user_simulator"]["endpoint"], data["endpoints"], "endpoint")


def _check_llm_tasks(data: dict, where: str) -> None:
    from pipeline.synthesize.generators import GENERATORS

    sources = {s["name"]: None for s in data["synthesize"]["seeds"]} | dict.fromkeys(GENERATORS)
    names = [spec["name"] for spec in data["synthesize"]["llm_tasks"]]
    for i, spec in enumerate(data["synthesize"]["llm_tasks"]):
        field = f"synthesize.llm_tasks[{i}]"
        if names.count(spec["name"]) > 1:
            raise UserError(f"{where}: {field}.name: '{spec['name']}' names two llm_tasks entries")
        _check_name(where, f"{field}.endpoint", spec["endpoint"], data["endpoints"], "endpoint")
        if "seeds" in spec:
            _check_name(where, f"{field}.seeds", spec["seeds"], sources, "seeds source or generator")
        if "environment" in spec:
            _check_name(where, f"{field}.environment", spec["environment"], data["environments"], "environment")
        reviewers = [r["name"] for r in spec["reviewers"]]
        for j, reviewer in enumerate(spec["reviewers"]):
            _check_name(where, f"{field}.reviewers[{j}].endpoint", reviewer["endpoint"], data["endpoints"], "endpoint")
            if reviewers.count(reviewer["name"]) > 1:
                raise UserError(f"{where}: {field}.reviewers[{j}].name: '{reviewer['name']}' names two reviewers")
        if reviewers and spec["committee"]["quorum"] > len(reviewers):
            raise UserError(f"{where}: {field}.committee.quorum: {spec['committee']['quorum']} is more than the "
                            f"{len(reviewers)} reviewer(s) configured")


def _check_views(data: dict, where: str) -> None:
    from pipeline.curate.views import VIEWS

    for i, name in enumerate(data.get("curate", {}).get("views", [])):
        _check_name(where, f"curate.views[{i}]", name, VIEWS, "view")


def _check_environments(data: dict, where: str) -> None:
    """Environment names that would clash with built-in tools, and plugins that are not installed (servers are
    started and modules imported when a stage opens them: `trajforge list tools CONFIG` tries that alone)."""
    if not data["environments"]:
        return
    from pipeline.environments import FACTORIES, RESERVED

    for name, spec in data["environments"].items():
        if name in RESERVED:
            raise UserError(f"{where}: environments.{name}: '{name}' is a built-in tool or resource name; choose another")
        if "plugin" in spec:
            _check_name(where, f"environments.{name}.plugin", spec["plugin"], FACTORIES, "environment plugin")


def _check_name(where: str, field: str, name: str, registry, what: str) -> None:
    if name not in registry:
        import difflib

        hint = difflib.get_close_matches(name, list(registry), n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else f" (known: {', '.join(sorted(registry)) or 'none'})"
        raise UserError(f"{where}: {field}: unknown {what} '{name}'{suggestion}")
