"""What a GGUF file holds, read from its header: its quantization type, and the docqa class of it.

``DOCQA_LLM_QUANTIZATION`` speaks of three classes (``none``, ``int8``, ``int4``). On llama.cpp the
GGUF's own quantization is used, and it falls into one of them: float types are ``none``; 5- to
8-bit types (Q5_*, Q6_K, Q8_0) are ``int8``; 4 bits and under (Q4_K_M, Q4_0, Q3_K, IQ*...) are
``int4``.
"""

from __future__ import annotations

import collections
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from modelstore.errors import ModelFormatError

# llama.h's llama_ftype, as written in `general.file_type`.
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
}  # fmt: skip


@dataclass(frozen=True)
class GgufQuantization:
    type: str  # e.g. Q4_K_M
    klass: str  # none, int8 or int4

    def __str__(self) -> str:
        return f"{self.type} ({self.klass})"


def quantization_class(type_name: str) -> str:
    """The docqa class of a GGUF quantization type.

    >>> [quantization_class(t) for t in ("Q4_K_M", "Q8_0", "Q6_K", "BF16", "IQ4_XS")]
    ['int4', 'int8', 'int8', 'none', 'int4']
    """
    name = type_name.upper()
    if name in ("F32", "F16", "BF16"):
        return "none"
    if name.startswith(("Q5", "Q6", "Q8")):
        return "int8"
    return "int4"


def gguf_quantization(path: Path) -> GgufQuantization:
    """Read ``general.file_type``; without it, the most common type of the 2-D weights.

    Reads the header only, stopping at the key (``gguf.GGUFReader`` maps every tensor first: 15 s
    for a 100 MB file on a busy 2-core machine).
    """
    try:
        with path.open("rb") as handle:
            header = _Header(handle)
            code = header.file_type()
            if code is None:
                counts = collections.Counter(header.matrix_types())
                if not counts:
                    raise ModelFormatError(f"{path} holds no weight matrices")
                code = counts.most_common(1)[0][0]
    except (OSError, struct.error) as exc:
        raise ModelFormatError(f"{path} is not a readable GGUF file: {exc}") from exc
    name = _FILE_TYPES.get(code) if header.file_type_seen else _TENSOR_TYPES.get(code)
    if name is None:
        raise ModelFormatError(f"{path}: unknown GGUF quantization type {code}")
    return GgufQuantization(name, quantization_class(name))


# ggml_type of a tensor (for files without general.file_type).
_TENSOR_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 10: "Q2_K",
    11: "Q3_K_M", 12: "Q4_K_M", 13: "Q5_K_M", 14: "Q6_K", 16: "IQ2_XXS", 17: "IQ2_XS",
    18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 29: "IQ1_M",
    30: "BF16", 34: "TQ1_0", 35: "TQ2_0",
}  # fmt: skip
# GGUF value types: fixed sizes; 8 is a string, 9 an array.
_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class _Header:
    """A forward-only reader of a GGUF header (v2/v3, little-endian)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.f = handle
        if self.f.read(4) != b"GGUF":
            raise ModelFormatError(f"{getattr(handle, 'name', 'file')} is not a GGUF file")
        version = self._u32()
        if version < 2:
            raise ModelFormatError(f"GGUF version {version} is not supported (2 or 3 are)")
        self.tensors = self._u64()
        self.kv_left = self._u64()
        self.file_type_seen = False

    def _u32(self) -> int:
        return int(struct.unpack("<I", self.f.read(4))[0])

    def _u64(self) -> int:
        return int(struct.unpack("<Q", self.f.read(8))[0])

    def _string(self) -> bytes:
        return self.f.read(self._u64())

    def _skip(self, kind: int) -> None:
        if kind == _STRING:
            self.f.seek(self._u64(), 1)
        elif kind == _ARRAY:
            inner, count = self._u32(), self._u64()
            if inner in _SIZES:
                self.f.seek(_SIZES[inner] * count, 1)
            else:
                for _ in range(count):
                    self._skip(inner)
        elif kind in _SIZES:
            self.f.seek(_SIZES[kind], 1)
        else:
            raise ModelFormatError(f"unknown GGUF value type {kind}")

    def file_type(self) -> int | None:
        while self.kv_left:
            self.kv_left -= 1
            key, kind = self._string(), self._u32()
            if key == b"general.file_type" and kind in (4, 5):
                self.file_type_seen = True
                return int(struct.unpack("<I", self.f.read(4))[0])
            self._skip(kind)
        return None

    def matrix_types(self) -> list[int]:
        while self.kv_left:  # the rest of the key-value section comes before the tensors
            self.kv_left -= 1
            self._string()
            self._skip(self._u32())
        types = []
        for _ in range(self.tensors):
            self._string()
            dims = self._u32()
            shape = struct.unpack(f"<{dims}Q", self.f.read(8 * dims))
            kind = self._u32()
            self._u64()  # offset
            if dims == 2 and min(shape) > 1:
                types.append(kind)
        return types
