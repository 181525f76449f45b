"""Unit conversion with pint (a maintained units library, so the tool knows every common unit)."""

from functools import lru_cache

from pipeline.tools.base import Env, Tool, ToolError


@lru_cache(maxsize=1)
def registry():
    import pint  # imported lazily: building the registry takes a moment and most runs never convert

    return pint.UnitRegistry()


def convert_value(value: float, from_unit: str, to_unit: str) -> float:
    import pint

    ureg = registry()
    try:
        return ureg.Quantity(value, from_unit).to(to_unit).magnitude
    except pint.errors.UndefinedUnitError as exc:
        raise ToolError(f"unknown unit: {exc}") from None
    except pint.errors.DimensionalityError:
        raise ToolError(f"cannot convert {from_unit} to {to_unit}: different dimensions") from None
    except (pint.errors.PintError, ValueError, AttributeError) as exc:
        raise ToolError(f"cannot convert {from_unit!r} to {to_unit!r}: {exc}") from None


def format_quantity(value: float) -> str:
    return f"{value:.6g}"


def run(args: dict, env: Env) -> str:
    result = convert_value(args["value"], args["from_unit"], args["to_unit"])
    return f"{format_quantity(result)} {args['to_unit']}"


TOOL = Tool(
    name="convert",
    description="Convert a quantity between units (length, mass, volume, time, speed, temperature, ...).",
    parameters={
        "type": "object",
        "properties": {
            "value": {"type": "number"},
            "from_unit": {"type": "string", "description": "e.g. km, mile, kg, lb, degC, hour"},
            "to_unit": {"type": "string"},
        },
        "required": ["value", "from_unit", "to_unit"],
        "additionalProperties": False,
    },
    fn=run,
)
