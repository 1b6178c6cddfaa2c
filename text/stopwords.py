"""Words that carry no content of their own, for matching questions against passages.

Four lists, because their users drop words in different situations:

- `ENGLISH_STOPWORDS`: function words ("the", "of", "what"), dropped by the BM25 tokenizer and
  by content units. Changing it changes BM25 terms: bump ``index.text_tokenize``'s
  ``TOKENIZER_VERSION``.
- `QUESTION_FILLERS`: question words and fillers ("how", "many", "according", "document") that
  a question carries and an answer need not repeat. Content units (citation fallback, support
  score, extractive answer) drop them on top of `ENGLISH_STOPWORDS`; BM25 keeps them, since a
  passage that says "how many" may be the one asked for.
- `CHINESE_STOPWORDS`: function characters dropped by BM25 only where jieba cuts them out as
  standalone words, so the list can be long: inside a word (对象, 为了) they are kept.
- `CHINESE_STOP_CHARS`: the characters that split a run of Han characters before content units
  take bigrams ("的部署" gives 部署, not 的部). There is no segmenter there, so every occurrence
  splits, and the list is kept to the commonest particles.

>>> "the" in ENGLISH_STOPWORDS, "how" in QUESTION_FILLERS, "的" in CHINESE_STOP_CHARS
(True, True, True)
"""

from __future__ import annotations

from typing import Final

ENGLISH_STOPWORDS: Final = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "his",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "nor",
        "not",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "to",
        "too",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "with",
        "you",
        "your",
    ]
)
QUESTION_FILLERS: Final = frozenset(
    [
        "how",
        "many",
        "much",
        "long",
        "often",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "also",
        "just",
        "any",
        "some",
        "all",
        "each",
        "every",
        "about",
        "according",
        "based",
        "provided",
        "document",
        "documents",
        "passage",
        "passages",
    ]
)
CHINESE_STOPWORDS: Final = frozenset("的了是在和与或及等把被对将于而之其也都就以为个这那着吗呢吧啊")
CHINESE_STOP_CHARS: Final = frozenset("的了是在和与或及吗呢吧啊么")
