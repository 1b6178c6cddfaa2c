"""A generator on an OpenAI-compatible server: vLLM, a llama.cpp server, Ollama, TGI.

``DOCQA_GENERATOR_URL`` names the server's API base (``http://vllm:8000/v1``); docqa then loads
no generator of its own, and the engine built for serving (vLLM's continuous batching and tensor
parallelism) does the generating. The Generator contract holds:

- **Streaming**: ``POST {base}/chat/completions`` with ``stream: true``; each server-sent chunk's
  ``delta.content`` goes to ``on_token`` as it arrives.
- **Log-probabilities**: asked for (``logprobs: true``); their mean feeds the confidence formula.
  A server that gives none (Ollama's OpenAI endpoint) leaves ``mean_logprob`` None, which the
  formula scores as a neutral 0.5 (``app.answer.confidence.certainty_score``): confidence then
  rests on retrieval evidence and support alone, and says so by never reaching the top.
- **The deadline**: the read timeout is the time left; past it the stream is dropped and the text
  so far returned with ``finish_reason == "timeout"``. ``cancel`` drops it between chunks.
- **The chat template** is the server's (the model it serves knows its own); ``render_chat`` only
  renders the messages for logs.
- **Token counting** for prompt fitting is an estimate that never counts short: a third of the
  UTF-8 bytes (English runs about 4 characters a token, Chinese 1-1.5 characters of 3 bytes),
  so prompts are fitted without a round trip per passage.
- **Yes/no scores** (reranker, answerability): one token generated with its top log-probabilities;
  P(yes) / (P(yes) + P(no)) from them (a word missing from the top list counts as below its
  last entry). Without log-probabilities, the token itself: yes 1, no 0, anything else 0.5.

Failures: a connection that cannot be made (refused, reset, timed out connecting) or a 502/503/504
is retried ``retries`` times with exponential backoff (0.5, 1, 2 s ...), within the deadline, and
only before any token has arrived; then, or on any other HTTP error or a reply that is not the
protocol (garbage), `RemoteGeneratorError` is raised, which the answer service turns into the
extractive answer (``degraded``), never a 500. Requests in flight are bounded by ``concurrency``
(``DOCQA_GENERATOR_CONCURRENCY``; the service's generation queue runs that many at once), so the
server's batching is fed and not flooded.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from app.errors import ClientClosedError
from app.generation.protocol import FinishReason, Generation, Messages, OnToken
from app.generation.yes_no import yes_share

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({502, 503, 504})
CONNECT_TIMEOUT_S = 5.0
TOP_LOGPROBS = 20  # OpenAI's maximum; enough to find "yes" and "no" among the first token's


class RemoteGeneratorError(RuntimeError):
    """The server could not be reached, or answered outside the protocol."""


class OpenAICompatibleGenerator:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        context_window: int = 4096,
        concurrency: int = 4,
        retries: int = 3,
        backoff_s: float = 0.5,
        timeout_s: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``transport`` replaces the network (tests hand in an ``httpx.MockTransport``)."""
        self.base_url = base_url.rstrip("/")
        self._model = model
        self._context_window = context_window
        self._slots = threading.BoundedSemaphore(concurrency)
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S),
            transport=transport,
            limits=httpx.Limits(max_connections=concurrency),
        )

    # ------------------------------------------------------------------------ identity
    @property
    def model_id(self) -> str:
        return self._model or "remote"

    @property
    def engine(self) -> str:
        return "remote"

    @property
    def quantization(self) -> str:
        return "none"  # whatever the server runs; docqa quantizes nothing here

    @property
    def context_window(self) -> int:
        return self._context_window

    def load(self) -> object:
        """Ask the server which model it serves (``GET {base}/models``) when none was named.

        A server that is down at start-up does not stop the service: answers degrade until it
        is back, and the model is looked up again then."""
        if self._model is not None:
            return self
        try:
            response = self._client.get(f"{self.base_url}/models", timeout=CONNECT_TIMEOUT_S)
            response.raise_for_status()
            models = response.json()["data"]
            self._model = str(models[0]["id"])
            log.info("remote generator at %s serves %s", self.base_url, self._model)
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            log.warning("remote generator at %s: no model list (%s)", self.base_url, exc)
        return self

    def count_tokens(self, text: str) -> int:
        return math.ceil(len(text.encode("utf-8")) / 3)

    def render_chat(self, messages: Messages) -> str:
        return "".join(f"<{m['role']}>\n{m['content']}\n" for m in messages) + "<assistant>\n"

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------------ generation
    def generate(
        self,
        messages: Messages,
        max_new_tokens: int,
        deadline: float | None = None,
        on_token: OnToken | None = None,
        cancel: threading.Event | None = None,
    ) -> Generation:
        started = time.monotonic()
        body = {
            **self._request(messages, max_new_tokens),
            "stream": True,
            "logprobs": True,
            # llama-cpp-python's server sends log-probabilities only when top ones are asked for.
            "top_logprobs": 1,
            "stream_options": {"include_usage": True},
        }
        pieces: list[str] = []
        logprobs: list[float] = []
        chunks = 0
        usage: dict[str, Any] = {}
        first: float | None = None
        finish: FinishReason = "stop"
        try:
            with self._post(body, deadline, stream=True) as response:
                for data in _events(response):
                    if cancel is not None and cancel.is_set():
                        finish = "cancelled"
                        break
                    if deadline is not None and time.monotonic() >= deadline:
                        finish = "timeout"
                        break
                    usage = data.get("usage") or usage
                    for choice in data.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content") or ""
                        if text:
                            chunks += 1
                            first = first if first is not None else time.monotonic() - started
                            pieces.append(text)
                            if on_token is not None:
                                on_token(text)
                        for entry in ((choice.get("logprobs") or {}).get("content")) or []:
                            logprobs.append(float(entry["logprob"]))
                        if choice.get("finish_reason") == "length":
                            finish = "length"
        except httpx.TimeoutException:
            if not (deadline is not None and time.monotonic() >= deadline - 0.05):
                raise RemoteGeneratorError(f"{self.base_url} stopped answering") from None
            finish = "timeout"
        except httpx.HTTPError as exc:  # the connection broke mid-stream
            raise RemoteGeneratorError(f"{self.base_url}: {type(exc).__name__}: {exc}") from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RemoteGeneratorError(
                f"{self.base_url} answered outside the protocol: {exc}"
            ) from exc
        text = "".join(pieces)
        prompt_tokens = int(usage.get("prompt_tokens") or self._prompt_estimate(messages))
        completion = int(usage.get("completion_tokens") or len(logprobs) or chunks)
        return Generation(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion,
            mean_logprob=sum(logprobs) / len(logprobs) if logprobs else None,
            finish_reason=finish,
            first_token_s=first,
        )

    def yes_probability(
        self, prompts: Sequence[Messages], cancel: threading.Event | None = None
    ) -> list[float]:
        out = []
        for messages in prompts:
            if cancel is not None and cancel.is_set():
                raise ClientClosedError("yes/no scoring cancelled: the client went away")
            body = {**self._request(messages, 1), "logprobs": True, "top_logprobs": TOP_LOGPROBS}
            with self._post(body, None, stream=False) as response:
                try:
                    out.append(_yes_from_choice(json.loads(response.read())["choices"][0]))
                except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
                    raise RemoteGeneratorError(
                        f"{self.base_url} answered outside the protocol: {exc}"
                    ) from exc
        return out

    # ------------------------------------------------------------------------ HTTP
    def _request(self, messages: Messages, max_tokens: int) -> dict[str, Any]:
        if self._model is None:
            self.load()
        return {
            "model": self.model_id,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0.0,
        }

    def _prompt_estimate(self, messages: Messages) -> int:
        return sum(self.count_tokens(m["content"]) for m in messages)

    @contextmanager
    def _post(
        self, body: dict[str, Any], deadline: float | None, *, stream: bool
    ) -> Iterator[httpx.Response]:
        """A 200 response to ``body``, after bounded retries of connection failures and
        502/503/504; the read timeout is what is left of ``deadline``."""
        url = f"{self.base_url}/chat/completions"
        with self._slots:
            for attempt in range(self.retries + 1):
                left = self.timeout_s if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    raise httpx.ReadTimeout("the deadline passed before the server answered")
                timeout = httpx.Timeout(left, connect=min(CONNECT_TIMEOUT_S, left))
                request = self._client.build_request("POST", url, json=body, timeout=timeout)
                try:
                    response = self._client.send(request, stream=True)
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                else:
                    if response.status_code == 200:
                        try:
                            yield response
                        finally:
                            response.close()
                        return
                    detail = response.read().decode("utf-8", "replace")[:300]
                    response.close()
                    reason = f"HTTP {response.status_code}: {detail}"
                    if response.status_code not in RETRYABLE_STATUS:
                        raise RemoteGeneratorError(f"{url}: {reason}")
                pause = self.backoff_s * 2**attempt
                if attempt == self.retries or (
                    deadline is not None and time.monotonic() + pause >= deadline
                ):
                    raise RemoteGeneratorError(f"{url}: {reason} (after {attempt + 1} tries)")
                log.warning("remote generator: %s; retrying in %.1f s", reason, pause)
                time.sleep(pause)


def _events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON objects of a server-sent event stream, until ``[DONE]``."""
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, comments (": ping"), event names
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        data = json.loads(payload)
        if not isinstance(data, dict):
            raise ValueError(f"an event that is not an object: {payload[:100]}")
        if "error" in data:
            raise ValueError(f"the server reported an error: {data['error']}")
        yield data


def _yes_from_choice(choice: dict[str, Any]) -> float:
    entries = ((choice.get("logprobs") or {}).get("content")) or []
    if entries:
        top = entries[0].get("top_logprobs") or [entries[0]]
        found: dict[str, float] = {}
        for item in top:
            word = str(item.get("token", "")).strip().lower()
            if word in ("yes", "no") and word not in found:
                found[word] = float(item["logprob"])
        if found:
            floor = min(float(item["logprob"]) for item in top) - 1.0
            return yes_share(found.get("yes", floor), found.get("no", floor))
    word = str((choice.get("message") or {}).get("content") or "").strip().lower()
    return 1.0 if word.startswith("yes") else 0.0 if word.startswith("no") else 0.5
