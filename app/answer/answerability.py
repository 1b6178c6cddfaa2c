"""Whether the passages answer the question, asked of the generator before it answers.

Retrieval scores say a passage is on the question's topic, not that it holds the answer: with
the gold document removed, its neighbours on the same topic still score high, and a small model
then invents specifics. So the generator is asked a yes/no question by the logits of its first
answer token (``Generator.yes_probability``), and a low P(yes) declines without generating.

The question reuses the answer prompt as it stands: the same system message, passages and
question, with only the closing instruction replaced (``prompts/answerable_v1.md``). llama.cpp
then reads the long common prefix once: the answer's generation right after finds it in the KV
cache, so the check costs the few tokens of its own instruction.
"""

from __future__ import annotations

from app.answer.prompt import PromptBuild
from prompts.template import Messages, named


def answerability_messages(prompt: PromptBuild) -> Messages:
    system, user = prompt.messages
    marker = f"Question: {prompt.question.strip()}"
    content = user["content"]
    end = content.index(marker) + len(marker)  # the answer prompt always carries the question
    asked = named("answerable_v1").render(passages_and_question=content[:end])
    return [system, *asked]
