"""A deterministic Generator for tests: queued replies (or a function of the messages).

It honours the protocol like the real one: ``on_token`` gets the reply word by word,
``max_new_tokens`` cuts it ("length"), ``deadline`` stops it ("timeout", with an optional sleep
per token to make that reachable), ``cancel`` stops it ("cancelled"), and ``fail_with`` raises a
chosen error. Tokens are words,
each Han character counting as one. Every call's messages are kept in ``calls``.

>>> FakeGenerator(["Paris [1]."]).generate([{"role": "user", "content": "?"}], 10).text
'Paris [1].'
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence

from app.generation.protocol import FinishReason, Generation, Messages, OnToken
from text.language import words
from text.script import HAN, HAN_CHAR

_PIECE = re.compile(rf"\s*[{HAN}]|\s*[^\s{HAN}]+|\s+$")


def pieces(text: str) -> list[str]:
    """Word-by-word pieces (one per Han character) that join back to ``text``.

    >>> pieces("Keys rotate 每月")
    ['Keys', ' rotate', ' 每', '月']
    """
    return _PIECE.findall(text)


class FakeGenerator:
    def __init__(
        self,
        replies: Sequence[str] | Callable[[Messages], str] = ("I don't know.",),
        model_id: str = "fake-generator",
        quantization: str = "none",
        context_window: int = 4096,
        seconds_per_token: float = 0.0,
        mean_logprob: float | None = -0.1,
        fail_with: Exception | None = None,
        judge: Callable[[Messages], float] | None = None,
    ) -> None:
        self._replies = replies if callable(replies) else list(replies)
        self._model_id = model_id
        self._quantization = quantization
        self._context_window = context_window
        self.seconds_per_token = seconds_per_token
        self.mean_logprob = mean_logprob
        self.fail_with = fail_with
        self.judge = judge or word_overlap
        self.calls: list[Messages] = []
        self.deadlines: list[float | None] = []  # each call's, as time.monotonic() values
        self.judged: list[Messages] = []
        # For tests that hold or watch a generation: ``started`` is set when one begins, it then
        # waits for ``release`` (set unless a test clears it), and each result is appended to
        # ``finished`` with the monotonic time it ended.
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.finished: list[tuple[Generation, float]] = []
        self._next = 0
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def engine(self) -> str:
        return "fake"

    @property
    def quantization(self) -> str:
        return self._quantization

    @property
    def context_window(self) -> int:
        return self._context_window

    def load(self) -> FakeGenerator:
        return self

    def count_tokens(self, text: str) -> int:
        han = len(HAN_CHAR.findall(text))
        return han + len(HAN_CHAR.sub(" ", text).split())

    def render_chat(self, messages: Messages) -> str:
        turns = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)
        return turns + "<|assistant|>\n"

    def _reply(self, messages: Messages) -> str:
        if callable(self._replies):
            return self._replies(messages)
        if not self._replies:
            return ""
        reply = self._replies[min(self._next, len(self._replies) - 1)]  # the last one repeats
        self._next += 1
        return reply

    def yes_probability(
        self, prompts: Sequence[Messages], cancel: threading.Event | None = None
    ) -> list[float]:
        with self._lock:
            self.judged.extend([dict(m) for m in p] for p in prompts)
        return [self.judge(p) for p in prompts]

    def generate(
        self,
        messages: Messages,
        max_new_tokens: int,
        deadline: float | None = None,
        on_token: OnToken | None = None,
        cancel: threading.Event | None = None,
    ) -> Generation:
        self.started.set()
        if not self.release.wait(60):
            raise TimeoutError("the test never released the generation")
        result = self._generate(messages, max_new_tokens, deadline, on_token, cancel)
        self.finished.append((result, time.monotonic()))
        return result

    def _generate(
        self,
        messages: Messages,
        max_new_tokens: int,
        deadline: float | None,
        on_token: OnToken | None,
        cancel: threading.Event | None,
    ) -> Generation:
        started = time.monotonic()
        first: float | None = None
        with self._lock:
            self.calls.append([dict(m) for m in messages])
            self.deadlines.append(deadline)
            if self.fail_with is not None:
                raise self.fail_with
            reply = self._reply(messages)
        out: list[str] = []
        finish: FinishReason = "stop"
        for piece in pieces(reply):
            if cancel is not None and cancel.is_set():
                finish = "cancelled"
                break
            if deadline is not None and time.monotonic() >= deadline:
                finish = "timeout"
                break
            if len(out) >= max_new_tokens:
                finish = "length"
                break
            if self.seconds_per_token:
                time.sleep(self.seconds_per_token)
            out.append(piece)
            if first is None:
                first = time.monotonic() - started
            if on_token is not None:
                on_token(piece)
        return Generation(
            text="".join(out),
            prompt_tokens=self.count_tokens(self.render_chat(messages)),
            completion_tokens=len(out),
            mean_logprob=self.mean_logprob if out else None,
            finish_reason=finish,
            first_token_s=first,
        )


def word_overlap(messages: Messages) -> float:
    """The default judge: the share of the question's words found in the rest of the prompt.

    The prompts it sees put the question after a "Question:" line (the rerank and answerability
    prompts both do); a prompt without one is judged 0.5.
    """
    text = messages[-1]["content"]
    head, sep, question = text.rpartition("Question:")
    if not sep:
        return 0.5
    asked = set(words(question.split("\n\n")[0]))
    seen = set(words(head))
    return len(asked & seen) / len(asked) if asked else 0.5
