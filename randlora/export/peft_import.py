"""PEFT LoRA / VeRA / RandLoRA adapter folders -> our adapter file, for the same base model.

The PEFT folder's module names are relative to the pretrained model (see `source.pretrained_part`); ours get
the backbone's prefix. VeRA's and RandLoRA's projections are PEFT's own random matrices, which no `basis_seed`
of ours regenerates, so they are stored in our adapter file (`SharedBases.replace`); `load_adapter` puts them
back. RandLoRA's index mapping is the inverse of `peft_export`'s: our flat B column j·r + k of a layer with n
bases = PEFT's column k·n + j of B[:M, :n].reshape(M, n·r); our λ = PEFT's λᵀ; γ and the scale α/r as they are.

Refused, in one line each: other PEFT types, LoRA with rank/alpha patterns, DoRA, trained biases or
MultiheadAttention targets, and VeRA/RandLoRA folders saved without their projections.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from randlora.adapters import inject, save_adapter
from randlora.adapters.save import shared_bases
from randlora.eval import IMPORT_FILE
from randlora.run.results import ADAPTER_FILE, write_json_atomic

from .folders import check_new_folder, staged_folder
from .source import adapted_names, build_base, our_name, pretrained_part

PEFT_TYPES = {"LORA": "lora", "VERA": "vera", "RANDLORA": "randlora"}
LAYER_KEY = re.compile(r"^base_model\.model\.(.+)\.(lora_A\.weight|lora_B\.weight|vera_lambda_b|vera_lambda_d|"
                       r"randlora_lambda|randlora_gamma|randlora_A|randlora_B)$")


def read_peft_folder(peft_dir: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(adapter_config.json, adapter_model.safetensors tensors) with one-line refusals of what we cannot import."""
    from safetensors.torch import load_file

    peft_dir = Path(peft_dir)
    config_path, weights_path = peft_dir / "adapter_config.json", peft_dir / "adapter_model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: PEFT_DIR must be a folder written by PEFT's "
                                    "save_pretrained")
    peft_config = json.loads(config_path.read_text())
    kind = peft_config.get("peft_type")
    if kind not in PEFT_TYPES:
        raise ValueError(f"{config_path}: peft_type {kind!r} cannot be imported; allowed: {', '.join(PEFT_TYPES)}")
    refusals = {"rank_pattern": "per-module ranks", "alpha_pattern": "per-module alphas", "use_dora": "DoRA"}
    for key, what in refusals.items():
        if peft_config.get(key):
            raise ValueError(f"{config_path}: {key}={peft_config[key]!r} ({what}) has no equivalent here")
    if peft_config.get("bias", "none") != "none":
        raise ValueError(f"{config_path}: bias={peft_config['bias']!r} (trained biases) has no equivalent here; "
                         "allowed: 'none'")
    if kind != "LORA" and not peft_config.get("save_projection", True):
        raise ValueError(f"{config_path}: save_projection=false: the projections are not in the folder (PEFT "
                         "regenerates them from projection_prng_key); save the adapter with save_projection=True")
    return peft_config, load_file(str(weights_path))


def import_peft(peft_dir: str | Path, config: dict[str, Any], out: str | Path) -> Path:
    """Write `out/adapter.safetensors` (+ import.json) for the backbone of `config` (seed, backbone, task)."""
    check_new_folder(out)
    peft_config, state = read_peft_folder(peft_dir)
    method = PEFT_TYPES[peft_config["peft_type"]]
    layers = sorted({m.group(1) for key in state if (m := LAYER_KEY.match(key))})
    if any(".base_layer." in name for name in layers):
        raise ValueError(f"{peft_dir}: LoRA on nn.MultiheadAttention (PEFT adapts out_proj too) is not imported")
    backbone = build_base(config)
    part = pretrained_part(backbone, config, export=False)
    head_file = Path(peft_dir) / "head.safetensors"
    extra = [our_name(part, name) for name in peft_config.get("modules_to_save") or []]
    if head_file.is_file() and part.head is not None:
        extra.append(part.head_prefix.rstrip("."))
    settings = _our_config(method, peft_config, [our_name(part, name) for name in layers], extra)
    inject(backbone, settings)
    ours = dict(adapted_names(backbone))
    with torch.no_grad():
        if method == "vera":
            shared_bases(backbone).replace({"A": _cut(state["base_model.vera_A"], shared_bases(backbone).A),
                                            "B": _cut(state["base_model.vera_B"], shared_bases(backbone).B)})
        for name in layers:
            _copy_layer(method, ours[our_name(part, name)], state, f"base_model.model.{name}.")
        if method == "randlora":
            _install_randlora_bases(backbone, [ours[our_name(part, name)] for name in layers],
                                    state["base_model.randlora_A"], state["base_model.randlora_B"])
        _copy_extras(backbone, part, state, peft_config.get("modules_to_save") or [], head_file)
    with staged_folder(out) as folder:
        save_adapter(backbone, folder / ADAPTER_FILE)
        write_json_atomic(folder / IMPORT_FILE, {
            "schema": 1, "status": "imported", "imported_from": str(Path(peft_dir).resolve()),
            "peft_config": peft_config, "adapter": settings, "backbone": config["backbone"].get("name"),
            "task": config["task"].get("name"), "metrics": {},
            "config": {**config, "adapter": {**config.get("adapter", {}), **settings}}})
    return Path(out)


