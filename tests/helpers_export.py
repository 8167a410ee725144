"""A finished run folder in the real formats (result.json + adapter.safetensors), without training: the adapter's
trainable tensors are set to random values, so every layer's ΔW is non-zero and an export has something to carry."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from randlora.adapters import basis_checksum, inject, save_adapter
from randlora.export.source import build_base
from randlora.run.results import write_json_atomic
from randlora.train import adapter_settings
from randlora.utils.config import compose_config, to_plain

# Odd, non-square layer shapes: hidden 20 (2 heads of 10), intermediate 44; ViT MLP 20 -> 60.
ODD_SHAPES = {
    "tiny_llama": ["+backbone.model_kwargs.hidden_size=20", "+backbone.model_kwargs.intermediate_size=44"],
    "tiny_bert": ["+backbone.model_kwargs.hidden_size=20", "+backbone.model_kwargs.intermediate_size=44"],
    "tiny_vit": ["+backbone.model_kwargs.embed_dim=20", "+backbone.model_kwargs.mlp_ratio=3.0"],
    "tiny_clip": [],
    "minilm": [],
}
TASKS = {"tiny_llama": "commonsense", "tiny_bert": "tweets", "tiny_vit": "tweets", "tiny_clip": "tweets",
         "minilm": "tweets"}


def run_config(backbone: str, adapter: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    cfg = compose_config([f"backbone={backbone}", f"task={TASKS[backbone]}", f"adapter={adapter}",
                          *ODD_SHAPES[backbone], *overrides])
    return {"seed": int(cfg.seed), **{key: to_plain(cfg[key]) for key in ("backbone", "task", "adapter")}}


def make_run(root: Path, backbone: str, adapter: str, overrides: Sequence[str] = (), seed: int = 0) -> Path:
    """`root/<backbone>-<adapter>/` holding result.json (status ok) and adapter.safetensors."""
    config = run_config(backbone, adapter, overrides)
    model = build_base(config)
    inject(model, adapter_settings(config["adapter"], model))
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    run_dir = root / f"{backbone}-{adapter}"
    save_adapter(model, run_dir / "adapter.safetensors")
    write_json_atomic(run_dir / "result.json", {
        "schema": 1, "status": "ok", "error": None, "run_id": f"test_{backbone}_{adapter}", "task": TASKS[backbone],
        "backbone": backbone, "adapter": adapter, "metrics": {"test/acc": 0.5}, "basis_checksum": basis_checksum(model),
        "config": config})
    return run_dir
