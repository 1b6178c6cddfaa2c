"""`docqa worker`: run ingest jobs from the job queue, in a process of its own.

One per GPU, or one per CPU host, beside any number of API hosts (``DOCQA_WORKER=false`` there)
sharing one database (``DOCQA_DATABASE_URL``) and one Chroma server (``DOCQA_CHROMA_URL``). On
one box, without those, it shares the data dir's SQLite queue with ``docqa serve``.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

import typer

from config.settings import Settings
from ingest.worker import JobWorker
from wiring.compose import Services

log = logging.getLogger(__name__)


def worker(
    ctx: typer.Context,
    once: bool = typer.Option(
        False, "--once", help="Run the jobs that are ready now, then exit (a batch, a cron job)."
    ),
) -> None:
    """Run ingest jobs (uploads) until stopped; SIGTERM or Ctrl-C finish the job in hand first."""
    settings: Settings = ctx.obj
    if settings.chroma_url is None:
        # Embedded Chroma is one process's store: a `docqa serve` on the same data dir would
        # write it too. Beside a server, use a Chroma server (and the database for several hosts).
        log.warning(
            "the worker writes embedded Chroma in %s: stop other docqa processes on this data "
            "dir, or set DOCQA_CHROMA_URL (and DOCQA_DATABASE_URL for several hosts)",
            settings.chroma_dir,
        )
    services = Services.build(settings)  # the embedder and the stores; no generator
    services.embedder.embed_query("warm up")  # load the model now, not in the first job
    runner = JobWorker(
        services.jobs, services.ingestor, services.manifest, lease_s=settings.job_lease_s
    )

    def request_stop(signum: int, _: FrameType | None) -> None:
        log.info("%s: finishing the job in hand, then stopping", signal.Signals(signum).name)
        runner.request_stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        if once:
            while runner.run_once():
                pass
        else:
            runner.run()
    finally:
        services.close()
