"""Process-wide set-up done once at start-up, from the settings: logging and offline mode."""

from __future__ import annotations

import logging
import os

from config.settings import Settings


def configure(settings: Settings) -> None:
    """Configure logging and keep model libraries off the network unless allowed."""
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not settings.allow_network:
        # A missing model file must fail at once, not hang on (or silently use) the network.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # Chroma's telemetry
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # llama.cpp's threads are OpenMP threads. With the default (active) wait policy each one
    # spins at every barrier, so when another thread (a query being embedded, another process)
    # takes a core, decoding collapses: SmolLM2 took 24.9 s for 40 tokens with 2 threads on a
    # busy 2-core machine, 3.6 s with PASSIVE (docs/BENCHMARKS.md has the quiet-machine cost).
    # Read when the OpenMP runtime loads, so it must be set before llama.cpp is imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
