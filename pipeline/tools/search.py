"""Full-text search over the task's document collection (the environment's `documents`) with SQLite FTS5.

Returns the top-k documents by BM25 with their ids and a snippet around the matching words; `lookup` then
reads a whole document by id. The query is free text: its words are matched (any of them, best matches
first), so a model cannot trip over FTS5's query syntax. Ties are broken by document order, so the same
query always gives the same result.
"""

import re
import sqlite3

from pipeline.tools.base import Env, Tool, ToolError

MAX_K = 10
_WORD = re.compile(r"\w+", re.UNICODE)


def build_index(env: Env) -> sqlite3.Connection:
    documents = env.spec.get("documents")
    if not documents:
        raise ToolError("this task has no documents to search")
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.execute("CREATE VIRTUAL TABLE docs USING fts5(doc_id UNINDEXED, title, text, tokenize='unicode61')")
    conn.executemany("INSERT INTO docs (rowid, doc_id, title, text) VALUES (?, ?, ?, ?)",
                     [(i + 1, d["id"], d["title"], d["text"]) for i, d in enumerate(documents)])
    return conn


def fts_query(text: str) -> str:
    """Free text -> an FTS5 query matching any of its words, each quoted so no word is an operator."""
    words = _WORD.findall(text.lower())
    if not words:
        raise ToolError(f"the query {text!r} has no words to search for")
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(words))


def search(args: dict, env: Env) -> str:
    conn = env.resource("search_index", build_index)
    k = args.get("k", 5)
    rows = conn.execute(
        "SELECT doc_id, title, snippet(docs, 2, '', '', ' ... ', 16) FROM docs WHERE docs MATCH ? "
        "ORDER BY bm25(docs, 5.0, 1.0), rowid LIMIT ?",
        (fts_query(args["query"]), k),
    ).fetchall()
    if not rows:
        return f"No documents match {args['query']!r}."
    return "\n".join(f"[{doc_id}] {title}: {snippet}" for doc_id, title, snippet in rows)


TOOL = Tool(
    name="search",
    description="Full-text search over the document collection. Returns the best-matching documents as "
                "'[id] title: snippet', best first; read a whole document with lookup(id).",
    parameters={
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "description": "Words to search for."},
            "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 5, "description": "How many results (1-10)."},
        },
        "required": ["query"],
        "additionalProperties": False,
    },
    fn=search,
)
