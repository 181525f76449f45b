"""A stage summary as the lines a person reads after each stage (the runner prints them)."""


def format_summary(s: dict) -> str:
    if "published" in s:
        return f"publish: {s['published']} {s['seconds']:.1f}s"
    parts = [f"{s['stage']}:"]
    if "rows_in" in s:
        parts.append(f"{s['rows_in']} rows in ->")
    parts.append(f"{s.get('rows_out', 0)} out")
    if "passed" in s and s["stage"] == "verify":
        parts.append(f"({s['passed']} passed, {s.get('errors', 0)} with errors)")
    elif s.get("errors"):
        parts.append(f"({s['errors']} with errors)")
    if s.get("waiting_retry"):
        parts.append(f"[{s['waiting_retry']} row(s) failed for a transient reason and wait for a retry: re-run the same command]")
    if s.get("checks_failed"):
        parts.append("failed checks: " + ", ".join(f"{name} {n}" for name, n in sorted(s["checks_failed"].items(), key=lambda kv: -kv[1])))
    if "train_rows" in s:
        parts.append(f"(train {s.get('train_rows', 0)}, validation {s.get('validation_rows', 0)})")
    if s.get("removed"):
        parts.append("removed: " + ", ".join(f"{reason} {n}" for reason, n in s["removed"].items()) + ";")
    tokens = s.get("prompt_tokens", 0) + s.get("completion_tokens", 0)
    if tokens:
        parts.append(f"{tokens} tokens, ${s.get('cost_usd', 0):.4f}")
    if "requests" in s:
        parts.append(f"{s['requests']} LLM requests ({s.get('cache_hits', 0)} cache hits, {s.get('retries', 0)} retries)")
    if s.get("reused"):
        parts.append(f"[reused {s['reused']} finished shard(s), wrote {s.get('written', 0)}]")
    parts.append(f"{s['seconds']:.1f}s")
    lines = [" ".join(parts)]
    lines += [f"  {name}: concurrency settled at {e['concurrency']} of {e['max_concurrency']} ({e['rate_limited']} answers were 429)"
              for name, e in sorted(s.get("endpoints", {}).items()) if e["rate_limited"] or e["concurrency"] != e["max_concurrency"]]
    for name, counts in sorted(s.get("funnels", {}).items()):  # LLM task synthesis, simulated users, reflection
        lines.append(f"  {name}: " + ", ".join(f"{key.replace('_', ' ')} {n}" for key, n in counts.items()))
    if s["stage"] == "verify":
        lines += [f"  {source}: {c['rows']} sampled -> {c['no_error']} ended without error -> {c['passed']} passed verification"
                  for source, c in sorted(s.get("funnel", {}).items())]
    if s.get("pass_rates"):
        p = s["pass_rates"]
        lines.append(f"  task pass rates: no sample passed {p['tasks_none_passed']}, some {p['tasks_some_passed']}, all {p['tasks_all_passed']}")
    if s.get("step_values"):
        v = s["step_values"]
        lines.append(f"  step values: {v['steps_labeled']} steps of {v['rows']} trajectories labelled ({v['first_error_found']} with a first error step) "
                     f"from {v['rollouts']} rollouts; {v['llm_calls']} LLM replies, ${v['cost_usd']:.4f}: "
                     f"{v['llm_calls_per_step']} replies and ${v['usd_per_step']:.6f} per labelled step")
    if s.get("judges"):
        j = s["judges"]
        lenient = "n/a" if j["leniency"] is None else f"{j['leniency']:.0%}"
        lines.append(f"  committee: passed {j['committee_pass_rate']:.0%} of {j['rows_judged']} rows; abstentions {j['abstentions']}; "
                     f"agreement {j['pairwise_agreement'] or 'n/a'}; Fleiss' kappa {j['fleiss_kappa']}; "
                     f"passed {lenient} of rows whose answer check failed")
    return "\n".join(lines)
