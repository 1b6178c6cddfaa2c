"""Metric functions, pure: answers (SQuAD, CMRC 2018), retrieval ranks, citations, declines,
percentiles. Every function here has a hand-computed test in tests/eval/test_metrics.py.

Answer scoring follows the official scripts:

- English: SQuAD v1.1's ``evaluate-v1.1.py``: lowercase, remove punctuation
  (``string.punctuation``), remove the articles a/an/the, collapse whitespace; EM is equality
  of the normalized strings, F1 the bag-of-tokens overlap. Max over the gold answers.
- Chinese: CMRC 2018's ``cmrc2018_evaluate.py`` (ymcui/cmrc2018, squad-style-data/): "mixed
  segmentation" (each Chinese character a token, runs of other characters tokenized as words),
  its punctuation list removed; F1 from the *longest common substring* of the two token lists
  (precision = LCS / prediction tokens, recall = LCS / answer tokens); EM is equality after
  removing the same punctuation from the lowercased, stripped strings. Max over gold answers.
  One concession: the script tokenizes non-Chinese runs with ``nltk.word_tokenize``; we use a
  regex (numbers with their decimal point, words, single punctuation marks), which agrees on
  what answers hold (numbers, names, dates) and needs no NLTK data download.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from text.language import detect_language
from text.script import CMRC_HAN

# ------------------------------------------------------------------------------------- SQuAD
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def squad_normalize(text: str) -> str:
    """SQuAD v1.1 ``normalize_answer``.

    >>> squad_normalize("The  Denver Broncos!")
    'denver broncos'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_em(prediction: str, gold: str) -> float:
    return float(squad_normalize(prediction) == squad_normalize(gold))


