"""The Generator seam: a chat model that answers a list of messages, synchronously.

Implementations: `LlamaCppGenerator` (a GGUF through llama.cpp: the CPU default),
`TransformersGenerator` (a local causal LM, optionally bitsandbytes-quantized: the CUDA path) and
`FakeGenerator` (queued replies, for tests). `generate` blocks; the service runs it off the event
loop. ``deadline`` is a `time.monotonic()` instant after which generation stops with
``finish_reason == "timeout"``; ``cancel`` is an event another thread sets when nobody wants the
answer any more (the client went away): generation stops with ``finish_reason == "cancelled"``
soon after, prompt reading included. ``on_token`` receives each new piece of text as it is
decoded, and the pieces join to exactly ``Generation.text``.

``yes_probability`` answers a yes/no question without generating: P("yes") / (P("yes") + P("no"))
of the first answer token, from one prompt read. The reranker and the answerability check use the
generator's own weights this way, through the same queue, instead of loading a second copy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length", "timeout", "cancelled"]
Messages = list[dict[str, str]]
OnToken = Callable[[str], None]


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    mean_logprob: float | None  # mean log-probability of the generated tokens; None if unknown
    finish_reason: FinishReason
    # Seconds from the start of `generate` to the first generated token; None if there was none.
    first_token_s: float | None = None
    # Prompt tokens whose state was reused from an earlier generation (llama.cpp's KV cache).
    cached_prompt_tokens: int = 0


@runtime_checkable
class Generator(Protocol):
    @property
    def model_id(self) -> str: ...

    @property
    def engine(self) -> str:
        """What runs the model: ``llamacpp``, ``transformers``, ``fake``."""
        ...

    @property
    def quantization(self) -> str:
        """``none``, ``int8`` or ``int4``."""
        ...

    @property
    def context_window(self) -> int:
        """Tokens the model may see, prompt and answer together."""
        ...

    def load(self) -> object:
        """Load weights now (idempotent); otherwise the first call loads them."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def render_chat(self, messages: Messages) -> str:
        """The prompt text: the chat template applied, with the assistant turn opened."""
        ...

    def generate(
        self,
        messages: Messages,
        max_new_tokens: int,
        deadline: float | None = None,
        on_token: OnToken | None = None,
        cancel: threading.Event | None = None,
    ) -> Generation: ...

    def yes_probability(
        self, prompts: Sequence[Messages], cancel: threading.Event | None = None
    ) -> list[float]:
        """For each prompt (a yes/no question), P(yes) / (P(yes) + P(no)) of the first token."""
        ...
