"""Our LoRA / LoRA+ / VeRA / RandLoRA adapters as PEFT adapter folders.

The folder is written by PEFT itself (`get_peft_model` on the pretrained model, our tensors copied in,
`save_pretrained`), so `PeftModel.from_pretrained(base, DIR)` loads it; `base` is the model a user loads
elsewhere (see `run.pretrained_part`): a transformers model, a timm model with `num_classes` set (our head
travels as its `modules_to_save` classifier), an open_clip model. Targets are the exact module names (as one regex).

Conversions (ΔW is unchanged in each, up to float round-off):
- LoRA: lora_A, lora_B as they are, lora_alpha = s·r for our scale s (rsLoRA and LoRA+ included: LoRA+ is
  only a training rule). open_clip's attention in-projection maps to PEFT's MultiheadAttention LoRA, whose
  out_proj LoRA is zero.
- VeRA: the shared A, B are saved as PEFT's projections; b, d per layer (any VeRA scale folded into b).
- RandLoRA: PEFT keeps A as (r, 1, m), B as (M, n, r), λ as (r, n), γ as (n, m) and pairs scaled row
  k·n + j (λ[k, j] A[k] ⊙ γ[j]) with column k·n + j of B[:M, :n].reshape(M, n·r); ours pairs λ_j[k] A[k] ⊙ γ_j
  with column j·r + k of our flat B (tests/test_adapter_reference.py). So PEFT's B gets our column j·r + k in
  slot k·n + j, λ = our λᵀ · (s / s_PEFT), γ = ours. PEFT uses n = ⌈m/r⌉ per layer: layers with fewer of
  our bases get zero λ for the rest; layers with more, or layers whose n differ such that one shared B
  cannot serve both pairings (LLaMA with grouped k/v projections), are refused.
PEFT stores VeRA's and RandLoRA's projections in the file (RandLoRA once per adapted layer), ours
regenerates them from `basis_seed`: the sizes of both files are printed and recorded in provenance.json.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from randlora.adapters.inject import CONFIG_ATTR
from randlora.backbones.fused_qkv import SplitQKV

from .folders import staged_folder
from .source import Part, Run, adapted_names, part_name, pretrained_part, save_head, strip_adapters, write_provenance

PEFT_METHODS = ("lora", "loraplus", "vera", "randlora")


class NotExpressible(ValueError):
    """PEFT has no format for (part of) this adapter; the merged export still works."""


def export_peft(run: Run, out: str | Path) -> dict[str, Any]:
    """Write `run`'s adapter as a PEFT folder `out`; returns the size report. Consumes `run.backbone`."""
    import peft

    backbone = run.backbone
    config = getattr(backbone, CONFIG_ATTR)
    layers = adapted_names(backbone)
    check_expressible(config.name, layers)
    if any(isinstance(m, SplitQKV) for m in backbone.modules()):
        raise NotExpressible("adapters on GPT-2's c_attn.q / c_attn.v (backbone.split_fused_qkv) have no PEFT form on "
                             "the stock model's fused c_attn; use --format merged")
    strip_adapters(backbone)
    part = pretrained_part(backbone, run.config)
    targets = {}
    for name, layer in layers:
        theirs = part_name(part, name)
        if theirs is None:
            raise NotExpressible(f"adapted module {name} is outside the pretrained model; use --format merged")
        targets[theirs] = layer
    modules_to_save = _modules_to_save(part, config.trainable_extra)
    peft_config = _peft_config(config, list(targets), modules_to_save, next(iter(targets.values())))
    peft_model = peft.get_peft_model(part.model, peft_config)
    tuner = peft_model.base_model
    with torch.no_grad():
        if config.name in ("lora", "loraplus"):
            _fill_lora(tuner, targets, peft_config.lora_alpha / peft_config.r)
        elif config.name == "vera":
            _fill_vera(tuner, targets)
        else:
            _fill_randlora(tuner, targets, config.rank, peft_config.randlora_alpha / peft_config.r)
    with staged_folder(out) as folder:
        peft_model.save_pretrained(str(folder))
        head = save_head(part, folder)
        sizes = {"peft_type": peft_config.peft_type.value, "our_adapter_bytes": run.adapter_path.stat().st_size,
                 "peft_adapter_bytes": (folder / "adapter_model.safetensors").stat().st_size}
        write_provenance(folder, run, "peft", {"library": part.library,
                                               "head_file": head.name if head is not None else None, **sizes})
    return sizes


