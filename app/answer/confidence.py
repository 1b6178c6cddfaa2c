"""How much to trust an answer: retrieval evidence, support by the cited passages, certainty.

The formula (every weight and bound is a parameter; defaults in brackets)::

    confidence     = w_r * retrieval + w_s * support + w_c * certainty      (0.4, 0.4, 0.2)
    low_confidence = confidence < threshold                                   (0.5)

``retrieval`` in [0, 1] (`retrieval_evidence`), over the first ``depth`` hits (3), best of them::

    dense(hit)     = clip((cosine - low) / (high - low), 0, 1)    per-embedder (low, high)
    agree(hit)     = 2 / (dense_rank + keyword_rank)  if both methods found it, else 0
    evidence(hit)  = (1 - w_a) * dense + w_a * agree               (w_a = 0.25)
                     ... with agree counted only when dense > 0: a keyword match cannot
                     rescue a passage the embedder calls unrelated
    with a reranker score p(yes): evidence = (1 - w_rr) * evidence + w_rr * p(yes)  (w_rr = 0.5)
    with no dense score (keyword-only retrieval): a neutral constant (0.5), since BM25 scores
    are not comparable across corpora and queries; the LLM then decides

Cosine ranges differ by embedder, so ``(low, high)`` is per embedder (`CALIBRATIONS`), measured
on the sample corpus (examples/) with its 16 example questions and 14 off-topic ones:

- all-MiniLM-L6-v2, English: related top cosines 0.35-0.78, off-topic 0.11-0.25 -> (0.25, 0.55).
  Chinese queries score 0.55-0.9 against anything (the model is English-only), so there the
  floor cannot tell; use e5 for Chinese.
- multilingual-e5-small: cosines are compressed: related 0.84-0.96, off-topic 0.74-0.85
  -> (0.80, 0.90). The bands touch (Chinese off-topic queries reach 0.85), so off-topic
  questions at the top of the band still reach the LLM, which declines with the prompt's phrase.
- any other embedder: (0.3, 0.7), a guess; set your own.

``DEFAULT_EVIDENCE_FLOOR`` (0.2): below it the service declines without calling the LLM. Measured
with hybrid retrieval on the sample corpus: with e5, the 14 answerable questions got 0.48-1.0
and 9 of 16 unanswerable or off-topic ones fell under the floor (the rest 0.22-0.51, left to
the LLM); with MiniLM, English answerable 0.50-1.0, English off-topic 0.0-0.19.

``support`` in [0, 1] (`support_score`): the share of the answer's distinct content units
(English: lowercased words minus stopwords; Chinese: character bigrams; see `app.answer.units`)
found in the cited passages. Citation markers are removed first.

``certainty`` in [0, 1] (`certainty_score`): ``exp(mean token log-probability)`` of the answer,
the geometric mean of the probabilities of the chosen tokens; unknown (None) gives 0.5.

``coverage`` in [0, 1] (`question_coverage`): the share of the retrieval query's distinct
content units found in the top-ranked passage. The weighted sum does not use it; a fitted
confidence (`ConfidenceFit`) may. Why: with the gold passage gone, the next passage is on the
same subject (the dense cosine stays high) but lacks the question's particulars (a name, a
year, the event asked about). On the matrix's development sets it told answered unanswerable
questions from answerable ones at AUROC 0.89-0.92 per set, and the fit with it declined 81.5%
of unanswerable questions at 9.4% of answerable ones (held out), against 76.2% at 8.7%
without it (docs/EVALUATION.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from app.answer.units import content_units, unit_set
from app.answer.units import coverage as unit_coverage
from index.types import Hit
from text.citation_markers import strip_markers

DEFAULT_EVIDENCE_FLOOR = 0.2
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class DenseCalibration:
    """Cosines at or below ``low`` give 0 evidence, at or above ``high`` give 1; linear between."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError("DenseCalibration needs low < high")

    def __call__(self, cosine: float) -> float:
        return min(1.0, max(0.0, (cosine - self.low) / (self.high - self.low)))


CALIBRATIONS: dict[str, DenseCalibration] = {
    "all-minilm-l6-v2": DenseCalibration(0.25, 0.55),
    "multilingual-e5-small": DenseCalibration(0.80, 0.90),
}
GENERIC_CALIBRATION = DenseCalibration(0.3, 0.7)


def calibration_for(embedder_id: str) -> DenseCalibration:
    """The calibration for a catalog embedder name (case-insensitive), else the generic one.
    An id's backend suffix (``multilingual-e5-small@onnx-int8``) keeps the model's calibration:
    its vectors are torch's within a cosine of 0.98 (tests/index/test_onnx_embedder.py).

    >>> calibration_for("all-minilm-l6-v2@onnx-int8") == calibration_for("all-minilm-l6-v2")
    True
    """
    return CALIBRATIONS.get(embedder_id.lower().split("@", 1)[0], GENERIC_CALIBRATION)


