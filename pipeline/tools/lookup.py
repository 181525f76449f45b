"""Look up a document of the task's knowledge base by id or exact title."""

import difflib

from pipeline.tools.base import Env, Tool, ToolError


def index(env: Env) -> dict[str, dict]:
    """Documents keyed by lower-cased id and title."""
    docs = {}
    for doc in env.spec.get("documents", []):
        docs[doc["id"].lower()] = doc
        docs[doc["title"].lower()] = doc
    return docs


def lookup(args: dict, env: Env) -> str:
    docs = env.resource("documents", index)
    key = args["id"].strip().lower()
    doc = docs.get(key)
    if doc is None:
        close = difflib.get_close_matches(key, list(docs), n=3, cutoff=0.75)
        hint = f" Close matches: {', '.join(docs[c]['title'] for c in close)}." if close else ""
        raise ToolError(f"no document with id or title {args['id']!r}.{hint}")
    return f"[{doc['id']}] {doc['title']}: {doc['text']}"


TOOL = Tool(
    name="lookup",
    description="Return the knowledge-base document with the given id or exact title.",
    parameters={
        "type": "object",
        "properties": {"id": {"type": "string", "description": "Document id or exact title."}},
        "required": ["id"],
        "additionalProperties": False,
    },
    fn=lookup,
)
