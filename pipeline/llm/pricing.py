"""What a request costs, from an endpoint profile's prices: the one formula the client, the budget and
`trajforge plan` share.

    usd = (uncached prompt tokens * price_input_per_mtok
           + cached prompt tokens * price_cached_input_per_mtok   (price_input_per_mtok when null)
           + completion tokens * price_output_per_mtok) / 1e6
    usd *= 1 - batch_discount                                       (Batch API requests only)

Completion tokens include reasoning tokens (providers bill them as output). Cached prompt tokens are what the
reply's usage reports (`cached_tokens` in the client's reading of it), at most the prompt tokens.
"""


def cached_price(profile: dict) -> float:
    price = profile["price_cached_input_per_mtok"]
    return profile["price_input_per_mtok"] if price is None else price


def cost_usd(profile: dict, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0, batch: bool = False) -> float:
    cached = min(max(cached_tokens, 0), prompt_tokens)
    usd = ((prompt_tokens - cached) * profile["price_input_per_mtok"] + cached * cached_price(profile)
           + completion_tokens * profile["price_output_per_mtok"]) / 1e6
    return usd * (1 - profile["batch_discount"]) if batch else usd


def has_prices(profile: dict) -> bool:
    return bool(profile["price_input_per_mtok"] or profile["price_output_per_mtok"] or profile["price_cached_input_per_mtok"])