@dataclass(frozen=True)
class EvidenceConfig:
    calibration: DenseCalibration = GENERIC_CALIBRATION
    agreement_weight: float = 0.25
    rerank_weight: float = 0.5
    depth: int = 3
    keyword_only: float = 0.5


@dataclass(frozen=True)
class ConfidenceWeights:
    retrieval: float = 0.4
    support: float = 0.4
    certainty: float = 0.2


@dataclass(frozen=True)
class Parts:
    """What a confidence combines, reported with each answer so that weights can be refitted
    on recorded evaluation runs. A decline has only its retrieval evidence."""

    retrieval: float
    support: float | None = None
    certainty: float | None = None
    coverage: float | None = None  # None: not measured (runs recorded before it was a part)


# What a fitted confidence may weigh: the parts, the answerability check's P(yes), and whether
# the question is Chinese (P(yes) and the parts run on other scales in each language).
FIT_FEATURES = ("retrieval", "support", "certainty", "answerable", "chinese", "coverage")
# P(yes) enters a fit as its log-odds, clipped here (an exact 0 or 1 has none).
_P_CLIP = 1e-4


def log_odds(p: float) -> float:
    """``log(p / (1 - p))``, with ``p`` clipped to [1e-4, 1 - 1e-4].

    >>> log_odds(0.5), round(log_odds(1.0), 2)
    (0.0, 9.21)
    """
    p = min(1.0 - _P_CLIP, max(_P_CLIP, p))
    return math.log(p / (1.0 - p))


def fit_inputs(
    parts: Parts, p_answerable: float | None, language: str = "en"
) -> dict[str, float | None]:
    """What a fit weighs, by `FIT_FEATURES` name: the parts as they are, P(yes) as its log-odds,
    and 1 for a Chinese question (``language``: `app.answer.prompt.question_language`'s), else 0.

    P(yes) is itself a sigmoid of the model's logits, crowded into 0.6-0.95 on the matrix's
    questions; on that scale a linear weight hardly moves a fit, and on XQuAD-en (146 answers,
    three dev/held-out splits) its log-odds lifted the held-out AUROC from 0.72-0.80 to
    0.81-0.85. The default profile's model gives answerable English questions lower P(yes) than
    Chinese ones (seed 12 of bench/prompt_ab.py), so one fit pooled over both languages needs a
    per-language offset. None: P(yes) was not asked."""
    return {
        "retrieval": parts.retrieval,
        "support": parts.support or 0.0,
        "certainty": parts.certainty or 0.0,
        "answerable": None if p_answerable is None else log_odds(p_answerable),
        "chinese": 1.0 if language == "zh" else 0.0,
        "coverage": parts.coverage,
    }


@dataclass(frozen=True)
class ConfidenceFit:
    """A confidence that is a probability: P(right) = 1 / (1 + exp(-z)), with
    ``z = intercept + sum(weight * input)`` over `fit_inputs` (the parts, and the log-odds of
    P(yes)), fitted on recorded evaluation runs by ``docqa eval fit-confidence``
    (``eval.confidence_fit``) for one generator and embedder, and kept in the catalog beside
    that generator's answerability floor. A weighted sum is a score; this is calibrated on the
    runs it was fitted on and checked on held-out ones.

    >>> fit = ConfidenceFit(intercept=-2.0, support=2.0, answerable=1.0)
    >>> fit.probability(Parts(0.9, 1.0, 0.5), 0.5)  # P(yes) 0.5: log-odds 0
    0.5
    >>> fit.probability(Parts(0.9, 1.0, 0.5), 0.9)
    0.9
    >>> fit.applies(None, Parts(0.9, 1.0, 0.5))  # P(yes) weighed but not asked: weighted sum
    False
    >>> ConfidenceFit(intercept=0.0, coverage=1.0).applies(None, Parts(0.9))  # not measured
    False
    """

    intercept: float
    retrieval: float = 0.0
    support: float = 0.0
    certainty: float = 0.0
    answerable: float = 0.0
    chinese: float = 0.0
    coverage: float = 0.0

    def applies(self, p_answerable: float | None, parts: Parts) -> bool:
        """Whether every input the fit weighs was measured: P(yes), and ``parts``' coverage."""
        if self.answerable != 0.0 and p_answerable is None:
            return False
        return self.coverage == 0.0 or parts.coverage is not None

    def declines(
        self,
        value: float,
        p_answerable: float | None,
        below: float | None,
        parts: Parts,
    ) -> bool:
        """Whether an answer of fitted P(right) ``value`` is declined under ``below``
        (DOCQA_DECLINE_BELOW): only where the fit applied (a weighted sum is no probability)."""
        return below is not None and self.applies(p_answerable, parts) and value < below

    def probability(self, parts: Parts, p_answerable: float | None, language: str = "en") -> float:
        inputs = fit_inputs(parts, p_answerable, language)
        z = self.intercept + sum(
            getattr(self, name) * (inputs[name] or 0.0) for name in FIT_FEATURES
        )
        z = max(-60.0, min(60.0, z))  # exp overflows past about 709; 60 already rounds to 0/1
        return round(1.0 / (1.0 + math.exp(-z)), 6)


