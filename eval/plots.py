"""The report's figures, as base64 PNGs (matplotlib's object API: no pyplot, no global state)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from eval.metrics import percentile

STAGES = ("embed", "retrieve", "rerank", "generate")
_BLUE, _ORANGE, _GREEN, _RED, _GREY = "#3b6ea8", "#e08a2c", "#3a9a5b", "#c8443a", "#999999"


def _png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _png(fig: Figure) -> str:
    return base64.b64encode(_png_bytes(fig)).decode("ascii")


def reliability_png(panels: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> str:
    """`reliability_figure` as base64, for an HTML report."""
    return base64.b64encode(reliability_figure(panels)).decode("ascii")


def reliability_figure(panels: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> bytes:
    """A PNG: accuracy per confidence bin against the diagonal, one panel per (title, bins), three
    to a row (bins as ``eval.calibration.reliability_bins`` gives them, as dicts); the bar width
    shows the bin, the labels its count."""
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4.5 * cols, 4.2 * rows))
    for i, (title, data) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.plot([0, 1], [0, 1], linestyle="--", color=_GREY, label="perfect calibration")
        full = [b for b in data if b["count"]]
        ax.bar(
            [b["low"] for b in full],
            [b["accuracy"] for b in full],
            width=[b["high"] - b["low"] for b in full],
            align="edge",
            color=_BLUE,
            alpha=0.75,
            edgecolor="white",
            label="share right",
        )
        ax.scatter(
            [b["confidence"] for b in full],
            [b["accuracy"] for b in full],
            color=_ORANGE,
            zorder=3,
            s=18,
            label="mean confidence",
        )
        for b in full:
            ax.annotate(
                str(b["count"]),
                ((b["low"] + b["high"]) / 2, min(0.97, b["accuracy"] + 0.02)),
                ha="center",
                fontsize=7,
                color="#333333",
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("confidence")
        ax.set_ylabel("share right")
        ax.set_title(title, fontsize=10)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=8)
    return _png_bytes(fig)


def confidence_png(confidences: Sequence[float], correct: Sequence[bool]) -> str:
    """How confidence is spread for right and for wrong answers."""
    fig = Figure(figsize=(6, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    edges = [i / 20 for i in range(21)]
    right = [c for c, ok in zip(confidences, correct, strict=True) if ok]
    wrong = [c for c, ok in zip(confidences, correct, strict=True) if not ok]
    ax.hist(
        [right, wrong], bins=edges, color=[_GREEN, _RED], label=["right", "wrong"], stacked=True
    )
    ax.set_xlabel("confidence")
    ax.set_ylabel("questions")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return _png(fig)


def latency_png(timings: Sequence[dict[str, float]]) -> str:
    """A histogram of total latency with p50 and p95 marked, and p50/p95 per stage."""
    fig = Figure(figsize=(9, 3.6))
    ax = fig.add_subplot(1, 2, 1)
    totals = [t["total"] for t in timings if "total" in t]
    ax.hist(totals, bins=min(40, max(5, len(totals) // 3)), color=_BLUE, alpha=0.85)
    for q, color in ((50, _GREEN), (95, _RED)):
        value = percentile(totals, q)
        if value is not None:
            ax.axvline(value, color=color, linestyle="--", label=f"p{q} {value:,.0f} ms")
    ax.set_xlabel("total ms per question")
    ax.set_ylabel("questions")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    bars = fig.add_subplot(1, 2, 2)
    stages = [s for s in STAGES if any(s in t for t in timings)]
    for offset, q, color in ((-0.2, 50, _GREEN), (0.2, 95, _RED)):
        values = [percentile([t[s] for t in timings if s in t], q) or 0.0 for s in stages]
        bars.bar([i + offset for i in range(len(stages))], values, 0.4, color=color, label=f"p{q}")
    bars.set_xticks(range(len(stages)), stages)
    bars.set_ylabel("ms")
    bars.set_title("per stage", fontsize=10)
    bars.legend(fontsize=8)
    return _png(fig)
