"""One browser session's conversation: the exchanges, the history sent with follow-ups, and the
messages the chat shows. Pure data; the Gradio callbacks keep a list of ``Exchange`` in a
``gr.State``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ui import render
from ui.types import Answer

ChatMessage = dict[str, str]


@dataclass
class Exchange:
    """A question and what came of it: a streamed partial answer, the answer, or an error."""

    question: str
    partial: str = ""
    answer: Answer | None = None
    error: str | None = None


def history(exchanges: Sequence[Exchange]) -> list[dict[str, str]]:
    """The API's ``history``: each answered exchange as a user turn and an assistant turn.

    Failed exchanges are left out, so a follow-up is read against answers the user saw.
    """
    turns: list[dict[str, str]] = []
    for ex in exchanges:
        if ex.answer is not None:
            turns.append({"role": "user", "content": ex.question})
            turns.append({"role": "assistant", "content": ex.answer.answer})
    return turns


def chat_messages(exchanges: Sequence[Exchange]) -> list[ChatMessage]:
    """The Chatbot's value (messages format): user and assistant messages alternate."""
    messages: list[ChatMessage] = []
    for ex in exchanges:
        messages.append({"role": "user", "content": render.user_message(ex.question)})
        if ex.error is not None:
            content = render.error_message(ex.error)
        elif ex.answer is not None:
            content = render.assistant_message(ex.answer, ex.question)
        else:
            content = render.streaming_message(ex.partial)
        messages.append({"role": "assistant", "content": content})
    return messages


def exchange_at(message_index: object) -> int | None:
    """The exchange a clicked chat message belongs to (two messages per exchange).

    >>> exchange_at(3), exchange_at([5, 0]), exchange_at("x")
    (1, 2, None)
    """
    index = message_index[0] if isinstance(message_index, list | tuple) else message_index
    return index // 2 if isinstance(index, int) and index >= 0 else None
