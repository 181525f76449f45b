"""Aggregating judge votes into a committee verdict, and agreement between judges over a run.

A vote is a judgment row {judge, model, passed, score, rationale}; `passed: None` is an abstention (the judge's
endpoint failed, or it returned no valid verdict twice). Abstentions are counted, never guessed.
"""

from itertools import combinations

RULES = ("majority", "unanimous", "mean_score", "weighted")


def aggregate(votes: list[dict], weights: dict[str, float], rule: str, threshold: float, quorum: int) -> tuple[bool | None, str]:
    """(verdict, detail). verdict is None when fewer than `quorum` judges voted."""
    cast = [v for v in votes if v["passed"] is not None]
    abstained = len(votes) - len(cast)
    tally = f"{sum(v['passed'] for v in cast)}/{len(cast)} passed" + (f", {abstained} abstained" if abstained else "")
    if len(cast) < quorum or not cast:
        return None, f"no quorum: {len(cast)} of {len(votes)} judges voted (quorum {quorum}); {tally}"
    if rule == "majority":
        passes = sum(v["passed"] for v in cast)
        return passes * 2 > len(cast), f"majority: {tally}"
    if rule == "unanimous":
        return all(v["passed"] for v in cast), f"unanimous: {tally}"
    if rule == "mean_score":
        scores = [v["score"] for v in cast if v["score"] is not None]
        mean = sum(scores) / len(scores) if scores else 0.0
        return mean >= threshold, f"mean score {mean:.2f} (threshold {threshold}); {tally}"
    total = sum(weights.get(v["judge"], 1.0) for v in cast)
    share = sum(weights.get(v["judge"], 1.0) for v in cast if v["passed"]) / total if total else 0.0
    return share >= threshold, f"weighted pass share {share:.2f} (threshold {threshold}); {tally}"


def pairwise_agreement(rows_votes: list[dict[str, bool]]) -> dict[str, float]:
    """For each pair of judges, the fraction of rows (where both voted) on which they agree."""
    judges = sorted({j for votes in rows_votes for j in votes})
    out = {}
    for a, b in combinations(judges, 2):
        both = [(votes[a], votes[b]) for votes in rows_votes if a in votes and b in votes]
        if both:
            out[f"{a}~{b}"] = round(sum(x == y for x, y in both) / len(both), 4)
    return out


def fleiss_kappa(rows_votes: list[dict[str, bool]]) -> float | None:
    """Fleiss' kappa over pass/fail, on the rows where every judge voted (None if fewer than 2 judges or rows,
    or when every vote is the same and kappa is undefined)."""
    judges = sorted({j for votes in rows_votes for j in votes})
    n = len(judges)
    complete = [votes for votes in rows_votes if len(votes) == n]
    if n < 2 or len(complete) < 2:
        return None
    per_row = [(sum(votes.values()), n - sum(votes.values())) for votes in complete]
    p_pass = sum(p for p, _ in per_row) / (len(complete) * n)
    expected = p_pass**2 + (1 - p_pass) ** 2
    observed = sum((p * (p - 1) + f * (f - 1)) / (n * (n - 1)) for p, f in per_row) / len(complete)
    if expected == 1:
        return None
    return round((observed - expected) / (1 - expected), 4)


def run_stats(rows: list[tuple[list | None, list | None]]) -> dict:
    """Committee figures over a run, from each row's (judgments, checks): pass rate, abstentions per judge,
    pairwise agreement, Fleiss' kappa, and leniency: how often the committee passed a trajectory whose answer
    check failed."""
    votes, verdicts, lenient, wrong = [], [], 0, 0
    abstained: dict[str, int] = {}
    for judgments, checks in rows:
        if not judgments:
            continue
        votes.append({j["judge"]: j["passed"] for j in judgments if j["passed"] is not None})
        for j in judgments:
            abstained[j["judge"]] = abstained.get(j["judge"], 0) + (j["passed"] is None)
        named = {c["name"]: c["passed"] for c in checks or []}
        verdicts.append(named.get("committee"))
        if named.get("answer") is False:
            wrong += 1
            lenient += bool(named.get("committee"))
    if not votes:
        return {}
    return {
        "rows_judged": len(votes),
        "committee_pass_rate": round(sum(bool(v) for v in verdicts) / len(verdicts), 4),
        "abstentions": abstained,
        "pairwise_agreement": pairwise_agreement(votes),
        "fleiss_kappa": fleiss_kappa(votes),
        "leniency": round(lenient / wrong, 4) if wrong else None,
    }
