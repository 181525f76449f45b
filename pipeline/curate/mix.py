"""Composition: per-domain caps and the target mix of buckets (by source, domain, format, difficulty, pass-rate
band).

Buckets are the values of the `by` fields joined by '/'. Each bucket's quota is its ratio of the total (largest
remainders, so quotas add up exactly). Within a bucket rows are picked in a seeded hash order of their ids, so
the same seed and rows give the same mix. A bucket with fewer rows than its quota either fails (naming it) or
gives its shortfall to the other buckets in proportion to their ratios, as far as they have rows.
"""

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.curate import scan, textsig
from pipeline.errors import UserError

SEPARATOR = "/"


def known_values(config) -> dict[str, set[str]]:
    """The bucket values a config can produce, for checking ratio keys and caps before any work."""
    from pipeline.synthesize.generators import GENERATORS

    teachers = config["sample"]["teachers"]
    return {
        "domain": {GENERATORS[g["name"]].domain for g in config["synthesize"]["generators"]},
        "format": {fmt for t in teachers for fmt in t["formats"]},
        "source": {"program" if t["policy"] == "program" else f"llm:{config['endpoints'][t['endpoint']]['model']}" for t in teachers},
        "difficulty": {str(d) for d in range(1, 11)},
        "pass_rate_band": set(scan.BANDS),
    }


def check(section: dict, config) -> None:
    """Reject ratios and caps that cannot mean anything, before curate reads a row."""
    known = known_values(config)
    for domain in section["filters"]["domain_caps"]:
        if domain not in known["domain"]:
            raise UserError(f"curate.filters.domain_caps: unknown domain {domain!r} (domains of this config: {', '.join(sorted(known['domain']))})")
    mix = section["mix"]
    ratios = mix["ratios"]
    if not ratios:
        if mix["total"] is not None:
            raise UserError("curate.mix.total needs curate.mix.ratios (bucket -> share of the total)")
        return
    total = sum(ratios.values())
    if abs(total - 1) > 0.01:
        raise UserError(f"curate.mix.ratios: shares sum to {total:g}; they must sum to 1 (e.g. {{a: 0.7, b: 0.3}})")
    for key in ratios:
        parts = key.split(SEPARATOR)
        if len(parts) != len(mix["by"]):
            raise UserError(f"curate.mix.ratios: bucket {key!r} must name {len(mix['by'])} value(s) joined by "
                            f"'{SEPARATOR}' ({SEPARATOR.join(mix['by'])})")
        for field, value in zip(mix["by"], parts):
            if value not in known[field]:
                raise UserError(f"curate.mix.ratios: bucket {key!r}: unknown {field} {value!r} "
                                f"(known: {', '.join(sorted(known[field], key=str))})")


def bucket_keys(catalog: pa.Table, by: list[str]) -> pa.Array:
    columns = [pc.cast(catalog.column(f), pa.string()) for f in by]
    return columns[0] if len(columns) == 1 else pc.binary_join_element_wise(*columns, SEPARATOR)


def domain_capped(candidates: np.ndarray, domains: np.ndarray, caps: dict[str, int], rank: np.ndarray) -> np.ndarray:
    """Rows beyond their domain's cap, counting best-ranked rows first."""
    ordered = candidates[np.argsort(rank[candidates], kind="stable")]
    dropped = []
    for domain, cap in caps.items():
        in_domain = ordered[domains[ordered] == domain]
        dropped.append(in_domain[cap:])
    return np.concatenate(dropped) if dropped else np.zeros(0, dtype=np.int64)


def quotas(ratios: dict[str, float], available: dict[str, int], total: int | None, on_short: str) -> dict[str, int]:
    shares = {b: r / sum(ratios.values()) for b, r in ratios.items()}
    if total is None:
        total = min(math.floor(available[b] / s + 1e-9) for b, s in shares.items())
    quota = _largest_remainder(shares, total)
    short = {b: (q, available[b]) for b, q in quota.items() if available[b] < q}
    if short and on_short == "fail":
        named = "; ".join(f"{b} has {have} row(s), needs {need}" for b, (need, have) in short.items())
        raise UserError(f"curate.mix: bucket too small: {named} (lower mix.total, change mix.ratios, or set mix.on_short: fill)")
    taken = {b: min(q, available[b]) for b, q in quota.items()}
    while sum(taken.values()) < total:
        open_buckets = {b: shares[b] for b in shares if taken[b] < available[b]}
        if not open_buckets:
            break
        extra = _largest_remainder({b: s / sum(open_buckets.values()) for b, s in open_buckets.items()}, total - sum(taken.values()))
        for b, n in extra.items():
            taken[b] = min(available[b], taken[b] + n)
    return taken


def _largest_remainder(shares: dict[str, float], total: int) -> dict[str, int]:
    exact = {b: s * total for b, s in shares.items()}
    out = {b: math.floor(v) for b, v in exact.items()}
    for b in sorted(exact, key=lambda b: (out[b] - exact[b], b))[: total - sum(out.values())]:
        out[b] += 1
    return out


def select(candidates: np.ndarray, catalog: pa.Table, mix: dict, seed: int) -> tuple[np.ndarray, list[dict]]:
    """(rows not selected, the achieved mix table)."""
    keys = bucket_keys(catalog.take(pa.array(candidates)), mix["by"])
    members = {b: np.flatnonzero(pc.equal(keys, b).to_numpy(zero_copy_only=False)) for b in mix["ratios"]}
    order_key = textsig.fmix64(textsig.hash_strings(catalog.column("id").take(pa.array(candidates))) ^ np.uint64(seed + 1))
    available = {b: len(rows) for b, rows in members.items()}
    taken = quotas(mix["ratios"], available, mix["total"], mix["on_short"])
    chosen = [members[b][np.argsort(order_key[members[b]], kind="stable")][:n] for b, n in taken.items()]
    picked = np.zeros(len(candidates), dtype=bool)
    picked[np.concatenate(chosen) if chosen else []] = True
    achieved = sum(taken.values())
    table = [{"bucket": b, "ratio": mix["ratios"][b], "available": available[b], "selected": taken[b],
              "share": round(taken[b] / achieved, 4) if achieved else 0.0} for b in mix["ratios"]]
    return candidates[~picked], table
