"""Fit the answer confidence to recorded evaluation runs: a logistic model of P(right).

The shipped confidence is a fixed weighted sum of three parts (``app.answer.confidence``), and a
weighted sum is a score, not a probability: nothing makes 0.8 mean "right 8 times in 10". Runs
record each answer's parts (``confidence_parts``) and the answerability check's P(yes)
(``p_answerable``), so a model of P(right | parts, P(yes)) can be fitted on them and checked on
questions it never saw, without asking anything again.

- Population: what the low-confidence flag acts on, the answers a floor lets through (declines
  removed, as ``eval.replay`` does it); an answer to an unanswerable question counts as wrong.
  The declines are kept beside them, for replaying ``DOCQA_DECLINE_BELOW`` on every question.
- Label: the run's ``correct`` (gold-answer recall >= 0.75, checked against hand labels: see
  docs/EVALUATION.md).
- Split: by a hash of (seed, set, question id), so a question is on one side whatever else is
  pooled, and the same seed always gives the same split.
- Model: scikit-learn's logistic regression (L2, its strength chosen by cross-validation on the
  development split) on the parts and the log-odds of P(yes); the fitted coefficients go
  into the catalog (``ModelSpec.confidence_fit``) and ``app.answer.confidence.ConfidenceFit``
  computes the same probability in the service.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from app.answer.confidence import FIT_FEATURES, ConfidenceFit, Parts, combine, fit_inputs
from eval.calibration import auroc, expected_calibration_error, reliability_bin_dicts
from eval.compare import shown, shown_share, table
from eval.replay import Floor, check_floor, declined_under, recorded_parts
from eval.store import Run

log = logging.getLogger(__name__)

PRECISION_TARGET = 0.9  # issue 11: answers at or above the low-confidence threshold, >= 90% right


@dataclass(frozen=True)
class Example:
    set: str
    id: str
    answerable: bool
    right: bool  # answered, and right (a decline is not right)
    declined: bool  # by the run, or by the floor replayed on it
    parts: Parts | None  # every part of an answer; None for a decline
    p_answerable: float | None
    shipped: float | None  # the confidence the run recorded (the formula it ran with)
    language: str = "en"  # the question's, as the run detected it (the service's rule)


@dataclass(frozen=True)
class Scored:
    """How well one confidence separates right from wrong answers on some examples."""

    n: int
    right: float | None  # share right
    ece: float | None
    auroc: float | None
    threshold: float | None  # the lowest with >= PRECISION_TARGET right at or above it
    kept: float | None  # share of answers at or above that threshold
    kept_precision: float | None


def examples(name: str, records: Sequence[Mapping[str, Any]], floor: Floor) -> list[Example]:
    """The judged questions of one run: its answers with every part recorded (older runs have
    none: they are left out) and its declines. Degraded answers and errors are left out."""
    out = []
    for r in records:
        correct = (r.get("metrics") or {}).get("correct")
        if correct is None or r.get("degraded") or r.get("error"):
            continue
        p = None if r.get("p_answerable") is None else float(r["p_answerable"])
        parts = recorded_parts(r)
        declined = declined_under(r, floor)
        if not declined and parts is None:
            continue
        out.append(
            Example(
                set=name,
                id=str(r["id"]),
                answerable=bool(r["answerable"]),
                right=not declined and bool(r["answerable"] and correct),
                declined=declined,
                parts=None if declined else parts,
                p_answerable=p,
                shipped=None if declined else float(r["confidence"]),
                language=str(r.get("language") or "en"),
            )
        )
    return out


def answered(pool: Sequence[Example]) -> list[Example]:
    return [e for e in pool if not e.declined]


def _unit(key: str) -> float:
    """A stable number in [0, 1) from ``key``."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def in_dev(example: Example, seed: int, dev_share: float) -> bool:
    """Whether the question falls in the development split (stable across runs and pools)."""
    return _unit(f"{seed}\x00{example.set}\x00{example.id}") < dev_share


def split(
    pool: Sequence[Example], seed: int, dev_share: float
) -> tuple[list[Example], list[Example]]:
    dev = [e for e in pool if in_dev(e, seed, dev_share)]
    held = [e for e in pool if not in_dev(e, seed, dev_share)]
    return dev, held


def features(example: Example, names: Sequence[str]) -> list[float] | None:
    """The fit's inputs in ``names``' order, as the service computes them
    (``app.answer.confidence.fit_inputs``); None when P(yes) is needed and was not asked."""
    assert example.parts is not None, "a decline has no parts to fit on"
    values = fit_inputs(example.parts, example.p_answerable, example.language)
    row = [values[n] for n in names]
    return None if any(v is None for v in row) else [float(v) for v in row if v is not None]


