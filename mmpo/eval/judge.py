"""An LLM judge behind any OpenAI-compatible ``/chat/completions`` endpoint, with a
resumable cache of its judgements.

Used by GPT-judged benchmarks (MMHal-Bench) and by LLM object extraction (Object
HalBench); nothing here knows about either. Standard library only.

* :class:`JudgeClient` POSTs ``{base_url}/chat/completions`` (OpenAI, vLLM, llama.cpp,
  Ollama, ... all serve it) and returns the first choice's message text. It retries
  429, 5xx and connection errors a bounded number of times with exponential back-off,
  honouring ``Retry-After`` (capped); any other 4xx fails at once, naming the URL, the
  status and the server's message.
* :class:`JudgeCache` keeps every answered request as one JSON line, keyed by a hash of
  the whole request (URL, model, messages, parameters), appended and flushed as soon as
  it arrives. A rerun, or a run resumed after a kill, sends no request already answered.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import os
import random
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mmpo.io import write_text_atomic

RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


class JudgeError(RuntimeError):
    """A judge request that failed for good (a 4xx, a malformed reply, retries used up)."""


def cache_path_for(out_path: str) -> str:
    """Where an eval command keeps its judgements: ``R.json`` → ``R.judge.jsonl``."""
    return os.path.splitext(out_path)[0] + ".judge.jsonl"


def request_key(url: str, body: dict[str, Any]) -> str:
    """SHA-256 of the request (URL + JSON body, keys sorted): equal requests, equal keys."""
    canonical = json.dumps({"url": url, "body": body}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class JudgeCache:
    """Append-only JSONL of answered requests: ``{"key", "model", "reply"}`` per line.

    Opening it reads every whole line; a line torn by a kill (or any unreadable line) is
    dropped and the file rewritten without it before anything is appended.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.replies: dict[str, str] = {}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if not os.path.isfile(path):
            return
        with open(path, encoding="utf-8") as f:
            text = f.read()
        kept, torn = [], False
        for line in text.splitlines():
            try:
                row = json.loads(line)
                self.replies[row["key"]] = row["reply"]
                kept.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                torn = True
        if torn or (text and not text.endswith("\n")):
            write_text_atomic(path, "".join(line + "\n" for line in kept))

    def __len__(self) -> int:
        return len(self.replies)

    def __contains__(self, key: str) -> bool:
        return key in self.replies

    def get(self, key: str) -> str | None:
        return self.replies.get(key)

    def add(self, key: str, reply: str, model: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"key": key, "model": model, "reply": reply}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.replies[key] = reply


@dataclass
class JudgeClient:
    """A chat-completions judge. ``base_url`` ends before ``/chat/completions``
    (``https://api.openai.com/v1``, ``http://127.0.0.1:8000/v1``)."""

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the key; unset → no Authorization header
    timeout: float = 120.0  # seconds per HTTP request
    max_retries: int = 6  # retries after the first attempt, on 429 / 5xx / connection errors
    backoff: float = 2.0  # first wait in seconds; doubled after each retry
    max_wait: float = 60.0  # cap on any one wait, Retry-After included
    jitter: float = 0.1  # each wait is stretched by a random fraction in [0, jitter)
    seed: int | None = None  # seeds the jitter
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    requests_sent: int = field(default=0, init=False)  # HTTP attempts made, retries included

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"judge URL must start with http:// or https://, got {self.base_url!r}")
        if self.max_retries < 0 or self.backoff < 0 or self.max_wait < 0 or self.jitter < 0:
            raise ValueError("max_retries, backoff, max_wait and jitter must be >= 0")
        self._rng = random.Random(self.seed)

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        cache: JudgeCache | None = None,
    ) -> str:
        """The judge's reply to ``messages`` (the first choice's ``message.content``),
        from ``cache`` when this exact request was answered before."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        key = request_key(self.url, body)
        if cache is not None and (hit := cache.get(key)) is not None:
            return hit
        reply = self._post_with_retries(body)
        if cache is not None:
            cache.add(key, reply, self.model)
        return reply

    def _post_with_retries(self, body: dict[str, Any]) -> str:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        for attempt in range(self.max_retries + 1):
            try:
                return self._post(data)
            except _Transient as err:
                if attempt == self.max_retries:
                    raise JudgeError(f"judge request to {self.url} failed after {attempt + 1} attempts; last: {err}") from None
                wait = self._wait(attempt, err.retry_after)
                print(f"judge: {err}; retrying in {wait:.1f}s ({attempt + 1}/{self.max_retries})", file=sys.stderr)
                self.sleep(wait)
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_wait)
        wait = min(self.backoff * 2**attempt, self.max_wait)
        return wait * (1 + self.jitter * self._rng.random())

    def _post(self, data: bytes) -> str:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key := os.environ.get(self.api_key_env):
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        self.requests_sent += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            message = _server_message(err.read())
            if err.code in RETRY_STATUSES:
                raise _Transient(f"HTTP {err.code} {message}", _retry_after(err.headers.get("Retry-After"))) from None
            hint = f" (is ${self.api_key_env} set to a valid key?)" if err.code in (401, 403) else ""
            raise JudgeError(f"judge request to {self.url} failed: HTTP {err.code} {err.reason}: {message}{hint}") from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
            raise _Transient(f"cannot reach {self.url}: {getattr(err, 'reason', err)}", None) from None
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError):
            content = None
        if not isinstance(content, str):
            raise JudgeError(f"judge at {self.url} answered 200 without a text choices[0].message.content: {_server_message(raw)}")
        return content


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _server_message(raw: bytes) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the body's first 500 characters."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        error = json.loads(text).get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    except (json.JSONDecodeError, AttributeError):
        pass
    return text[:500] or "(empty body)"
