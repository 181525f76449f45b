"""Duplicate instructions among synthesized tasks: exact (after normalizing case, punctuation and whitespace)
and near (Jaccard similarity of word trigrams at or above a threshold, computed exactly: the sets compared
here are a few thousand seed tasks at most, unlike curate's MinHash over whole runs)."""

import re

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def shingles(text: str, size: int = 3) -> frozenset:
    tokens = words(text)
    if len(tokens) < size:
        return frozenset([tuple(tokens)])
    return frozenset(tuple(tokens[i:i + size]) for i in range(len(tokens) - size + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class TaskIndex:
    """Instructions seen so far; `duplicate_of` names the one a new instruction duplicates."""

    def __init__(self, threshold: float, instructions=()):
        self.threshold = threshold
        self.exact: dict[str, str] = {}
        self.sets: list[tuple[frozenset, str]] = []
        for text in instructions:
            self.add(text)

    def add(self, text: str) -> None:
        self.exact.setdefault(" ".join(words(text)), text)
        self.sets.append((shingles(text), text))

    def duplicate_of(self, text: str) -> tuple[str, str] | None:
        """('exact' or 'near', the earlier instruction), or None."""
        key = " ".join(words(text))
        if key in self.exact:
            return "exact", self.exact[key]
        mine = shingles(text)
        for theirs, original in self.sets:
            if jaccard(mine, theirs) >= self.threshold:
                return "near", original
        return None
