"""Compare a final answer with the ground truth, reading the answer as people write it: markdown and framing
("It is X.", "The answer is **X**") removed; numbers within the tolerance and honest about their precision,
in the unit asked for; text up to case, whitespace and punctuation, or stated once in a short sentence that
names nothing else; lists as unordered multisets. A hedged or multiple-choice answer ("646 (or possibly 647)",
"probably X") does not match, nor does one cut off mid-word."""

import re

_NUMBER = re.compile(r"(?<![\w.])(?:[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+)")
_MARKDOWN = re.compile(r"\*\*|__|~~|`+|(?<!\w)[*_](?=\w)|(?<=\w)[*_](?!\w)|^\s{0,3}(?:#{1,6}|>|[-*+]|\d+[.)])\s+", re.MULTILINE)
_FRAME = re.compile(
    r"^(?:(?:so|thus|therefore|hence|ok(?:ay)?|yes)\b[,:]?\s*)?(?:(?:the\s+)?(?:final\s+)?answer(?:\s+is)?|it\s+is|it's|"
    r"that\s+is|that's|this\s+is|the\s+result\s+is|result)\s*[:\-=]?\s*", re.IGNORECASE)
_LIST_SPLIT = re.compile(r"\s*(?:;|,\s+|\band\b)\s*")
_HEDGE = re.compile(
    r"\b(?:or|either|possibly|perhaps|maybe|probably|likely|might|could\s+be|not\s+sure|unsure|uncertain|unclear|"
    r"i\s+think|i\s+guess|i\s+believe|guess|not|never|isn't|wasn't|aren't)\b|\?", re.IGNORECASE)
_CAPITALIZED = re.compile(r"\b[A-Z][a-z]+\b")
_CONTRAST = re.compile(r"\b(?:than|instead|rather|versus|vs|compared|unlike|whereas|while|but|except)\b", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]+")
# Words that frame an answer sentence ("It is ...", "The company is ..."): not names of other things.
FRAMING_WORDS = frozenset("it its the that this there these those so thus therefore hence answer final result "
                           "a an in on at of he she they his her their i yes ok okay".split())
DEFAULT_RELATIVE_TOLERANCE = 1e-6


def strip_markdown(text: str) -> str:
    return _MARKDOWN.sub("", text)


def normalize_text(text: str) -> str:
    text = strip_markdown(text).strip()
    text = _FRAME.sub("", text).strip()
    text = text.strip().strip("\"'").rstrip(".!").strip()
    return re.sub(r"\s+", " ", text).casefold()


def numbers_in(text: str) -> list[tuple[str, float]]:
    """Every number in `text` as (token, value), thousands separators and currency signs read."""
    return [(m.group(0), float(m.group(0).replace(",", ""))) for m in _NUMBER.finditer(text.replace("$", ""))]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number_matches(token: str, value: float, expected: float, tolerance: float | None) -> bool:
    """Within the tolerance, and honest about its precision: a number written with d decimals must be the
    expected value rounded to d decimals (8.81848 is not 8.81849, though both are within 0.001 of it)."""
    scale = max(1.0, abs(expected))
    difference = abs(value - expected)
    if difference > max(tolerance or 0.0, DEFAULT_RELATIVE_TOLERANCE * scale):
        return False
    if "e" in token.lower():
        return True
    decimals = len(token.partition(".")[2])
    return difference <= 0.5 * 10 ** -decimals + 1e-9 * scale


def number_in_unit(text: str, unit: str) -> float | None:
    """The number in `text` when it is stated in `unit` or a spelling of it ('46.6 miles' for 'mile'); None when
    `text` names no unit pint knows (a bare number); NaN when it names another unit: the task asked for `unit`,
    so an equivalent quantity in other units ('104.9 °F' for degC) does not answer it."""
    from pipeline.tools.convert import registry

    match = _NUMBER.search(text.replace("$", ""))
    rest = re.split(r"[,;()\[\]]|\.(?:\s|$)", text.replace("$", "")[match.end():], maxsplit=1)[0].strip().rstrip(".") if match else ""
    if not match or not rest:
        return None
    import pint

    try:
        stated = registry().Quantity(float(match.group(0).replace(",", "")), rest)
        asked = registry().Unit(unit)
    except (pint.errors.PintError, ValueError, AttributeError, TypeError, AssertionError):
        return None
    return stated.magnitude if stated.units == asked else float("nan")


def _number_problem(text: str, expected: float, tolerance: float | None, unit: str | None, instruction: str) -> str | None:
    if unit:
        stated = number_in_unit(text, unit)
        if stated is not None and stated != stated:
            return f"stated in another unit than {unit}"
    found = numbers_in(text)
    hits = [token for token, value in found if number_matches(token, value, expected, tolerance)]
    if not hits:
        return "no number in it matches" if found else "no number in it"
    given = {value for _, value in numbers_in(instruction)}
    others = [token for token, value in found if token not in hits and value not in given]
    if others:
        return f"several candidate values ({', '.join(hits + others)})"
    return None


