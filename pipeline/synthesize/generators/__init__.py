"""The generator registry: names used in configs -> Generator. A new generator is one module plus one line here;
an installed package adds its own through the `trajforge.generators` entry point (pipeline/plugins.py)."""

from pipeline import plugins
from pipeline.synthesize.generators import arithmetic, doc_search, kb_multihop, python_compute, sql_table, store_refunds, units_dates
from pipeline.synthesize.generators.base import Generator

GENERATORS: dict[str, Generator] = {g.name: g for g in (arithmetic.GENERATOR, sql_table.GENERATOR, units_dates.GENERATOR, kb_multihop.GENERATOR)}
GENERATORS.update({g.name: g for g in (python_compute.GENERATOR, doc_search.GENERATOR, store_refunds.GENERATOR)})


def _generator(name: str, value) -> Generator:
    if not isinstance(value, Generator):
        raise TypeError(f"{value!r} is not a pipeline.synthesize.generators.base.Generator")
    return value


GENERATORS = plugins.Registry("generators", GENERATORS, _generator)
