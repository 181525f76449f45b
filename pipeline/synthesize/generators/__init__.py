"""The generator registry: names used in configs -> Generator. A new generator is one module plus one line here."""

from pipeline.synthesize.generators import arithmetic, kb_multihop, sql_table, units_dates
from pipeline.synthesize.generators.base import Generator

GENERATORS: dict[str, Generator] = {g.name: g for g in (arithmetic.GENERATOR, sql_table.GENERATOR, units_dates.GENERATOR, kb_multihop.GENERATOR)}