# Regularization strengths tried by cross-validation on the development split. A fixed C=1
# shrank XQuAD-en's weights until every fitted P(right) sat in 0.5-0.85: too flat to flag or
# decline anything. Log-loss picks the strength, since calibration is what the fit is for.
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
CV_FOLDS = 5


def measured_features(pool: Sequence[Example]) -> tuple[str, ...]:
    """What a fit can weigh on ``pool``: every input, less ``coverage`` when no answer has it
    (runs recorded before it was a part, not backfilled: ``docqa eval backfill``)."""
    if any(e.parts is not None and e.parts.coverage is not None for e in pool):
        return FIT_FEATURES
    log.info("no answer has a coverage (docqa eval backfill measures it): fitting without it")
    return tuple(n for n in FIT_FEATURES if n != "coverage")


def fit(dev: Sequence[Example], names: Sequence[str] | None = None) -> ConfidenceFit:
    """Logistic regression of ``right`` on ``names`` over the development examples, its L2
    strength chosen by stratified cross-validation (log-loss) where each class has >= 2
    examples, else C=1. ``names``: `measured_features` when None."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    names = measured_features(dev) if names is None else names
    usable = [(row, e.right) for e in answered(dev) if (row := features(e, names)) is not None]
    labels = {ok for _, ok in usable}
    if len(labels) < 2:
        kind = "all right" if True in labels else "all wrong" if labels else "none"
        raise ValueError(
            f"{len(usable)} usable development answers ({kind}): a fit needs right and wrong ones"
        )
    x = [row for row, _ in usable]
    y = [int(ok) for _, ok in usable]
    folds = min(CV_FOLDS, sum(y), len(y) - sum(y))
    model: Any
    if folds >= 2:
        model = LogisticRegressionCV(
            Cs=list(C_GRID),
            cv=folds,
            scoring="neg_log_loss",
            max_iter=5000,
            l1_ratios=(0.0,),  # L2 only, said explicitly (scikit-learn 1.9 asks)
            use_legacy_attributes=False,
        )
    else:
        model = LogisticRegression(C=1.0, max_iter=5000)
    model.fit(x, y)
    weights = dict(zip(names, (float(w) for w in model.coef_[0]), strict=True))
    return ConfidenceFit(intercept=float(model.intercept_[0]), **weights)


def out_of_fold(
    dev_all: Sequence[Example], names: Sequence[str], seed: int, folds: int = CV_FOLDS
) -> list[float | None]:
    """Each development question's fitted P(right) from a fit on the other folds (None for a
    decline). Thresholds are chosen on these: a fit scores the answers it was fitted on too well
    (an in-sample decline level that declined 7% of answerable questions declined 13% held out).
    A fold whose rest cannot be fitted (one class only, in tiny pools) falls back to the fit on
    all of the development split."""
    fold_of = [int(_unit(f"{seed}\x00fold\x00{e.set}\x00{e.id}") * folds) for e in dev_all]
    whole: ConfidenceFit | None = None
    values: list[float | None] = [None] * len(dev_all)
    for k in range(folds):
        try:
            model = fit([e for e, f in zip(dev_all, fold_of, strict=True) if f != k], names)
        except ValueError:
            model = whole = whole or fit(dev_all, names)
        for i, (e, f) in enumerate(zip(dev_all, fold_of, strict=True)):
            if f == k and not e.declined:
                values[i] = fitted_confidence(model, e)
    return values


def threshold_for(confidences: Sequence[float], right: Sequence[bool]) -> float | None:
    """The lowest threshold whose kept answers (confidence >= it) are >= 90% right."""
    for t in sorted(set(confidences)):
        kept = [ok for c, ok in zip(confidences, right, strict=True) if c >= t]
        if kept and sum(kept) / len(kept) >= PRECISION_TARGET:
            return t
    return None


@dataclass(frozen=True)
class Kept:
    """The answers at or above one low-confidence threshold."""

    threshold: float
    kept: float | None  # share of answers at or above it
    kept_right: float | None  # share right among those


def kept_at(confidences: Sequence[float], right: Sequence[bool], t: float) -> Kept:
    kept = [ok for c, ok in zip(confidences, right, strict=True) if c >= t]
    n = len(confidences)
    return Kept(t, len(kept) / n if n else None, sum(kept) / len(kept) if kept else None)


def score(confidences: Sequence[float], right: Sequence[bool], threshold: float | None) -> Scored:
    n = len(confidences)
    at = None if threshold is None else kept_at(confidences, right, threshold)
    return Scored(
        n=n,
        right=sum(right) / n if n else None,
        ece=expected_calibration_error(list(confidences), list(right)) if n else None,
        auroc=auroc(confidences, right) if n else None,
        threshold=threshold,
        kept=None if at is None else at.kept,
        kept_precision=None if at is None else at.kept_right,
    )


def fitted_confidence(model: ConfidenceFit, example: Example) -> float:
    """What the service would report for an answer with ``model``: the fit where its inputs
    exist, else the weighted sum (``app.answer.confidence.combine``)."""
    parts = example.parts
    assert parts is not None, "a decline has no confidence to refit"
    if model.applies(example.p_answerable, parts):
        return model.probability(parts, example.p_answerable, example.language)
    return combine(parts.retrieval, parts.support or 0.0, parts.certainty or 0.0).value


def fitted_confidences(model: ConfidenceFit, pool: Sequence[Example]) -> list[float]:
    return [fitted_confidence(model, e) for e in pool]


@dataclass(frozen=True)
class Declines:
    """The outcome of declining answers whose fitted P(right) is under ``below`` (None: only the
    run's own declines), on all judged questions."""

    below: float | None
    answerable_declined: float | None
    decline_recall: float | None
    answers_right: float | None  # share right among the answers left
    ece: float | None  # of the fitted confidence over the answers left


DECLINE_LEVELS = (None, 0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
# issue 11: at most 10% of answerable questions declined (and decline recall >= 0.80)
ANSWERABLE_DECLINED_TARGET = 0.1


def chosen_decline(rows: Sequence[Declines]) -> float | None:
    """The decline level to ship: the highest whose share of answerable questions declined is
    within ``ANSWERABLE_DECLINED_TARGET`` (the most unanswerable ones declined within that
    budget); None when no level is."""
    within = [
        d.below
        for d in rows
        if d.below is not None
        and d.answerable_declined is not None
        and d.answerable_declined <= ANSWERABLE_DECLINED_TARGET
    ]
    return max(within, default=None)


def declines(
    model: ConfidenceFit,
    pool: Sequence[Example],
    levels: Sequence[float | None] = DECLINE_LEVELS,
    values: Sequence[float | None] | None = None,
) -> list[Declines]:
    """``DOCQA_DECLINE_BELOW`` replayed: the service declines an answer whose fitted P(right) is
    under it, so an unsupported answer becomes a decline instead of a flagged answer. ``values``:
    each question's P(right) when not ``model``'s (out-of-fold ones, None for a decline)."""
    # Each answer's fitted P(right) once; a decline by the run has none and stays declined.
    if values is None:
        values = [None if e.declined else fitted_confidence(model, e) for e in pool]
    rows = []
    for below in levels:
        left: list[tuple[float, bool]] = []
        declined = {True: 0, False: 0}  # by answerable
        for e, value in zip(pool, values, strict=True):
            if (
                value is None
                or e.parts is None  # a decline by the run: no value, no parts
                or model.declines(value, e.p_answerable, below, e.parts)
            ):
                declined[e.answerable] += 1
            else:
                left.append((value, e.right))
        n_answerable = sum(e.answerable for e in pool)
        n_unanswerable = len(pool) - n_answerable
        rows.append(
            Declines(
                below=below,
                answerable_declined=declined[True] / n_answerable if n_answerable else None,
                decline_recall=declined[False] / n_unanswerable if n_unanswerable else None,
                answers_right=sum(ok for _, ok in left) / len(left) if left else None,
                ece=expected_calibration_error([c for c, _ in left], [ok for _, ok in left])
                if left
                else None,
            )
        )
    return rows


@dataclass(frozen=True)
class FitReport:
    model: ConfidenceFit
    dev: int  # answers fitted on
    held: int  # answers checked on
    shipped: Scored  # the recorded confidence on the held-out answers, its threshold from dev
    fitted: Scored  # the fit on the held-out answers, its threshold from dev
    fitted_dev: Scored
    declines: list[Declines]  # on the held-out questions, answered or not
    declines_dev: list[Declines]  # the same on the development split, where a level is chosen
    decline_below: float | None  # chosen on the development split (``chosen_decline``)
    # Each held-out answer's recorded and fitted confidence and whether it was right.
    held_recorded: list[float]
    held_fitted: list[float]
    held_right: list[bool]


def fit_and_check(
    pool: Sequence[Example],
    seed: int = 0,
    dev_share: float = 0.5,
    names: Sequence[str] | None = None,
) -> FitReport:
    """Fit on the development split; score it and the recorded confidence on the held-out one,
    each with the threshold chosen on the development split."""
    dev_all, held_all = split(pool, seed, dev_share)
    dev, held = answered(dev_all), answered(held_all)
    names = measured_features(pool) if names is None else names
    model = fit(dev, names)
    dev_values = out_of_fold(dev_all, names, seed)
    dev_fit = [v for v in dev_values if v is not None]  # the answers', in ``dev``'s order
    dev_right = [e.right for e in dev]
    held_right = [e.right for e in held]
    fit_t = threshold_for(dev_fit, dev_right)
    shipped_t = threshold_for([e.shipped or 0.0 for e in dev], dev_right)
    held_recorded = [e.shipped or 0.0 for e in held]
    held_fitted = fitted_confidences(model, held)
    return FitReport(
        model=model,
        dev=len(dev),
        held=len(held),
        shipped=score(held_recorded, held_right, shipped_t),
        fitted=score(held_fitted, held_right, fit_t),
        fitted_dev=score(dev_fit, dev_right, fit_t),
        declines=declines(model, held_all),
        declines_dev=(dev_declines := declines(model, dev_all, values=dev_values)),
        decline_below=chosen_decline(dev_declines),
        held_recorded=held_recorded,
        held_fitted=held_fitted,
        held_right=held_right,
    )


def reliability_plot(report: FitReport) -> bytes:
    """A PNG: the reliability diagrams of the recorded and the fitted confidence on the
    held-out answers, side by side (for docs/EVALUATION.md)."""
    from eval.plots import reliability_figure

    return reliability_figure(
        [
            (
                f"recorded (weighted sum), held-out: ECE {shown(report.shipped.ece)}",
                reliability_bin_dicts(report.held_recorded, report.held_right),
            ),
            (
                f"fitted P(right), held-out: ECE {shown(report.fitted.ece)}",
                reliability_bin_dicts(report.held_fitted, report.held_right),
            ),
        ]
    )


def pooled_examples(runs: Sequence[Run], floor: Floor) -> list[Example]:
    """Every run's answered examples under ``floor`` (``check_floor`` first)."""
    check_floor(runs, floor)
    return [
        e
        for run in runs
        for e in examples(str(run.config().get("name", run.name)), run.records(), floor)
    ]


def fit_json(model: ConfidenceFit) -> str:
    """The fit as DOCQA_CONFIDENCE_FIT takes it (zero weights left out)."""
    values = {k: round(v, 4) for k, v in asdict(model).items() if k == "intercept" or v != 0.0}
    return json.dumps(values)


def report_text(report: FitReport) -> str:
    rows: list[tuple[str, str, Scored]] = [
        ("recorded (weighted sum)", "held-out", report.shipped),
        ("fitted", "held-out", report.fitted),
        ("fitted, out-of-fold", "development", report.fitted_dev),
    ]
    body = table(
        [
            "confidence",
            "split",
            "answers",
            "right",
            "ECE",
            "AUROC",
            "threshold",
            "kept",
            "kept right",
        ],
        [
            [
                name,
                split_name,
                str(s.n),
                shown_share(s.right),
                shown(s.ece),
                shown(s.auroc),
                shown(s.threshold),
                shown_share(s.kept),
                shown_share(s.kept_precision),
            ]
            for name, split_name, s in rows
        ],
    )
    decline_table = table(
        ["decline below", "split", "answerable declined", "decline recall", "answers right", "ECE"],
        [
            [
                "–" if d.below is None else f"{d.below:.2f}",
                split_name,
                shown_share(d.answerable_declined),
                shown_share(d.decline_recall),
                shown_share(d.answers_right),
                shown(d.ece),
            ]
            for dev_row, held_row in zip(report.declines_dev, report.declines, strict=True)
            for split_name, d in (("development", dev_row), ("held-out", held_row))
        ],
    )
    return (
        f"{report.dev} development and {report.held} held-out answers; thresholds are the lowest "
        f"with >= {PRECISION_TARGET:.0%} right at or above them on the development split, whose "
        f"fitted P(right) are out-of-fold ({CV_FOLDS} folds).\n"
        f"{body}\n\nDeclining answers under a fitted P(right) (DOCQA_DECLINE_BELOW), on all "
        f"questions, answered or declined (choose on development, read held-out):\n"
        f"{decline_table}\n"
        f"The settings that ship it (each chosen on the development split; the decline level "
        f"is the highest declining at most {ANSWERABLE_DECLINED_TARGET:.0%} of answerable "
        f"questions there):\n"
        f"DOCQA_CONFIDENCE_FIT='{fit_json(report.model)}'\n"
        f"{setting_line('DOCQA_DECLINE_BELOW', report.decline_below)}\n"
        f"{setting_line('DOCQA_LOW_CONFIDENCE', report.fitted.threshold)}"
    )


def setting_line(name: str, value: float | None) -> str:
    return f"{name}={shown(value)}" if value is not None else f"# {name}: none meets its target"