def check_method(run_dir: str | Path) -> None:
    """Before anything is built: refuse adapters PEFT has no format for, from the adapter file's metadata."""
    import json

    from randlora.adapters import read_adapter_metadata
    from randlora.run.results import ADAPTER_FILE

    path = Path(run_dir) / ADAPTER_FILE
    if path.is_file():
        check_expressible(json.loads(read_adapter_metadata(path)["adapter_config"])["name"], [])


def check_expressible(method: str, layers: list[tuple[str, nn.Module]]) -> None:
    """Cheap refusals before anything is converted: NoLA / full, and VeRA or RandLoRA on in_proj weights."""
    if method not in PEFT_METHODS:
        what = "PEFT has no NoLA" if method == "nola" else "full fine-tuning is a whole model, not an adapter"
        raise NotExpressible(f"adapter {method!r} cannot be a PEFT adapter ({what}); use --format merged")
    in_proj = [name for name, layer in layers if layer.base_layer is None]
    if in_proj and method in ("vera", "randlora"):
        shown = ", ".join(in_proj[:3]) + (f" and {len(in_proj) - 3} more" if len(in_proj) > 3 else "")
        raise NotExpressible(f"PEFT's {method} cannot adapt nn.MultiheadAttention.in_proj_weight ({shown}); "
                             "use --format merged")


def _modules_to_save(part: Part, trainable_extra: list[str]) -> list[str]:
    """Our trainable extras inside the pretrained model -> PEFT modules_to_save (the outside head is a file)."""
    modules = []
    for prefix in trainable_extra:
        theirs = part_name(part, prefix + ".")
        if theirs is None:
            if part.head is not None and prefix + "." == part.head_prefix:
                continue
            raise NotExpressible(f"trainable_extra {prefix!r} is outside the pretrained model; use --format merged")
        module = theirs.rstrip(".")
        try:
            part.model.get_submodule(module)
        except AttributeError:
            raise NotExpressible(f"trainable_extra {prefix!r} is not a module (PEFT's modules_to_save takes modules);"
                                 " use --format merged") from None
        modules.append(module)
    return modules


def _peft_config(config, targets: list[str], modules_to_save: list[str], first: nn.Module):
    import peft

    # A regex of the exact names: PEFT would shorten a long name list to suffixes that are unique in *this* model
    # (e.g. `dense`), which then also match modules our backbone dropped (BERT's pooler) when loaded elsewhere.
    exact = "|".join(re.escape(name) for name in targets)
    common = dict(target_modules=f"({exact})", modules_to_save=modules_to_save or None)
    if config.name in ("lora", "loraplus"):
        return peft.LoraConfig(r=config.rank, lora_alpha=first.scale * config.rank, lora_dropout=config.dropout,
                               **common)
    if config.name == "vera":
        return peft.VeraConfig(r=config.rank, projection_prng_key=config.basis_seed, save_projection=True,
                               vera_dropout=config.dropout, d_initial=config.d_initial, **common)
    return peft.RandLoraConfig(r=config.rank, randlora_alpha=first.scale * config.rank, save_projection=True,
                               projection_prng_key=config.basis_seed, randlora_dropout=config.dropout,
                               sparse=config.basis == "sparse", very_sparse=config.basis == "very_sparse", **common)


def _fill_lora(tuner: nn.Module, targets: dict[str, nn.Module], peft_scale: float) -> None:
    for name, layer in targets.items():
        module = tuner.model.get_submodule(name)
        module.lora_A["default"].weight.copy_(layer.lora_A)
        module.lora_B["default"].weight.copy_(layer.lora_B * (layer.scale / peft_scale))
        if isinstance(module.get_base_layer(), nn.MultiheadAttention):  # PEFT adapts out_proj too: keep it at 0
            module.base_layer.out_proj.lora_B["default"].weight.zero_()


