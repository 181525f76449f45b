"""The request hot path for chat and completions: JSON bodies POSTed over one aiohttp session per endpoint.

A benchmark showed the openai SDK is the wall here (scripts/bench_sample.py, docs/llm.md): building a request
through it (options, URL parsing, header merging, its httpx layer over aiohttp) took about 80 % of the
client's CPU per call. This path sends the same body with the same headers (Authorization: Bearer KEY) and
hands back status, headers and body; pipeline/llm/client.py classifies them. The SDK stays for everything
else (GET /models in the preflight, Files and Batches).

    poster = JSONPoster("http://127.0.0.1:8000/v1", api_key=None, timeout_s=120, connections=64)
    status, headers, body = await poster.post("/chat/completions", {"model": ..., "messages": ...})
"""

import json
import urllib.parse
import urllib.request

import aiohttp

from pipeline import __version__


class JSONPoster:
    def __init__(self, base_url: str, api_key: str | None, timeout_s: float, connections: int):
        self.base_url = base_url.rstrip("/")
        self.headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": f"trajforge/{__version__}"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.connections = connections
        self.proxy = env_proxy(self.base_url)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        """The session, made in the running event loop on first use (aiohttp binds it to that loop)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.connections)
            self._session = aiohttp.ClientSession(connector=connector, headers=self.headers, timeout=self.timeout, proxy=self.proxy)
        return self._session

    async def post(self, path: str, body: dict) -> tuple[int, "aiohttp.typedefs.CIMultiDictProxy", bytes]:
        """(status, headers, body bytes); raises TimeoutError, aiohttp.ClientError or OSError."""
        async with self._open().post(self.base_url + path, data=json.dumps(body).encode()) as response:
            return response.status, response.headers, await response.read()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def env_proxy(url: str) -> str | None:
    """The HTTP(S)_PROXY for `url` unless NO_PROXY covers its host, as the SDK honours them. Read once: aiohttp's
    trust_env looks the proxy and ~/.netrc up in a thread on every request, which cost more than the request."""
    host = urllib.parse.urlsplit(url).hostname
    if not host or urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(urllib.parse.urlsplit(url).scheme)
