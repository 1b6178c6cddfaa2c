"""`docqa eval run|runs|compare`: offline evaluation runs, their listing and comparison.

Exit codes of ``run``: 0 done and every gate held; 1 a gate was breached, or a fatal error;
2 a usage error (unknown metric in a gate, a run to resume that does not match).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError
from tqdm.contrib.logging import logging_redirect_tqdm

from config.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.answer.confidence import ConfidenceFit
    from eval.store import Run

log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, help="Offline evaluation over public QA data sets.")

SUMMARY = (
    *("hit@1", "hit@5", "mrr@10", "ndcg@10", "em", "f1", "correct", "citation_precision"),
    "support",
    *("decline_rate", "decline_precision", "decline_recall", "ece", "auroc"),
    *("suggested_low_confidence", "p50_ms", "p95_ms"),
)


def _with_overrides(settings: Settings, **updates: Any) -> Settings:
    """The settings with command-line overrides applied, validated, origins kept."""
    updates = {k: v for k, v in updates.items() if v is not None}
    if not updates:
        return settings
    try:
        changed = Settings.model_validate({**settings.model_dump(), **updates})
    except ValidationError as exc:
        typer.echo(f"error: invalid settings: {exc}", err=True)
        raise typer.Exit(2) from exc
    changed._origins = {**settings._origins, **dict.fromkeys(updates, "override")}
    return changed


def _fail(exc: Exception, code: int) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code)


@app.command("run")
def run(
    ctx: typer.Context,
    dataset: Path = typer.Option(..., "--dataset", help="Data set file or folder."),
    fmt: str = typer.Option(..., "--format", help="squad, beir, hotpot or jsonl."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="A seeded sample of N."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample and unanswerable choice."),
    name: str | None = typer.Option(None, "--name", help="Run name; default: the data set's."),
    profile: str | None = typer.Option(None, "--profile", help="Overrides the profile."),
    unanswerable_fraction: float = typer.Option(
        0.0,
        "--unanswerable-fraction",
        min=0.0,
        max=0.95,
        help="Share of questions made unanswerable by removing their gold documents.",
    ),
    retrieval_only: bool = typer.Option(
        False, "--retrieval-only", help="Rank documents only; no generator (BEIR, SciFact)."
    ),
    top_k: int = typer.Option(5, "--top-k", min=1, max=50, help="Passages per answer."),
    noise_passages: int = typer.Option(
        0,
        "--noise-passages",
        min=0,
        max=20,
        help="Add N passages of other documents to each question's passages, shuffled.",
    ),
    fail_under: str | None = typer.Option(
        None, "--fail-under", help="Gates: METRIC=VALUE,... fail when a metric is lower."
    ),
    fail_over: str | None = typer.Option(
        None, "--fail-over", help="Gates: METRIC=VALUE,... fail when a metric is higher."
    ),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Overrides DOCQA_RUNS_DIR."),
    resume: str | None = typer.Option(
        None, "--resume", help="Continue this run folder (name or path)."
    ),
    no_resume: bool = typer.Option(
        False, "--no-resume", help="Start afresh even if an unfinished run matches."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
) -> None:
    """Evaluate retrieval and answers on a data set; write a run folder with a report."""
    from eval.errors import EvalError
    from eval.gates import check, parse_gates
    from eval.runconfig import RunSpec
    from eval.runner import run_evaluation
    from eval.types import FORMATS
    from index.errors import DocqaIndexError
    from modelstore.errors import ModelError

    if fmt not in FORMATS:
        typer.echo(f"error: unknown format {fmt!r}; choose from {', '.join(FORMATS)}", err=True)
        raise typer.Exit(2)
    try:
        gates = parse_gates(fail_under, "under") + parse_gates(fail_over, "over")
    except EvalError as exc:
        raise _fail(exc, exc.exit_code) from exc
    settings = _with_overrides(ctx.obj, profile=profile, runs_dir=runs_dir)
    spec = RunSpec(
        dataset=dataset,
        format=fmt,
        name=name,
        limit=limit,
        seed=seed,
        unanswerable_fraction=unanswerable_fraction,
        retrieval_only=retrieval_only,
        top_k=top_k,
        noise_passages=noise_passages,
        command=_command_line(),
        arguments={
            **{f"global_{k}": _jsonable(v) for k, v in ctx.find_root().params.items()},
            **{key: _jsonable(value) for key, value in ctx.params.items()},
        },
    )
    try:
        with logging_redirect_tqdm():
            result = run_evaluation(
                settings, spec, resume=resume, auto_resume=not no_resume, progress=progress
            )
    except EvalError as exc:
        raise _fail(exc, exc.exit_code) from exc
    except (ModelError, DocqaIndexError) as exc:
        raise _fail(exc, 1) from exc
    metrics = result.metrics["metrics"]
    typer.echo(f"run {result.run.path}")
    for key in SUMMARY:
        if metrics.get(key) is not None:
            typer.echo(f"  {key:<25} {metrics[key]:.4g}")
    typer.echo(f"report {result.run.path / 'report.html'}")
    breaches = check(gates, metrics)
    for message in breaches:
        typer.echo(f"gate breached: {message}", err=True)
    if breaches:
        raise typer.Exit(1)
    if gates:
        typer.echo(f"all {len(gates)} gates held")


def _command_line() -> list[str]:
    """The command as typed, when this process is the `docqa` command (not a test runner)."""
    program = Path(sys.argv[0]).name
    return ["docqa", *sys.argv[1:]] if program in ("docqa", "__main__.py") else []


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


@app.command("runs")
def runs(
    ctx: typer.Context,
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Overrides DOCQA_RUNS_DIR."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per run."),
) -> None:
    """List the runs: name, time, data set, status and key metrics."""
    from eval.compare import runs_text
    from eval.store import list_runs

    settings = _with_overrides(ctx.obj, runs_dir=runs_dir)
    found = list_runs(settings.run_records_dir)
    if as_json:
        for r in found:
            result = r.metrics()
            typer.echo(
                json.dumps(
                    {"run": r.name, "path": str(r.path), "metrics": result and result["metrics"]}
                )
            )
        return
    if not found:
        typer.echo(f"no runs in {settings.run_records_dir}")
        return
    typer.echo(runs_text(found))


@app.command("backfill")
def backfill(
    ctx: typer.Context,
    run_refs: list[str] = typer.Argument(..., metavar="RUN...", help="Run names or folders."),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Overrides DOCQA_RUNS_DIR."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
) -> None:
    """Measure the confidence parts runs were recorded without (coverage), by asking their
    retrieval again; written to each run's backfill.json. Use the runs' --profile."""
    from eval.backfill import backfill_coverage
    from eval.errors import EvalError
    from eval.store import resolve_run
    from index.errors import DocqaIndexError
    from modelstore.errors import ModelError

    settings = _with_overrides(ctx.obj, runs_dir=runs_dir)
    try:
        runs = [resolve_run(ref, settings.run_records_dir) for ref in run_refs]
        for run in runs:
            with logging_redirect_tqdm():
                done = backfill_coverage(settings, run, progress)
            typer.echo(
                f"{run.name}: coverage of {done.measured} answers"
                + (f"; {len(done.unchecked)} no longer match the record" if done.unchecked else "")
            )
    except EvalError as exc:
        raise _fail(exc, exc.exit_code) from exc
    except (ModelError, DocqaIndexError) as exc:
        raise _fail(exc, 1) from exc


@app.command("agreement")
def agreement(
    ctx: typer.Context,
    run_ref: str = typer.Argument(
        ..., help="The labelled run: a folder name or a path, or a file of per-question lines."
    ),
    labels: Path = typer.Option(..., "--labels", help="Hand labels: JSON lines {id, right, why}."),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Overrides DOCQA_RUNS_DIR."),
) -> None:
    """How well each correctness rule agrees with hand labels of a run's answers."""
    from eval.errors import EvalError
    from eval.labels import agreement as agree
    from eval.labels import agreement_text, load_labels, read_records
    from eval.store import resolve_run

    settings = _with_overrides(ctx.obj, runs_dir=runs_dir)
    try:
        lines = Path(run_ref)
        # bench/prompt_ab.py writes the same per-question lines outside a run folder.
        if lines.is_file():
            records = read_records(lines)
        else:
            records = resolve_run(run_ref, settings.run_records_dir).records()
        given = load_labels(labels)
        rows = agree(records, given)
    except EvalError as exc:
        raise _fail(exc, exc.exit_code) from exc
    typer.echo(agreement_text(rows, len(given), sum(given.values())))


