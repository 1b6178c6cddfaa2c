"""Answers in the question's script: a question in traditional Chinese gets a traditional answer.

The prompt names simplified Chinese for every Chinese question (one prompt, evaluated as it is),
and small models answer in simplified or mixed script whatever the question's; so the service
converts the answer rather than asking for it. When the question is Chinese
(`question_language`) and written in traditional script (`text.chinese_script.chinese_script`),
the answer text is converted with OpenCC's standard s2t: a generated answer, the decline phrase
and the extractive (degraded) answer alike. Streamed tokens are converted as they come, with the
text around them as context (a few characters are held back for that), and the final answer is
the conversion of the whole text. Citation snippets are not touched: they quote the source.
Simplified and English questions, and Chinese that reads the same in both scripts, keep the
answer as generated.

>>> in_question_script("頭髮會變白嗎？", "头发会变白 [1]。")
'頭髮會變白 [1]。'
>>> in_question_script("头发会变白吗？", "头发会变白 [1]。")
'头发会变白 [1]。'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.answer.prompt import question_language
from app.generation.protocol import OnToken
from text.chinese_script import TraditionalStream, chinese_script, to_traditional


def wants_traditional(question: str) -> bool:
    """Whether answers to ``question`` are to be written in traditional script."""
    return question_language(question) == "zh" and chinese_script(question) == "traditional"


def in_question_script(question: str, answer: str) -> str:
    """``answer`` in ``question``'s script: converted to traditional where the question is."""
    return to_traditional(answer) if wants_traditional(question) else answer


@contextmanager
def tokens_in_question_script(question: str, on_token: OnToken | None) -> Iterator[OnToken | None]:
    """``on_token``, handed the pieces in ``question``'s script (the same callback when no
    conversion is needed). The conversion holds the last few characters back until the text
    after them is known (`TraditionalStream`); they are given out when the block ends without
    an error, so wrap the whole generation:

    >>> got = []
    >>> with tokens_in_question_script("頭髮會變白嗎？", got.append) as on_token:
    ...     for piece in ["头", "发", "会", "变白 [1]"]:
    ...         on_token(piece)
    >>> "".join(got)
    '頭髮會變白 [1]'
    """
    if on_token is None or not wants_traditional(question):
        yield on_token
        return
    stream = TraditionalStream()
    emit = on_token

    def converted(piece: str) -> None:
        if out := stream.feed(piece):
            emit(out)

    yield converted
    if rest := stream.flush():  # not after an error: the answer is then not what was streamed
        emit(rest)
