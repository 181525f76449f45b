"""The Batch API path (`trajforge sample --batch`, or `batch: true` in an endpoint profile).

The response cache is the state. In each round every unfinished episode replays from the cache up to its
first reply not yet known; that request is deferred here instead of sent (the client raises `Deferred`).
At the end of the round the deferred requests go out as batch jobs (split at the provider's limits on requests
and bytes per job, all submitted before any is awaited): request JSONL (custom_id = the cache
key) -> POST /files -> POST /batches -> poll -> download the output and error files -> replies into the
cache. The next round replays every episode one step further, so a multi-step trajectory advances one step
per round. The job id is recorded in the cache file before polling starts: a restart between or during
rounds picks the job up again instead of paying for it twice. Replies are priced at the endpoint's
`batch_discount` (OpenAI: 0.5).
"""

import asyncio
import json

from pipeline.errors import UserError
from pipeline.llm.client import PATHS, LLMError, parse_reply

TERMINAL = ("completed", "failed", "expired", "cancelled")
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


class BatchRounds:
    def __init__(self, client):
        self.client = client
        self.pending: dict[str, dict] = {}  # cache key -> {"mode", "body"}
        self.failed: dict[str, LLMError] = {}  # definitive errors of earlier rounds, raised again on replay

    def defer(self, key: str, mode: str, body: dict) -> None:
        if key in self.failed:
            raise self.failed[key]
        self.pending[key] = {"mode": mode, "body": body}

    async def resume(self) -> None:
        """Finish the jobs an earlier process submitted (their replies go into the cache)."""
        for batch_id, requests in self.client.cache.open_batches(self.client.name):
            await self.finish(batch_id, requests)

    async def run_round(self) -> int:
        """Submit the deferred requests (jobs per mode, split at the profile's batch_max_requests and
        batch_max_bytes), then wait for all of them; returns how many were sent."""
        pending, self.pending = self.pending, {}
        jobs = []
        for mode in sorted({item["mode"] for item in pending.values()}):
            lines = {key: json.dumps({"custom_id": key, "method": "POST", "url": "/v1" + PATHS[mode], "body": item["body"]},
                                     ensure_ascii=False) for key, item in pending.items() if item["mode"] == mode}
            for chunk in self.chunks(lines):
                jobs.append((await self.submit(mode, chunk), {key: mode for key in chunk}))
        waiting = [asyncio.ensure_future(self.finish(batch_id, requests)) for batch_id, requests in jobs]
        try:
            await asyncio.gather(*waiting)
        except BaseException:  # a failed job stops the stage; the others stay recorded and resume on a re-run
            for job in waiting:
                job.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            raise
        return len(pending)

    def chunks(self, lines: dict[str, str]) -> list[dict[str, str]]:
        """`lines` split into jobs within the provider's limits (requests and bytes per input file)."""
        most, most_bytes = self.client.profile["batch_max_requests"], self.client.profile["batch_max_bytes"]
        chunks, size = [{}], 0
        for key, line in lines.items():
            length = len(line.encode()) + 1
            if length > most_bytes:
                raise UserError(f"endpoints.{self.client.name}: one batch request is {length} bytes, over batch_max_bytes={most_bytes}")
            if len(chunks[-1]) >= most or size + length > most_bytes:
                chunks.append({})
                size = 0
            chunks[-1][key] = line
            size += length
        return [chunk for chunk in chunks if chunk]

    async def submit(self, mode: str, chunk: dict[str, str]) -> str:
        """Upload one job's request JSONL and create the job; its id is recorded before anything waits on it."""
        api = self.client.api
        upload = await api.files.create(file=("requests.jsonl", ("\n".join(chunk.values()) + "\n").encode()), purpose="batch")
        job = await api.batches.create(input_file_id=upload.id, endpoint="/v1" + PATHS[mode], completion_window="24h")
        self.client.stats["requests"] += len(chunk)
        self.client.cache.add_batch(job.id, self.client.name, {key: mode for key in chunk})
        return job.id

    async def finish(self, batch_id: str, requests: dict[str, str]) -> None:
        api = self.client.api
        job = await api.batches.retrieve(batch_id)
        while job.status not in TERMINAL:
            await asyncio.sleep(self.client.profile["batch_poll_s"])
            job = await api.batches.retrieve(batch_id)
        if job.status == "failed":
            self.client.cache.close_batch(batch_id)
            errors = "; ".join(e.message or e.code or "" for e in (job.errors.data or [])) if job.errors else ""
            raise UserError(f"endpoints.{self.client.name}: batch {batch_id} failed{': ' + errors if errors else ''}")
        for file_id in (job.output_file_id, job.error_file_id):
            if file_id:
                content = await api.files.content(file_id)
                for line in content.text.splitlines():
                    if line.strip():
                        self.ingest(json.loads(line), requests)
        self.client.cache.close_batch(batch_id)

    def ingest(self, item: dict, requests: dict[str, str]) -> None:
        """One result line: a reply goes into the cache; a definitive error is kept for the replay to raise;
        a transient one (or a request the job never ran) is simply asked again next round."""
        key = item.get("custom_id")
        if key not in requests:
            return
        response = item.get("response") or {}
        status = response.get("status_code")
        if status == 200:
            try:
                self.client.record(key, parse_reply(requests[key], response.get("body") or {}), batch=True)
            except LLMError as exc:
                self.failed[key] = exc
        elif status is not None and status not in RETRYABLE_STATUS:
            body = response.get("body") or {}
            error = body.get("error") if isinstance(body.get("error"), dict) else item.get("error") or {}
            kind = {401: "auth", 403: "auth", 404: "not_found"}.get(status, "bad_request")
            self.failed[key] = LLMError(kind, str(error.get("message") or error)[:300], status)
