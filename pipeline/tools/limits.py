"""What one sandbox may use, as configured under `sample.sandbox` (schemas/config.schema.json).

Below every other sandbox module (isolation, launch, pool, sandbox), which all need it.
"""

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Limits:
    timeout_seconds: float = 10.0  # wall clock of a cell, tool calls from inside it included
    cpu_seconds: int = 10
    memory_mb: int = 1024
    file_size_mb: int = 16
    max_processes: int = 32
    workdir_mb: int = 64
    output_bytes: int = 65536  # of each stream of a cell, and of each tool result handed into the sandbox
    tool_call_seconds: float = 5.0  # one host-side tool call made from inside the sandbox


LIMIT_KEYS = frozenset(f.name for f in fields(Limits))


def from_config(section: dict | None) -> tuple[Limits, bool]:
    """(limits, allow_weak) from a `sample.sandbox` section (its other keys are not limits)."""
    section = section or {}
    return Limits(**{k: v for k, v in section.items() if k in LIMIT_KEYS}), bool(section.get("allow_weak", False))
