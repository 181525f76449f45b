"""The format registry: names used in configs -> Format."""

from pipeline.formats import codeact, cota, function_calling, react
from pipeline.formats.base import Action, Format, FormatError

FORMATS: dict[str, Format] = {f.name: f for f in (react.FORMAT, cota.FORMAT, function_calling.FORMAT, codeact.FORMAT)}

__all__ = ["FORMATS", "Action", "Format", "FormatError"]