@dataclass(frozen=True)
class Confidence:
    value: float
    retrieval: float
    support: float
    certainty: float
    low_confidence: bool
    coverage: float | None = None

    @property
    def parts(self) -> Parts:
        return Parts(self.retrieval, self.support, self.certainty, self.coverage)


def hit_evidence(hit: Hit, config: EvidenceConfig, keyword_only: bool = False) -> float:
    """One hit's evidence (see the module docstring).

    In hybrid retrieval a hit found by keyword alone has no dense score: it counts as cosine
    -inf. Only when the whole retrieval was keyword-only does the neutral constant apply.
    """
    scores = hit.scores
    if keyword_only:
        evidence = config.keyword_only
    else:
        dense = config.calibration(scores.get("dense", -math.inf))
        agree = 0.0
        if dense > 0 and "dense_rank" in scores and "keyword_rank" in scores:
            agree = 2.0 / (scores["dense_rank"] + scores["keyword_rank"])
        w = config.agreement_weight
        evidence = (1 - w) * dense + w * min(1.0, agree)
    if "rerank" in scores:
        w = config.rerank_weight
        evidence = (1 - w) * evidence + w * min(1.0, max(0.0, scores["rerank"]))
    return evidence


def retrieval_evidence(hits: Sequence[Hit], config: EvidenceConfig | None = None) -> float:
    """Evidence in [0, 1] that the corpus holds the answer: the best of the first hits.

    >>> from index.types import Chunk
    >>> hit = Hit(Chunk("c", "t", "d", "s", "t", 0, 0, 1), 0.0, {"dense": 0.15})
    >>> retrieval_evidence([hit], EvidenceConfig(calibration_for("all-minilm-l6-v2")))
    0.0
    """
    config = config or EvidenceConfig()
    if not hits:
        return 0.0
    keyword_only = not any("dense" in hit.scores for hit in hits)
    return max(hit_evidence(hit, config, keyword_only) for hit in hits[: max(1, config.depth)])


def support_score(answer: str, cited_texts: Sequence[str]) -> float:
    """Share of the answer's distinct content units found in the cited passages' texts.

    >>> support_score("API keys rotate every 30 days [1].", ["API keys rotate monthly."])
    0.6
    """
    units = set(content_units(strip_markers(answer)))
    if not units:
        return 0.0
    found: set[str] = set()
    for text in cited_texts:
        found |= unit_set(text)
    return len(units & found) / len(units)


def question_coverage(query: str, hits: Sequence[Hit]) -> float:
    """Share of the query's distinct content units (`app.answer.units`) in the top-ranked
    passage as retrieval and the prompt read it (a table's rows with their headers); 0 without
    passages or content units.

    >>> from index.types import Chunk
    >>> top = Hit(Chunk("c", "Orbit-agent listens on port 7070.", "d", "s", "t", 0, 0, 1), 1.0)
    >>> question_coverage("Which port does orbit-agent use?", [top])  # 'use' is not there
    0.75
    """
    return unit_coverage(content_units(query), hits[0].chunk.index_text) if hits else 0.0


def certainty_score(mean_logprob: float | None) -> float:
    """``exp(mean_logprob)``, clipped to [0, 1]; None (unknown) is a neutral 0.5."""
    if mean_logprob is None or math.isnan(mean_logprob):
        return 0.5
    return min(1.0, max(0.0, math.exp(min(0.0, mean_logprob))))


def combine(
    retrieval: float,
    support: float,
    certainty: float,
    weights: ConfidenceWeights | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> Confidence:
    """The weighted sum, and whether it falls under ``threshold``.

    >>> combine(1.0, 0.5, 0.5).value
    0.7
    """
    w = weights or ConfidenceWeights()
    value = round(w.retrieval * retrieval + w.support * support + w.certainty * certainty, 6)
    return Confidence(value, retrieval, support, certainty, value < threshold)


def answer_confidence(
    hits: Sequence[Hit],
    answer: str,
    cited_texts: Sequence[str],
    mean_logprob: float | None,
    evidence: EvidenceConfig | None = None,
    weights: ConfidenceWeights | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    fit: ConfidenceFit | None = None,
    p_answerable: float | None = None,
    language: str = "en",
    query: str | None = None,
) -> Confidence:
    """Every part from the retrieval hits, the answer and its cited passages (coverage from
    ``query``, what retrieval searched for; None without it); the fitted probability when there
    is a fit whose inputs were all measured, else the weighted sum."""
    conf = combine(
        retrieval_evidence(hits, evidence),
        support_score(answer, cited_texts),
        certainty_score(mean_logprob),
        weights,
        threshold,
    )
    if query is not None:  # a part for a fit; the weighted sum does not weigh it
        conf = replace(conf, coverage=round(question_coverage(query, hits), 4))
    if fit is None or not fit.applies(p_answerable, conf.parts):
        return conf
    value = fit.probability(conf.parts, p_answerable, language)
    return replace(conf, value=value, low_confidence=value < threshold)
