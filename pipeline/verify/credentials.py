"""The secrets check: credentials anywhere in a row. Yelp's detect-secrets plugins (a maintained set of
credential detectors: AWS, GitHub, GitLab, Slack, Stripe, Twilio, npm, PyPI, JWT, private keys, basic-auth
URLs, `password = "..."` assignments, ...), a few shapes it does not know (GitHub fine-grained tokens, every
PEM private-key header, unquoted AWS secret access keys, Hugging Face, OpenAI project and Anthropic keys,
Google API keys, unquoted `password: ...`-style assignments of a value with a digit), and the values of the configured environment variables, on every text field of the row.
The detail names the kind and where, never the secret."""

import json
import os
import re
from functools import lru_cache

MIN_SECRET_VALUE_CHARS = 8
# High-entropy detectors flag every content hash and id a row carries; a public IP address is not a credential.
SKIPPED_DETECTORS = {"Base64HighEntropyString", "HexHighEntropyString", "IPPublicDetector"}
PATTERNS = {
    "GitHub fine-grained token": re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}"),
    "private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "AWS secret access key": re.compile(r"(?:aws_?secret_?(?:access_?)?|secret_?access_?)key\W{0,4}[=:]\s*['\"]?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])", re.IGNORECASE),
    "credential assignment": re.compile(r"\b(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret)"
                                        r"\s*[:=]\s*['\"]?(?=[^\s'\"]*\d)[^\s'\"]{8,}", re.IGNORECASE),
    "OpenAI key": re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}"),
    "Anthropic key": re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}"),
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
}
SKIPPED_FIELDS = ("checks", "judgments")  # what verify itself writes
# detect-secrets' keyword detector is its slowest by far and only fires next to one of these words.
KEYWORD_HINT = re.compile(r"pass|pwd|secret|key|token|contrase", re.IGNORECASE)


@lru_cache(maxsize=1)
def detectors() -> tuple:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    return tuple(cls() for cls in get_mapping_from_secret_type_to_class().values() if cls.__name__ not in SKIPPED_DETECTORS)


def secret_values(env_names: list[str]) -> dict[str, str]:
    """Env var name -> value, for the configured secret variables that are set (values stay in memory only)."""
    return {name: os.environ[name] for name in env_names if len(os.environ.get(name, "")) >= MIN_SECRET_VALUE_CHARS}


def strings(value, path: str):
    """(path, text) for every string inside a JSON-like value."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from strings(item, f"{path}[{i}]")


def secret_kind(text: str) -> str | None:
    """The kind of the first credential in `text`, or None."""
    for kind, pattern in PATTERNS.items():
        if pattern.search(text):
            return kind
    hinted = KEYWORD_HINT.search(text) is not None
    for detector in detectors():
        if type(detector).__name__ == "KeywordDetector" and not hinted:
            continue
        if next(iter(detector.analyze_string(text)), None) is not None:
            return detector.secret_type
    return None


def secret_problem(row: dict, values: dict[str, str]) -> str | None:
    """Where a secret appears; the detail names the kind and the place, never the secret. The detectors run
    once over all of the row's text, and string by string only to say where when they found something."""
    found = [(path, text) for field, value in row.items() if field not in SKIPPED_FIELDS for path, text in strings(value, field)]
    for name, secret in values.items():
        for path, text in found:
            if secret in text or json.dumps(secret)[1:-1] in text:
                return f"the value of ${name} appears in {path}"
    if secret_kind("\n".join(text for _, text in found)) is None:
        return None
    for path, text in found:
        kind = secret_kind(text)
        if kind:
            return f"a string shaped like a {kind} appears in {path}"
    return None
