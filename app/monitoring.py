"""Answer monitoring: the low-confidence ratio, query drift, and the review log.

- The low-confidence ratio is taken over the last ``window`` answers.
- Drift: a two-sample Kolmogorov-Smirnov test of the recent window of top retrieval scores
  against a reference window (the first ``window`` scores this process saw). A small p-value
  means users now ask things the documents answer differently (or not at all): a dashboard
  alert, not a verdict.
- The review log (JSON Lines) gets every low-confidence answer and a random sample of the rest
  (``DOCQA_REVIEW_SAMPLE``, default 1%), for people to label.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any


class AnswerMonitor:
    def __init__(self, window: int = 200, min_samples: int = 30) -> None:
        self.window = window
        self.min_samples = min_samples
        self._low: deque[bool] = deque(maxlen=window)
        self._reference: list[float] = []
        self._recent: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def record(self, low_confidence: bool) -> float:
        """Record one answer; return the low-confidence ratio over the window."""
        with self._lock:
            self._low.append(low_confidence)
            return sum(self._low) / len(self._low)

    def record_top_score(self, score: float) -> float | None:
        """Record a top retrieval score; return the drift p-value once both windows are full
        enough, else None."""
        from scipy.stats import ks_2samp

        with self._lock:
            if len(self._reference) < self.window:
                self._reference.append(score)
                return None
            self._recent.append(score)
            if len(self._recent) < self.min_samples:
                return None
            result = ks_2samp(self._reference, list(self._recent))
            return float(result.pvalue)


class ReviewLog:
    def __init__(self, path: Path, sample_rate: float, seed: int | None = None) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def maybe_write(self, record: dict[str, Any], low_confidence: bool) -> bool:
        if not low_confidence and self._random.random() >= self.sample_rate:
            return False
        line = json.dumps({"time": time.time(), **record}, ensure_ascii=False)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")
        return True