def _replayed_fit(
    settings: Settings, runs: Sequence[Run], levels: str
) -> tuple[ConfidenceFit, list[float | None]]:
    """The fit and decline levels ``docqa eval replay --fitted`` applies: the settings' (what the
    service would use), for runs made with the models it was fitted for."""
    from eval.errors import UsageError
    from modelstore.profiles import models_for
    from wiring.compose import confidence_fit, decline_below

    fit = confidence_fit(settings)
    if fit is None:
        raise UsageError(
            "--fitted: no confidence fit for these settings (set DOCQA_CONFIDENCE_FIT, or use "
            "a profile whose generator's catalog entry has one for its embedder)"
        )
    models = models_for(settings)
    wanted = {"generator": models.generator.name, "embedder": models.embedder.name}
    for run in runs:
        used = {k: run.config().get("models", {}).get(k, {}).get("id") for k in wanted}
        if settings.confidence_fit is None and used != wanted:
            raise UsageError(
                f"--fitted: run {run.name} was made with {used}, the catalog's fit is for {wanted}"
            )
    given = [x.strip() for x in levels.split(",") if x.strip()]
    chosen = [None if x.lower() == "none" else float(x) for x in given]
    return fit, chosen or [decline_below(settings)]


def _replayed_threshold(settings: Settings, fitted: bool) -> float:
    """The low-confidence threshold the service would flag with: the fit's (the settings', else
    the catalog's) when the fit is replayed; else the weighted sum's (the runs recorded it)."""
    from app.answer.confidence import DEFAULT_THRESHOLD
    from wiring.compose import low_confidence

    if fitted:
        return low_confidence(settings)
    return DEFAULT_THRESHOLD if settings.low_confidence is None else settings.low_confidence