def squad_f1(prediction: str, gold: str) -> float:
    pred = squad_normalize(prediction).split()
    truth = squad_normalize(gold).split()
    same = sum((Counter(pred) & Counter(truth)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(truth)
    return 2 * precision * recall / (precision + recall)


# ---------------------------------------------------------------------------------- CMRC 2018
# The official script's list, verbatim; note that "……" is one two-character entry, so a single
# "…" is never removed (the script compares characters against the list's strings).
CMRC_PUNCTUATION = (
    "-", ":", "_", "*", "^", "/", "\\", "~", "`", "+", "=",
    "，", "。", "：", "？", "！", "“", "”", "；", "’", "《", "》", "……", "·", "、",
    "「", "」", "（", "）", "－", "～", "『", "』",
)  # fmt: skip
# What the official script counts as a Chinese character (U+4E00 to U+9FA5), kept exactly so
# that scores compare with published CMRC results; narrower than `text.script.HAN` on purpose.
_CMRC_CHINESE = re.compile(f"[{CMRC_HAN}]")
_WORDS = re.compile(r"\d+(?:[.,]\d+)+|\w+|[^\w\s]")


def cmrc_segment(text: str, remove_punctuation: bool = False) -> list[str]:
    """``mixed_segmentation``: Chinese characters and listed punctuation one token each; the
    runs between them tokenized as words.

    >>> cmrc_segment("Orbit 3.4版本，支持blue-green")
    ['orbit', '3.4', '版', '本', '，', '支', '持', 'blue', '-', 'green']
    """
    out: list[str] = []
    run = ""
    for char in text.lower().strip():
        if remove_punctuation and char in CMRC_PUNCTUATION:
            continue
        if _CMRC_CHINESE.match(char) or char in CMRC_PUNCTUATION:
            if run:
                out.extend(_WORDS.findall(run))
                run = ""
            out.append(char)
        else:
            run += char
    if run:
        out.extend(_WORDS.findall(run))
    return out


def cmrc_remove_punctuation(text: str) -> str:
    return "".join(ch for ch in text.lower().strip() if ch not in CMRC_PUNCTUATION)


def longest_common_substring(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common *contiguous* run (``find_lcs`` of the CMRC script).

    >>> longest_common_substring(list("abcde"), list("xbcdy"))
    3
    """
    best = 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            if x == y:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def cmrc_em(prediction: str, gold: str) -> float:
    return float(cmrc_remove_punctuation(prediction) == cmrc_remove_punctuation(gold))


def cmrc_f1(prediction: str, gold: str) -> float:
    gold_tokens = cmrc_segment(gold, remove_punctuation=True)
    pred_tokens = cmrc_segment(prediction, remove_punctuation=True)
    common = longest_common_substring(gold_tokens, pred_tokens)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


# ------------------------------------------------------------------------------------ answers
def is_chinese(text: str) -> bool:
    """Whether a question is scored with the CMRC 2018 metric: when the service answers it in
    Chinese, by the rule it uses (`text.language.detect_language`). A mostly-English question
    quoting a Chinese term ("What does 部署 mean?") gets an English answer, scored with SQuAD.
    """
    return detect_language(text) == "zh"


def answer_scores(prediction: str, golds: Iterable[str], chinese: bool) -> tuple[float, float]:
    """(EM, F1), each the max over the gold answers; (0, 0) without gold answers."""
    em_fn, f1_fn = (cmrc_em, cmrc_f1) if chinese else (squad_em, squad_f1)
    golds = list(golds)
    if not golds:
        return 0.0, 0.0
    return max(em_fn(prediction, g) for g in golds), max(f1_fn(prediction, g) for g in golds)


def answer_recall(prediction: str, gold: str, chinese: bool) -> float:
    """The share of the gold answer's tokens found in the prediction (multiset recall): SQuAD's
    normalized words, or for Chinese the CMRC segmentation (each Chinese character a token).

    Generative answers restate the question and add context, which F1 against a short gold span
    punishes; recall does not, and still fails an answer that misses the gold's specifics.

    >>> answer_recall("API keys rotate every 30 days [1].", "Every 30 days", False)
    1.0
    >>> round(answer_recall("Keys rotate every 60 days.", "Every 30 days", False), 3)
    0.667
    """
    if chinese:
        truth = cmrc_segment(gold, remove_punctuation=True)
        pred = cmrc_segment(prediction, remove_punctuation=True)
        truth = [t.lower() for t in truth]
        pred = [t.lower() for t in pred]
    else:
        truth = squad_normalize(gold).split()
        pred = squad_normalize(prediction).split()
    if not truth:
        return 0.0
    return sum((Counter(truth) & Counter(pred)).values()) / len(truth)


# ---------------------------------------------------------------------------------- retrieval
def dedupe(ranked: Iterable[str | None]) -> list[str]:
    """Documents in rank order, each at its first rank (``None``: a chunk of no known doc).

    >>> dedupe(["a", "b", "a", None, "c"])
    ['a', 'b', 'c']
    """
    return list(dict.fromkeys(d for d in ranked if d is not None))


def first_relevant_rank(ranking: Sequence[str], relevant: Iterable[str], k: int) -> int | None:
    """1-based rank of the first relevant document in the top ``k``; None if there is none."""
    wanted = set(relevant)
    return next((i for i, d in enumerate(ranking[:k], start=1) if d in wanted), None)


def hit_at(ranking: Sequence[str], relevant: Iterable[str], k: int) -> float:
    return float(first_relevant_rank(ranking, relevant, k) is not None)


def mrr_at(ranking: Sequence[str], relevant: Iterable[str], k: int = 10) -> float:
    rank = first_relevant_rank(ranking, relevant, k)
    return 1.0 / rank if rank is not None else 0.0


def ndcg_at(ranking: Sequence[str], relevance: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with graded gains ``rel / log2(rank + 1)`` (the trec_eval/BEIR form), normalized by
    the ideal ordering of the judged documents.

    >>> round(ndcg_at(["x", "a"], {"a": 1}), 4)
    0.6309
    """
    dcg = sum(relevance.get(d, 0) / math.log2(i + 1) for i, d in enumerate(ranking[:k], start=1))
    ideal = sorted((g for g in relevance.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 1) for i, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


# ---------------------------------------------------------------------------------- citations
def citation_precision(cited_docs: Sequence[str | None], gold: Iterable[str]) -> float | None:
    """Share of citations whose chunk comes from a gold document; None without citations."""
    if not cited_docs:
        return None
    wanted = set(gold)
    return sum(1 for d in cited_docs if d in wanted) / len(cited_docs)


def decline_precision_recall(
    declined: Sequence[bool], unanswerable: Sequence[bool]
) -> tuple[float | None, float | None]:
    """Positive = declined; a right decline is one on an unanswerable question.
    precision = right declines / declines, recall = right declines / unanswerable questions;
    None where the denominator is 0."""
    right = sum(1 for d, u in zip(declined, unanswerable, strict=True) if d and u)
    n_declined, n_unanswerable = sum(declined), sum(unanswerable)
    precision = right / n_declined if n_declined else None
    recall = right / n_unanswerable if n_unanswerable else None
    return precision, recall


# -------------------------------------------------------------------------------- percentiles
def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile with linear interpolation between closest ranks (numpy's default):
    position ``(n - 1) * q / 100`` in the sorted values.

    >>> percentile([10, 20, 30, 40], 50)
    25.0
    """
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def nearest_rank_percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile by nearest rank: the value at rank ``ceil(n * q / 100)`` (at least 1)
    of the sorted values, always one of them (the benchmarks' latency percentiles).

    >>> nearest_rank_percentile([10, 20, 30, 40], 50)
    20
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None
