"""Convert a GGUF causal LM once into a safetensors folder that reloads in seconds.

transformers dequantizes a GGUF file at every load (about a minute for 1.5B parameters) and
refuses to ``save_pretrained`` a GGUF-loaded model, and refuses a ``quantization_config`` with
``gguf_file=``. So we load it once, copy its weights into a plain model built from the same
config (without the GGUF quantization config), and save that in bfloat16: reloads take seconds,
and bitsandbytes can quantize it later.
"""

from __future__ import annotations

import logging
from pathlib import Path

from modelstore.errors import ModelFormatError

log = logging.getLogger(__name__)


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Write model, tokenizer and chat template of ``gguf_path`` as safetensors into ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    log.info("loading %s (dequantizing GGUF, this takes a while once)", gguf_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        gguf_model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32
        )
    except (ValueError, OSError, KeyError) as exc:
        raise ModelFormatError(f"cannot read {gguf_path} as a GGUF causal LM: {exc}") from exc

    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(gguf_model.config).from_dict(config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)  # type: ignore[no-untyped-call]
    result = model.load_state_dict(gguf_model.state_dict(), strict=False)
    if result.missing_keys:
        raise ModelFormatError(
            f"{gguf_path}: weights missing after conversion: {result.missing_keys[:5]}"
        )
    del gguf_model
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    log.info("saved %s", out_dir)