@app.command("replay")
def replay(
    ctx: typer.Context,
    run_refs: list[str] = typer.Argument(..., help="Runs to pool: folder names or paths."),
    floors: str = typer.Option(
        "",
        "--answerable-floor",
        help="Floors to replay, comma-separated; per language as en:0.7/zh:0.8 "
        "(default: the runs' own).",
    ),
    thresholds: str = typer.Option(
        "",
        "--low-confidence",
        help="Low-confidence thresholds, comma-separated (default: the settings', on the "
        "replayed confidence's scale).",
    ),
    fitted: bool = typer.Option(
        False,
        "--fitted",
        help="Replay the confidence fit the settings give (DOCQA_CONFIDENCE_FIT, else the "
        "catalog's for the profile's generator and embedder) instead of the recorded confidence.",
    ),
    declines_below: str = typer.Option(
        "",
        "--decline-below",
        help="With --fitted: DOCQA_DECLINE_BELOW levels, comma-separated, 'none' for none "
        "(default: the settings').",
    ),
    plot: Path | None = typer.Option(
        None,
        "--plot",
        help="Also write each set's reliability diagram (answered questions, the first floor and "
        "decline level) to this PNG.",
    ),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Overrides DOCQA_RUNS_DIR."),
) -> None:
    """Declines and calibration of recorded runs under other thresholds, without asking again."""
    from eval.compare import table
    from eval.errors import EvalError
    from eval.replay import HEADER, default_floor, parse_floor, replay_plot, replay_rows
    from eval.store import resolve_run

    settings = _with_overrides(ctx.obj, runs_dir=runs_dir)
    try:
        runs = [resolve_run(ref, settings.run_records_dir) for ref in run_refs]
        wanted = [parse_floor(x) for x in floors.split(",") if x.strip()]
        levels = [float(x) for x in thresholds.split(",") if x.strip()]
        fit, below = _replayed_fit(settings, runs, declines_below) if fitted else (None, [None])
        levels = levels or [_replayed_threshold(settings, fitted)]
        chosen = wanted or [default_floor(runs)]
        rows = replay_rows(runs, chosen, levels, fit, below)
    except ValueError as exc:
        raise _fail(EvalError(f"not a number list: {exc}"), 2) from exc
    except EvalError as exc:
        raise _fail(exc, exc.exit_code) from exc
    typer.echo(table(HEADER, rows))
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_bytes(replay_plot(runs, chosen[0], fit, below[0]))
        typer.echo(f"reliability diagrams: {plot}")


