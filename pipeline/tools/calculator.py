"""Safe arithmetic: an AST walker over exact fractions, no Python `eval`.

Sandboxed code can call it (CodeAct), and it runs on the host, so its work is bounded by construction: every
intermediate result, not only the final one, has at most MAX_BITS bits in its numerator and denominator, and
a power is refused before it is computed when its result would exceed that.
"""

import ast
import math
import operator
from fractions import Fraction

from pipeline.tools.base import Tool, ToolError

MAX_EXPONENT = 64
MAX_DIGITS = 60
MAX_BITS = 4096  # about 1233 decimal digits: any 500-character literal fits, and each step stays microseconds
MAX_ROUND_DIGITS = 100

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_FUNCTIONS = {
    "sqrt": lambda x: math.sqrt(x),
    "abs": abs,
    "round": lambda x, n=0: round(x, _round_digits(n)),
    "min": min,
    "max": max,
    "floor": math.floor,
    "ceil": math.ceil,
}


def _bits(value) -> int:
    return max(value.numerator.bit_length(), value.denominator.bit_length()) if isinstance(value, Fraction) else 0


def _bounded(value):
    if _bits(value) > MAX_BITS:
        raise ToolError(f"an intermediate result is too large (limit {MAX_BITS} bits)")
    if isinstance(value, complex):
        raise ToolError("the result is not a real number")
    return value


def _round_digits(n) -> int:
    if abs(n) > MAX_ROUND_DIGITS:
        raise ToolError(f"round: {n} digits is too large (limit {MAX_ROUND_DIGITS})")
    return int(n)


def _power(base, exponent):
    if abs(exponent) > MAX_EXPONENT:
        raise ToolError(f"exponent {exponent} is too large (limit {MAX_EXPONENT})")
    if isinstance(exponent, Fraction) and exponent.denominator == 1:
        if abs(int(exponent)) * _bits(base) > MAX_BITS:
            raise ToolError(f"the power is too large (limit {MAX_BITS} bits)")
        return base ** int(exponent)
    return float(base) ** float(exponent)


def _eval(node):
    return _bounded(_step(node))


def _step(node):
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _eval(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        op = _BINARY.get(type(node.op))
        if op is None:
            raise ToolError(f"operator {type(node.op).__name__} is not supported")
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise ToolError("division by zero")
        return op(left, right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and not node.keywords:
        args = [_eval(arg) for arg in node.args]
        try:
            result = _FUNCTIONS[node.func.id](*args)
        except (TypeError, ValueError) as exc:
            raise ToolError(f"{node.func.id}: {exc}") from None
        return Fraction(result) if isinstance(result, int) else result
    raise ToolError(f"unsupported expression element: {ast.dump(node)[:60]}")


def format_number(value) -> str:
    """Integers print as integers; everything else with up to 10 significant digits."""
    if isinstance(value, Fraction) and value.denominator == 1:
        return str(value.numerator)
    number = float(value)
    if math.isinf(number) or math.isnan(number):
        raise ToolError("result is not a finite number")
    if number == int(number) and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.10g}"


def evaluate(expression: str) -> str:
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    if len(text) > 500:
        raise ToolError("expression is too long (limit 500 characters)")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolError(f"cannot parse expression {expression!r}") from None
    try:
        value = _eval(tree)
    except OverflowError:
        raise ToolError("result is too large") from None
    if isinstance(value, Fraction) and len(str(value.numerator)) > MAX_DIGITS:
        raise ToolError("result is too large")
    return format_number(value)


TOOL = Tool(
    name="calculator",
    description="Evaluate an arithmetic expression exactly. Supports + - * / // % ** and sqrt, abs, round, min, max, floor, ceil.",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "e.g. (3 * 24 - 17) / 5"}},
        "required": ["expression"],
        "additionalProperties": False,
    },
    fn=lambda args, env: evaluate(args["expression"]),
    concurrent=True,  # pure: parallel calls may run at once
)
