"""What every benchmark script does first, as ``import _path``, before any other import of ours.

``python bench/x.py`` puts ``bench/`` first on ``sys.path``, not the repository root, so
``bench``, ``config``, ``index``... would not be found, or be found in the editable install's
tree rather than in this one (a copy of the tree runs its own code). And ``bench/ingest.py``
would shadow the ``ingest`` package. So the root goes first on the path.

It also sets ``OMP_WAIT_POLICY`` as ``config.runtime.configure`` does for the CLI and the server,
before torch or llama.cpp load their OpenMP runtime: active waiting collapses on a busy machine
(docs/BENCHMARKS.md).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
