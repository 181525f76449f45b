"""Checks of the curate config section that need more than the JSON Schema: names of checks, domains and
buckets the rest of the config defines, and mix ratios that add up. Run when a config is loaded, so a bad
curate section fails before synthesize starts."""

from pipeline.curate import mix
from pipeline.errors import UserError


def check(data: dict, where: str) -> None:
    section = data["curate"]
    checks = {c["name"] for c in data["verify"]["checks"]}
    for name in section["filters"]["required_checks"]:
        if name not in checks:
            raise UserError(f"{where}: curate.filters.required_checks: {name!r} is not one of verify.checks ({', '.join(sorted(checks))})")
    for i, reference in enumerate(section["decontam"]["references"]):
        if ("path" in reference) == ("package" in reference):
            raise UserError(f"{where}: curate.decontam.references[{i}]: give exactly one of path or package")
    bands = section["pass_rate_bands"]
    if bands["too_hard_max"] >= bands["too_easy_min"]:
        raise UserError(f"{where}: curate.pass_rate_bands: too_hard_max ({bands['too_hard_max']}) must be below "
                        f"too_easy_min ({bands['too_easy_min']}), or no task is learnable")
    try:
        mix.check(section, data)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
