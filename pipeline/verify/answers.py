"""Compare a final answer with the ground truth: numbers within a tolerance, text up to case, whitespace and
trailing punctuation, lists as unordered multisets."""

import re

_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_PREFIX = re.compile(r"^(?:final answer|the answer is|answer)\s*[:\-]?\s*", re.IGNORECASE)
_LIST_SPLIT = re.compile(r"\s*(?:;|,\s+|\band\b)\s*")
DEFAULT_RELATIVE_TOLERANCE = 1e-6


def normalize_text(text: str) -> str:
    text = _PREFIX.sub("", text.strip())
    text = text.strip().strip("\"'`").rstrip(".!").strip()
    return re.sub(r"\s+", " ", text).casefold()


def first_number(text: str) -> float | None:
    match = _NUMBER.search(text.replace("$", ""))
    return float(match.group(0).replace(",", "")) if match else None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number_in_unit(text: str, unit: str) -> float | None:
    """The number in `text` when it is stated in `unit` or a spelling of it ('46.6 miles' for 'mile'); None when
    `text` names no unit pint knows (a bare number); NaN when it names another unit: the task asked for `unit`,
    so an equivalent quantity in other units ('104.9 °F' for degC) does not answer it."""
    from pipeline.tools.convert import registry

    match = _NUMBER.search(text.replace("$", ""))
    rest = text[match.end():].strip().rstrip(".") if match else ""
    if not match or not rest:
        return None
    import pint

    try:
        stated = registry().Quantity(float(match.group(0).replace(",", "")), rest)
        asked = registry().Unit(unit)
    except (pint.errors.PintError, ValueError, AttributeError, TypeError, AssertionError):
        return None
    return stated.magnitude if stated.units == asked else float("nan")


def match_one(predicted: str, expected, tolerance: float | None, unit: str | None = None) -> bool:
    if _is_number(expected):
        number = number_in_unit(predicted, unit) if unit else None
        if number is None:
            number = first_number(predicted)
        if number is None:
            return False
        allowed = max(tolerance or 0.0, DEFAULT_RELATIVE_TOLERANCE * max(1.0, abs(expected)))
        return abs(number - expected) <= allowed
    return normalize_text(predicted) == normalize_text(str(expected))


def mentioned(text: str, ground_truth: dict) -> bool:
    """Whether a conversational message states the answer (tau-bench's required outputs): a number within the
    tolerance anywhere in it, or the answer text inside it; every item of a list answer."""
    expected = ground_truth.get("answer")
    tolerance = ground_truth.get("tolerance")
    for item in expected if isinstance(expected, list) else [expected]:
        if _is_number(item):
            allowed = max(tolerance or 0.0, DEFAULT_RELATIVE_TOLERANCE * max(1.0, abs(item)))
            numbers = [float(m.group(0).replace(",", "")) for m in _NUMBER.finditer(text.replace("$", ""))]
            if not any(abs(n - item) <= allowed for n in numbers):
                return False
        elif normalize_text(str(item)) not in normalize_text(text):
            return False
    return True


def answers_match(predicted: str | None, ground_truth: dict) -> tuple[bool, str]:
    """(matches, detail) for a final answer against `ground_truth['answer']`."""
    expected = ground_truth.get("answer")
    tolerance, unit = ground_truth.get("tolerance"), ground_truth.get("unit")
    if predicted is None or not predicted.strip():
        return False, "no final answer"
    if isinstance(expected, list):
        remaining = [p for p in _LIST_SPLIT.split(normalize_text(predicted)) if p]
        for item in expected:
            hit = next((p for p in remaining if match_one(p, item, tolerance, unit)), None)
            if hit is None:
                return False, f"expected item {item!r} not found in {predicted!r}"
            remaining.remove(hit)
        if remaining:
            return False, f"unexpected extra items {remaining!r}"
        return True, "all items match"
    if match_one(predicted, expected, tolerance, unit):
        return True, f"{predicted!r} matches {expected!r}"
    return False, f"expected {expected!r}, got {predicted!r}"
