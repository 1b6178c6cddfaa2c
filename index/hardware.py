"""What the machine can compute fast: the device to use, and the CPU's native number formats.

bf16 on a CPU is only fast when the CPU has it in hardware (AVX512-BF16 or AMX, e.g. AMD Zen 4
and Intel Sapphire Rapids onwards). Elsewhere torch emulates it, about 10x slower than native and
slower than fp32 too (measured here: SmolLM2 read a 900-token prompt in 7.3 s bf16 against 3.0 s
fp32 on an AVX512F CPU without BF16), so the compute dtype follows the CPU's flags.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")
# Any one of these means bf16 matrix multiplication runs in hardware.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CpuDtype = Literal["bfloat16", "float32"]


# Device nodes and driver folders of a GPU that torch could see as CUDA: NVIDIA's driver, WSL2's
# GPU bridge, and AMD's ROCm (whose torch answers through the CUDA API too).
GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/dxg", "/dev/kfd")


def gpu_node_present(nodes: tuple[str, ...] = GPU_NODES) -> bool:
    """Whether any GPU device node or driver folder exists on this machine."""
    return any(Path(node).exists() for node in nodes)


@functools.cache
def cuda_available() -> bool:
    """Whether torch sees a CUDA device; answered without importing torch where there is no GPU
    node at all. Importing torch only to learn that costs about 0.2 GiB of resident memory for
    the life of the process, which a CPU-only service (llama.cpp, ONNX Runtime) never needs."""
    if not gpu_node_present():
        return False
    import torch

    return bool(torch.cuda.is_available())


def pick_device(requested: str) -> str:
    """``auto`` means CUDA when torch sees one, else CPU."""
    if requested != "auto":
        return requested
    return "cuda" if cuda_available() else "cpu"


def read_cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The ``flags`` of the first processor in ``/proc/cpuinfo``; empty where there is none.

    >>> sorted(read_cpu_flags(Path("/nonexistent")))
    []
    """
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, arm64
            return frozenset(value.split())
    return frozenset()


@functools.cache
def cpu_flags() -> frozenset[str]:
    return read_cpu_flags()


@dataclass(frozen=True)
class DtypeChoice:
    dtype: CpuDtype
    reason: str


def cpu_compute_dtype(flags: frozenset[str] | None = None) -> DtypeChoice:
    """bf16 with native bf16 instructions, fp32 otherwise, and why.

    >>> cpu_compute_dtype(frozenset({"avx2", "avx512_bf16"})).dtype
    'bfloat16'
    >>> cpu_compute_dtype(frozenset({"avx2", "avx512f"})).dtype
    'float32'
    """
    flags = cpu_flags() if flags is None else flags
    native = [f for f in BF16_FLAGS if f in flags]
    if native:
        return DtypeChoice("bfloat16", f"the CPU has native bf16 ({', '.join(native)})")
    return DtypeChoice(
        "float32",
        "the CPU has no native bf16 (no avx512_bf16 or amx_bf16 flag); torch would emulate it, "
        "slower than fp32",
    )
