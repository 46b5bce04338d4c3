"""``judge = "openai"``: any OpenAI-compatible chat-completions server (vLLM, llama.cpp's
server, Gemini's OpenAI endpoint, OpenAI itself), called with httpx.

Options (``judge_options`` of a judge reward):
- ``base_url`` (default ``$OPENAI_BASE_URL`` or https://api.openai.com/v1), ``model``;
- ``api_key_env`` — the *name* of the environment variable holding the key (default
  OPENAI_API_KEY); the key itself never goes into a recipe, a log or the run directory;
- ``concurrency`` (16) requests in flight, ``timeout`` (30 s) per request,
  ``max_retries`` (3) with exponential backoff from ``backoff`` (0.5 s) on timeouts,
  connection errors, 429 and 5xx — bounded, never endless;
- ``cache`` (default true): an on-disk SQLite cache keyed by model + messages, in
  ``$REASONLAB_CACHE/judge-cache.sqlite`` (or a path given here);
- ``temperature`` (0.0), ``max_tokens`` (256);
- ``deadline`` (120 s): the most one ``complete_many`` call (a step's judging) may take,
  retries included; what has not answered by then returns None;
- ``key_over_http_to``: a host to which the key may go over plain http. Otherwise the key
  is sent only over https or to a loopback address, and a key with any other plain-http
  ``base_url`` is refused when the judge is built.
A request that still fails returns None; the judge reward turns that into a counted
failure (the stage's failure policy decides what happens then).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import random
import sqlite3
import ipaddress
import threading
from pathlib import Path
from urllib.parse import urlsplit

from reasonlab import hookimpl


class JudgeCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT)")
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, reply: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?)", (key, reply))
            self._db.commit()


@functools.cache
def tls_context():
    """One TLS context for every client: loading the CA bundle takes ~20 ms, which a new
    ``AsyncClient`` per ``complete_many`` call would otherwise pay every time."""
    import ssl

    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class OpenAIJudge:
    def __init__(self, options: dict):
        self.base_url = options.get("base_url") or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.model = options.get("model", "gpt-4o-mini")
        self.api_key_env = options.get("api_key_env", "OPENAI_API_KEY")
        self.concurrency = int(options.get("concurrency", 16))
        self.timeout = float(options.get("timeout", 30.0))
        self.max_retries = int(options.get("max_retries", 3))
        self.backoff = float(options.get("backoff", 0.5))
        self.temperature = float(options.get("temperature", 0.0))
        self.max_tokens = int(options.get("max_tokens", 256))
        cache = options.get("cache", True)
        default = Path(os.environ.get("REASONLAB_CACHE", Path.home() / ".cache" / "reasonlab")) / "judge-cache.sqlite"
        self.cache = JudgeCache(Path(cache) if isinstance(cache, str) else default) if cache else None
        self.deadline = float(options.get("deadline", 120.0))
        self.stats = {"requests": 0, "retries": 0, "failures": 0, "cache_hits": 0, "past_deadline": 0}
        if os.environ.get(self.api_key_env) and not key_may_go_to(self.base_url, options.get("key_over_http_to")):
            raise ValueError(f"judge base_url {self.base_url!r} is plain http: the key in ${self.api_key_env} is sent "
                             "only over https or to a loopback address; name the host in "
                             "judge_options.key_over_http_to to allow it")

    def _key(self, messages: list[dict]) -> str:
        blob = json.dumps({"url": self.base_url, "model": self.model, "t": self.temperature, "m": messages}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def complete_many(self, conversations: list[list[dict]]) -> list[str | None]:
        """One reply (or None) per conversation, ``concurrency`` requests at a time."""
        return asyncio.run(self._complete_many(conversations))

    async def _complete_many(self, conversations):
        import httpx

        semaphore = asyncio.Semaphore(self.concurrency)
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=self.timeout, limits=limits,
                                     verify=tls_context()) as client:
            tasks = [asyncio.ensure_future(self._one(client, semaphore, m)) for m in conversations]
            done, late = await asyncio.wait(tasks, timeout=self.deadline) if tasks else (set(), set())
            for task in late:
                task.cancel()
            self.stats["past_deadline"] += len(late)
            self.stats["failures"] += len(late)
            return [task.result() if task in done else None for task in tasks]

    async def _one(self, client, semaphore, messages) -> str | None:
        import httpx

        cache_key = self._key(messages)
        if self.cache and (cached := self.cache.get(cache_key)) is not None:
            self.stats["cache_hits"] += 1
            return cached
        body = {"model": self.model, "messages": messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens}
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.stats["retries"] += 1
                await asyncio.sleep(min(8.0, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random()))
            async with semaphore:
                self.stats["requests"] += 1
                try:
                    response = await client.post("/chat/completions", json=body)
                except (httpx.TimeoutException, httpx.TransportError):
                    continue
            if response.status_code == 429 or response.status_code >= 500:
                continue
            if response.status_code >= 400:
                break  # a request the server will never accept: do not retry
            try:
                reply = response.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                continue  # garbage body: try again
            if isinstance(reply, str):
                if self.cache:
                    self.cache.put(cache_key, reply)
                return reply
        self.stats["failures"] += 1
        return None


def key_may_go_to(base_url: str, allowed_http_host: str | None = None) -> bool:
    """An API key goes over https, to loopback, or to the one plain-http host the recipe names."""
    parts = urlsplit(base_url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    if host == "localhost" or (allowed_http_host and host == allowed_http_host):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@hookimpl
def register_judges(register):
    register("openai", OpenAIJudge)
