"""Offline evaluation: data sets in public formats through the real ingest and ask code paths.

``docqa eval run`` loads a data set (`eval.datasets`), picks its questions (`eval.selection`),
builds or reuses an isolated collection of its documents (`eval.collection`), asks every question
exactly as ``POST /v1/ask`` would (`eval.runner`, `eval.scoring`), appends one line per question
to the run's ``per_question.jsonl`` (`eval.store`), then computes the metrics from those lines
(`eval.aggregate`, `eval.metrics`, `eval.calibration`) and writes ``metrics.json`` and a
self-contained ``report.html`` (`eval.report`). Gates (`eval.gates`) and run comparison
(`eval.compare`) read the metrics back. See docs/EVALUATION.md.
"""
