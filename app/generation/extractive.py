"""A degraded answer without a language model: the passage sentence closest to the question.

Used when generation fails or times out: the service can still show the most relevant sentence
of the top passage, with its citation. Sentences are those of `text.sentences`, the chunker's
too: they end at ``. ! ?`` followed by a space (so "3.4.0" stays whole), at ``。！？；`` and at
line breaks, closing quotes and brackets kept with them. Closeness is the number of the
question's distinct content units (`app.answer.units`: words for Latin text, character bigrams
for Chinese) found in the sentence; ties go to the earlier sentence.

>>> best_sentence("How often do keys rotate?", "Logs are kept. API keys rotate every 30 days.")
'API keys rotate every 30 days.'
"""

from __future__ import annotations

from app.answer.units import unit_set
from text.sentences import split_sentences


def best_sentence(question: str, passage_text: str) -> str:
    """The sentence of ``passage_text`` sharing the most content units with ``question``.

    An empty passage gives ""; a passage sharing nothing with the question gives its first
    sentence.
    """
    sentences = split_sentences(passage_text)
    if not sentences:
        return ""
    wanted = unit_set(question)
    best, best_score = sentences[0], 0
    for sentence in sentences:
        score = len(wanted & unit_set(sentence))
        if score > best_score:
            best, best_score = sentence, score
    return best
