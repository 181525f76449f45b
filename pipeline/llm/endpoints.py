"""Open the endpoints a stage uses, before any work starts: read each key from its env var, check every
endpoint answers and serves its model, and hand out one LLMClient per endpoint (sharing the run's response
cache). `base_url: local` must already be resolved to a running server (`local.Serving`, which the runner
enters around a stage).

    async with Endpoints(config["endpoints"], ["gpt"], run_dir) as clients:
        reply = await clients["gpt"].chat(...)
"""

import copy
import math
import os
import time
from pathlib import Path

import openai

from pipeline.errors import UserError
from pipeline.llm import local
from pipeline.llm.batch import BatchRounds
from pipeline.llm.cache import ResponseCache
from pipeline.llm.client import LLMClient

CACHE_FILE = "cache.sqlite"
SHARED_LIMITS = ("max_concurrency", "rpm", "tpm")
RECHECK_AFTER_S = 60.0
_answered: dict[tuple, float] = {}  # (base_url, model, key variable) -> when this process last found it serving


def share_endpoint_limits(data: dict, workers: int) -> dict:
    """A copy of the config data whose endpoint limits are each of `workers` processes' share (at least 1),
    so that together they stay within each endpoint's budget."""
    data = copy.deepcopy(data)
    for profile in data.get("endpoints", {}).values():
        for key in SHARED_LIMITS:
            if isinstance(profile.get(key), (int, float)) and profile[key] > 0:
                profile[key] = max(1, math.floor(profile[key] / workers))
    return data


def summed_stats(clients: dict) -> dict:
    """Request counts and spend of this invocation, summed over a stage's open endpoints, and per endpoint
    the concurrency its replies came at (adaptive: pipeline/llm/concurrency.py) and its 429s."""
    totals = {}
    for client in clients.values():
        for key, value in client.stats.items():
            totals[key] = totals.get(key, 0) + value
    if clients:
        totals["endpoints"] = {name: {"concurrency": client.concurrency.settled(), "max_concurrency": client.profile["max_concurrency"],
                                      "rate_limited": client.stats["rate_limited"]} for name, client in clients.items()}
    return totals


def api_key(name: str, profile: dict) -> str | None:
    var = profile["api_key_env"]
    if not var:
        return None
    value = os.environ.get(var)
    if not value:
        raise UserError(f"endpoints.{name}.api_key_env: environment variable {var} is not set (it should hold the API key)")
    return value


class Endpoints:
    def __init__(self, profiles: dict, names, run_dir: Path):
        self.profiles, self.names, self.run_dir = profiles, sorted(set(names)), Path(run_dir)
        self.clients: dict[str, LLMClient] = {}
        self.cache: ResponseCache | None = None

    async def __aenter__(self) -> dict[str, LLMClient]:
        try:
            keys = {name: api_key(name, self.profiles[name]) for name in self.names}
            self.cache = ResponseCache(self.run_dir / CACHE_FILE)
            for name in self.names:
                profile = self.profiles[name]
                if profile["base_url"] == "local":
                    raise RuntimeError(f"endpoints.{name}: start the local server first (pipeline.llm.local.Serving)")
                client = LLMClient(name, profile, self.cache, keys[name])
                self.clients[name] = client
                if not recently_answered(profile):  # `trajforge run` checked it a moment ago in this process
                    await preflight(name, profile, client.api)
                if profile["batch"]:
                    client.batch = BatchRounds(client)
                    await client.batch.resume()
        except BaseException:
            await self.close()
            raise
        return self.clients

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
        if self.cache:
            self.cache.close()

    async def __aexit__(self, *exc) -> None:
        await self.close()


async def check(profiles: dict, names) -> None:
    """The checks `Endpoints` makes, without starting anything: `trajforge run` calls this before its first
    stage, so a bad endpoint fails the run before any work. A `local` endpoint is checked for its packages."""
    for name in sorted(names):
        profile = profiles[name]
        if profile["base_url"] == "local":
            local.check_installed()
            continue
        api = openai.AsyncOpenAI(base_url=profile["base_url"], api_key=api_key(name, profile) or "unused", max_retries=0,
                                 timeout=min(30.0, profile["timeout_s"]))
        try:
            await preflight(name, profile, api)
        finally:
            await api.close()


def recently_answered(profile: dict) -> bool:
    seen = _answered.get((profile["base_url"], profile["model"], profile["api_key_env"]))
    return seen is not None and time.monotonic() - seen < RECHECK_AFTER_S


async def preflight(name: str, profile: dict, api: openai.AsyncOpenAI) -> None:
    """One GET /models: a wrong base_url, a rejected key or a model the endpoint does not serve is one clear
    error here, not thousands of failed rows later."""
    url = profile["base_url"]
    try:
        served = [model.id async for model in api.models.list()]
    except openai.AuthenticationError:
        raise UserError(f"endpoints.{name}.api_key_env: {url} rejected the key in ${profile['api_key_env']} (HTTP 401)") from None
    except openai.APIStatusError as exc:
        raise UserError(f"endpoints.{name}.base_url: {url}/models answered HTTP {exc.status_code}; "
                        f"is this an OpenAI-compatible base URL (usually ending in /v1)?") from None
    except openai.APIConnectionError as exc:
        raise UserError(f"endpoints.{name}.base_url: cannot reach {url} ({exc.__cause__ or exc})") from None
    if profile["model"] not in served:
        shown = ", ".join(served[:8]) + (" ..." if len(served) > 8 else "")
        raise UserError(f"endpoints.{name}.model: {url} does not serve '{profile['model']}' (it serves: {shown or 'nothing'})")
    _answered[(url, profile["model"], profile["api_key_env"])] = time.monotonic()