def _text_problem(text: str, expected: str, instruction: str, seen: set[str] = frozenset()) -> str | None:
    """None when `text` is `expected`, or a short sentence that states it once and names nothing the question
    did not ("It blooms in October."), or only what the trajectory saw ("Iraven Works is headquartered in
    Delard.") without setting it against the answer ("A is taller than B"); otherwise why not."""
    wanted = normalize_text(expected)
    if not wanted:
        return "empty expected answer"
    if normalize_text(text) == wanted:
        return None
    plain = strip_markdown(text)
    pattern = re.compile(r"(?<!\w)" + re.escape(wanted).replace(r"\ ", r"\s+") + r"(?!\w)", re.IGNORECASE)
    if len(pattern.findall(plain)) != 1 or len(_WORD.findall(plain)) > 20:
        return "does not state it"
    rest = pattern.sub(" ", plain)
    known = {w.casefold() for w in _WORD.findall(instruction)} | (set() if _CONTRAST.search(rest) else set(seen))
    names = [w for w in _CAPITALIZED.findall(rest) if w.casefold() not in FRAMING_WORDS and w.casefold() not in known]
    return f"names something else too ({', '.join(names[:3])})" if names else None


def match_one(predicted: str, expected, tolerance: float | None, unit: str | None = None, instruction: str = "",
              seen: set[str] = frozenset()) -> bool:
    return match_problem(predicted, expected, tolerance, unit, instruction, seen) is None


def match_problem(predicted: str, expected, tolerance: float | None, unit: str | None = None, instruction: str = "",
                  seen: set[str] = frozenset()) -> str | None:
    if _is_number(expected):
        return _number_problem(predicted, expected, tolerance, unit, instruction)
    return _text_problem(predicted, str(expected), instruction, seen)


def hedge(text: str, expected) -> str | None:
    """The hedging, negating or alternative-offering word of an answer, if any (outside the expected text)."""
    items = expected if isinstance(expected, list) else [expected]
    rest = strip_markdown(text)
    for item in items:
        if not _is_number(item):
            rest = re.sub(re.escape(str(item)), " ", rest, flags=re.IGNORECASE)
    match = _HEDGE.search(rest)
    return match.group(0) if match else None


def cut_off_word(text: str, vocabulary: set[str], unit: str | None = None) -> str | None:
    """The last word of `text` when it looks cut off: no closing punctuation, not a word of the trajectory
    (`vocabulary`, casefolded) but the start of one ('646 penc' for 'pencils'), and not a unit symbol: one the
    task asks for, or one written as a symbol ('km/h', '5h')."""
    stripped = strip_markdown(text).rstrip()
    words = _WORD.findall(stripped)
    if not words or not stripped.endswith(words[-1]):
        return None
    last = words[-1].casefold()
    if last in vocabulary or any(last == w + "s" or w == last + "s" or w == last + "es" for w in vocabulary):
        return None
    if not any(w.startswith(last) and len(w) > len(last) for w in vocabulary):
        return None
    before = stripped[: -len(words[-1])][-1:]
    if (unit or before in "/°0123456789") and _is_unit(words[-1]) or _is_unit_name(words[-1]):
        return None
    return words[-1]


def _is_unit(word: str) -> bool:
    from pipeline.tools.convert import registry

    try:
        registry().Unit(word)
        return True
    except Exception:  # pint raises several kinds for a non-unit; any of them means "not a unit"
        return False


def _is_unit_name(word: str) -> bool:
    """A unit by its own name or symbol ('mile', 'hours', 'min'), not one pint builds from a prefix ('exam' is
    exa-metre, 'pl' pico-litre: a cut-off word, in prose)."""
    from pipeline.tools.convert import registry

    return any(prefix == "" for prefix, _, _ in registry().parse_unit_name(word))


def mentioned(text: str, ground_truth: dict) -> bool:
    """Whether a conversational message states the answer (tau-bench's required outputs): a number within the
    tolerance anywhere in it, or the answer text inside it; every item of a list answer."""
    expected = ground_truth.get("answer")
    tolerance = ground_truth.get("tolerance")
    for item in expected if isinstance(expected, list) else [expected]:
        if _is_number(item):
            if not any(number_matches(token, value, item, tolerance) for token, value in numbers_in(text)):
                return False
        elif normalize_text(str(item)) not in normalize_text(text):
            return False
    return True


def answers_match(predicted: str | None, ground_truth: dict, instruction: str = "", vocabulary: set[str] | None = None) -> tuple[bool, str]:
    """(matches, detail) for a final answer against `ground_truth['answer']`; `instruction` tells which numbers
    and names the question itself gave, `vocabulary` (the trajectory's words) lets a cut-off word be seen."""
    expected = ground_truth.get("answer")
    tolerance, unit = ground_truth.get("tolerance"), ground_truth.get("unit")
    if predicted is None or not predicted.strip():
        return False, "no final answer"
    if word := hedge(predicted, expected):
        return False, f"{predicted!r} hedges or offers alternatives ({word!r}); expected {expected!r}"
    if vocabulary and (word := cut_off_word(predicted, vocabulary, unit)):
        return False, f"{predicted!r} ends in a cut-off word ({word!r})"
    if isinstance(expected, list):
        remaining = [p for p in _LIST_SPLIT.split(normalize_text(predicted)) if p]
        for item in expected:
            hit = next((p for p in remaining if match_one(p, item, tolerance, unit, instruction, vocabulary or set())), None)
            if hit is None:
                return False, f"expected item {item!r} not found in {predicted!r}"
            remaining.remove(hit)
        if remaining:
            return False, f"unexpected extra items {remaining!r}"
        return True, "all items match"
    problem = match_problem(predicted, expected, tolerance, unit, instruction, vocabulary or set())
    if problem is None:
        return True, f"{predicted!r} matches {expected!r}"
    return False, f"expected {expected!r}, got {predicted!r}: {problem}"