def _our_config(method: str, peft_config: dict[str, Any], targets: list[str], extra: list[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {"name": method, "rank": int(peft_config["r"]), "targets": targets,
                                "trainable_extra": extra}
    if method == "lora":
        settings.update(alpha=float(peft_config["lora_alpha"]), rslora=bool(peft_config.get("use_rslora")),
                        dropout=float(peft_config.get("lora_dropout") or 0.0))
    elif method == "vera":
        settings.update(d_initial=float(peft_config.get("d_initial", 0.1)),
                        dropout=float(peft_config.get("vera_dropout") or 0.0))
    else:
        basis = "very_sparse" if peft_config.get("very_sparse") else "sparse" if peft_config.get("sparse") else "dense"
        settings.update(alpha=float(peft_config["randlora_alpha"]), scaling="peft", num_bases_rule="ceil",
                        basis=basis, dropout=float(peft_config.get("randlora_dropout") or 0.0))
    return settings


def _cut(theirs: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """PEFT's shared projection cut to our (never larger) shape."""
    return theirs[tuple(slice(0, size) for size in like.shape)].float()


def _copy_layer(method: str, layer: nn.Module, state: dict[str, torch.Tensor], key: str) -> None:
    if method == "lora":
        layer.lora_A.copy_(state[key + "lora_A.weight"])
        layer.lora_B.copy_(state[key + "lora_B.weight"])  # scale: our alpha and rslora are PEFT's
    elif method == "vera":
        layer.vera_lambda_b.copy_(state[key + "vera_lambda_b"] / getattr(layer, "scale", 1.0))
        layer.vera_lambda_d.copy_(state[key + "vera_lambda_d"])
    else:
        lam, gam = state[key + "randlora_lambda"], state[key + "randlora_gamma"]  # (r, n), (n, m)
        if lam.shape[1] != layer.num_bases:
            raise ValueError(f"{key}: PEFT has {lam.shape[1]} RandLoRA bases, our rule gives {layer.num_bases}")
        layer.randlora_lambda.copy_(lam.t())
        layer.randlora_gamma.copy_(gam)


def _install_randlora_bases(backbone: nn.Module, layers: list[nn.Module], peft_A: torch.Tensor,
                            peft_B: torch.Tensor) -> None:
    """Write PEFT's A (r, 1, m_p) and B (M_p, n_p, r) into our shared bases, layer by layer, then mark them stored."""
    flat = peft_B.float().reshape(peft_B.shape[0], -1)  # column c = PEFT's slot k·n + j
    for layer in layers:
        A, B = layer.frozen_bases()  # views of the shared buffers
        r, n, M = layer.rank, layer.num_bases, layer.d_large
        A.copy_(peft_A[:, 0, : A.shape[1]].float())
        slots = torch.tensor([k * n + j for j in range(n) for k in range(r)])
        B.copy_(flat[:M, slots])
    bases = shared_bases(backbone)
    bases.replace({name: buffer.clone() for name, buffer in bases.named_buffers(recurse=False)})


def _copy_extras(backbone: nn.Module, part, state: dict[str, torch.Tensor], modules: list[str],
                 head_file: Path) -> None:
    """modules_to_save tensors, and our exported head.safetensors when the folder has one."""
    from safetensors.torch import load_file

    params = dict(backbone.named_parameters())
    for module in modules:
        prefix = f"base_model.model.{module}."
        for key, tensor in state.items():
            if key.startswith(prefix):
                params[f"{our_name(part, module)}.{key[len(prefix):]}"].copy_(tensor)
    if head_file.is_file() and part.head is not None:
        part.head.load_state_dict(load_file(str(head_file)))
