"""Canonical JSON and content hashes: the basis of stable ids, cache keys and stage hashes."""

import hashlib
import json


def canonical_json(obj) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: equal values give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(*parts, length: int = 16) -> str:
    """A hex digest over the canonical JSON of `parts`."""
    digest = hashlib.sha256(canonical_json(list(parts)).encode("utf-8")).hexdigest()
    return digest[:length]


def dotted_get(obj, dotted: str):
    """`obj["a"]["b"]` for `dotted` "a.b"; KeyError naming the first part that is missing."""
    node = obj
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(part)
        node = node[part]
    return node
