"""Every parser's peak memory stays within 10 times the file's size (an invariant, not a speed).

Each parse runs in a fresh child process, which reports its peak resident memory over what it
held before the parse: after a warm-up parse of a small file of the same format (lazy imports
and caches are no part of a file's cost), it resets the kernel's high-water mark (writing 5 to
``/proc/self/clear_refs``), parses, and reads the mark (``VmHWM``) back.
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from tests.ingest.generated import GENERATORS, text

pytestmark = pytest.mark.slow  # a child process per parse

LIMIT = 10  # peak memory over the file's size
SIZES = {".txt": 2_000_000, ".md": 2_000_000, ".html": 2_000_000, ".docx": 2_000_000}
SIZES[".pdf"] = 600_000  # pypdf reads about 150 KB/s here: keep the test short

_MEASURE = r"""
import gc, sys
from pathlib import Path
from ingest.parsers import parse

def status(key):
    with open("/proc/self/status", encoding="ascii") as lines:
        return next(int(l.split()[1]) * 1024 for l in lines if l.startswith(key + ":"))

parse(Path(sys.argv[2]), 1 << 30)
gc.collect()
with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
    refs.write("5")  # reset the peak resident size to the present one
before = status("VmRSS")
doc = parse(Path(sys.argv[1]), 1 << 30)
print(status("VmHWM") - before, len(doc.text))
"""


def test_the_generated_text_deflates_like_prose() -> None:
    """The sizes below mean something only if the text compresses as real text does (gzip
    reads English prose at about 2.7-3.2 to 1); compressed formats are measured on it."""
    sample = text(1_000_000)
    assert 2.5 < len(sample) / len(zlib.compress(sample)) < 3.3


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("suffix", sorted(GENERATORS))
def test_peak_memory_is_at_most_ten_times_the_file(tmp_path: Path, suffix: str) -> None:
    big = tmp_path / f"big{suffix}"
    big.write_bytes(GENERATORS[suffix](SIZES[suffix]))
    warm = tmp_path / f"warm{suffix}"
    warm.write_bytes(GENERATORS[suffix](20_000))
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(big), str(warm)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    growth, chars = (int(v) for v in done.stdout.split())
    size = big.stat().st_size
    assert chars > size // 3  # the text was read, not refused
    assert growth <= LIMIT * size, f"{suffix}: {growth / size:.1f} x the file's {size} bytes"
