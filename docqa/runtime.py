"""Process-wide set-up done once at start-up, from the settings: logging and offline mode."""

from __future__ import annotations

import logging
import os

from docqa.settings import Settings


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