def _fill_vera(tuner: nn.Module, targets: dict[str, nn.Module]) -> None:
    first = next(iter(targets.values()))
    A, B = first.bases.A, first.bases.B
    peft_A, peft_B = tuner.vera_A["default"], tuner.vera_B["default"]
    new_A, new_B = torch.zeros_like(peft_A, dtype=torch.float32), torch.zeros_like(peft_B, dtype=torch.float32)
    new_A[:, : A.shape[1]] = A
    new_B[: B.shape[0]] = B
    tuner.vera_A["default"], tuner.vera_B["default"] = new_A, new_B
    for name, layer in targets.items():
        module = tuner.model.get_submodule(name)
        module.vera_lambda_b["default"].copy_(layer.vera_lambda_b * getattr(layer, "scale", 1.0))
        module.vera_lambda_d["default"].copy_(layer.vera_lambda_d)


def _fill_randlora(tuner: nn.Module, targets: dict[str, nn.Module], r: int, peft_scale: float) -> None:
    """See the module docstring; refuses when one shared PEFT basis cannot serve every layer's pairing."""
    peft_A, peft_B = tuner.randlora_A["default"], tuner.randlora_B["default"]  # (r, 1, m_p), (M_p, n_p, r)
    M_p = peft_B.shape[0]
    new_A = torch.zeros(peft_A.shape, dtype=torch.float32)
    flat_B = torch.zeros(M_p, peft_B.shape[1] * r, dtype=torch.float32)  # slot c = column c
    rows_filled = torch.zeros(flat_B.shape[1], dtype=torch.long)
    owner: dict[int, tuple[str, int]] = {}  # slot -> (layer, its n) that filled it
    for name, layer in targets.items():
        A, B = (t.detach().float().cpu() for t in layer.frozen_bases())
        m, M, n = layer.d_small, layer.d_large, layer.num_bases
        n_p = math.ceil(m / r)
        if n > n_p:
            raise NotExpressible(f"{name} has {n} RandLoRA bases, PEFT's RandLoRA has ⌈{m}/{r}⌉ = {n_p} "
                                 "(num_bases / num_bases_rule differ from PEFT's); use --format merged")
        new_A[:, 0, : A.shape[1]] = A
        ours = torch.tensor([j * r + k for j in range(n) for k in range(r)])
        slots = torch.tensor([k * n_p + j for j in range(n) for k in range(r)])
        known = torch.arange(M)[:, None] < rows_filled[slots][None, :]
        clash = ((flat_B[:M, slots] != B[:, ours]) & known).any(0)
        if clash.any():
            other, other_n = owner[int(slots[clash.nonzero()[0, 0]])]
            raise NotExpressible(
                f"PEFT's RandLoRA shares one basis layout across layers and pairs it with each layer's "
                f"n = ⌈min side / r⌉: {other} (n = {other_n}) and {name} (n = {n_p}) need different layouts; "
                "use --format merged")
        flat_B[:M, slots] = B[:, ours]
        rows_filled[slots] = torch.clamp(rows_filled[slots], min=M)
        owner.update({int(s): (name, n_p) for s in slots})
        module = tuner.model.get_submodule(name)
        lam = torch.zeros(r, n_p)
        lam[:, :n] = layer.randlora_lambda.detach().float().cpu().t() * (layer.scale / peft_scale)
        gam = torch.full((n_p, m), 1.0 / M)  # PEFT's initial γ for bases this layer does not use (λ = 0)
        gam[:n] = layer.randlora_gamma.detach().float().cpu()
        module.randlora_lambda["default"].copy_(lam)
        module.randlora_gamma["default"].copy_(gam)
    tuner.randlora_A["default"] = new_A
    tuner.randlora_B["default"] = flat_B.view(M_p, -1, r)