@app.command("fit-confidence")
def fit_confidence(
    ctx: typer.Context,
    run_refs: list[str] = typer.Argument(..., help="Runs to pool: folder names or paths."),
    floor: str = typer.Option(
        "",
        "--answerable-floor",
        help="The floor whose answers are fitted; per language as en:0.7/zh:0.8 "
        "(default: the runs' own).",
    ),
    dev_share: float = typer.Option(
        0.5, "--dev-share", min=0.05, max=0.95, help="Share of questions fitted on."
    ),
    seed: int = typer.Option(0, "--seed", help="Seeds the development/held-out split."),
    features: str = typer.Option(
        "",
        "--features",
        help="What the fit weighs, comma-separated (default: every input the runs measured).",
    ),
    repeats: int = typer.Option(
        0,
        "--repeats",
        min=0,
        help="Choose the decline level and threshold on this many random halvings (averaged), "
        "and fit on every answer; 0: one split (--seed), read on its held-out half.",
    ),
    plot: Path | None = typer.Option(
        None,
        "--plot",
        help="Also write the held-out reliability diagrams (recorded and fitted) to this PNG.",
    ),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Overrides DOCQA_RUNS_DIR."),
) -> None:
    """Fit the confidence (P(right)) on recorded runs, check it on held-out questions, and print
    it as DOCQA_CONFIDENCE_FIT."""
    from app.answer.confidence import FIT_FEATURES
    from eval.confidence_choice import choice_text, choose
    from eval.confidence_fit import fit_and_check, pooled_examples, reliability_plot, report_text
    from eval.errors import EvalError
    from eval.replay import default_floor, parse_floor
    from eval.store import resolve_run

    settings = _with_overrides(ctx.obj, runs_dir=runs_dir)
    names = [x.strip() for x in features.split(",") if x.strip()] or None  # None: all measured
    if names is not None and set(names) - set(FIT_FEATURES):
        raise _fail(EvalError(f"--features takes some of {', '.join(FIT_FEATURES)}"), 2)
    try:
        runs = [resolve_run(ref, settings.run_records_dir) for ref in run_refs]
        chosen = parse_floor(floor) if floor.strip() else default_floor(runs)
        pool = pooled_examples(runs, chosen)
        choice = choose(pool, repeats, dev_share, names) if repeats else None
        # One split's report: printed without --repeats; its held-out half is what --plot draws.
        needed = choice is None or plot is not None
        report = fit_and_check(pool, seed, dev_share, names) if needed else None
    except EvalError as exc:
        raise _fail(exc, exc.exit_code) from exc
    except ValueError as exc:
        raise _fail(EvalError(str(exc)), 2) from exc
    if choice is not None:
        typer.echo(choice_text(choice))
    elif report is not None:
        typer.echo(report_text(report))
    if plot is not None and report is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_bytes(reliability_plot(report))
        typer.echo(f"reliability diagrams: {plot}")


@app.command("compare")
def compare(
    ctx: typer.Context,
    a: str = typer.Argument(..., help="Run A: a folder name in the runs dir, or a path."),
    b: str = typer.Argument(..., help="Run B."),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Overrides DOCQA_RUNS_DIR."),
) -> None:
    """Each metric of two runs side by side, with the delta B - A."""
    from eval.compare import compare_text
    from eval.errors import EvalError
    from eval.store import resolve_run

    settings = _with_overrides(ctx.obj, runs_dir=runs_dir)
    try:
        run_a = resolve_run(a, settings.run_records_dir)
        run_b = resolve_run(b, settings.run_records_dir)
        typer.echo(compare_text(run_a, run_b))
    except EvalError as exc:
        raise _fail(exc, exc.exit_code) from exc
