"""Activation similarity to full fine-tuning: layer-wise linear CKA (Kornblith et al., 2019).

For n examples, X ∈ R^{n×p} (one run's activations at a layer) and Y ∈ R^{n×q} (FT's at the same layer):

    K = X Xᵀ,  L = Y Yᵀ,  H = I − 11ᵀ/n,  K_c = H K H,  L_c = H L H,
    CKA(X, Y) = ⟨K_c, L_c⟩_F / (‖K_c‖_F ‖L_c‖_F)          (in [0, 1]; computed in float64)

which equals ‖Y_cᵀ X_c‖²_F / (‖X_cᵀ X_c‖_F ‖Y_cᵀ Y_c‖_F) for column-centred X_c, Y_c. It is 1 for X = Y and
unchanged by an orthogonal transform or an isotropic scaling of either side.

Activations are the outputs of the adapted layers, in model order (`--layers REGEX` picks other modules by
name), then the model's output. A token sequence is one example: its activations are averaged over its tokens
(over the tokens the attention mask keeps, for text). Every run sees the same held-out inputs; the pretrained
model (W0 with FT's head) is drawn as a reference for how far fine-tuning moved each layer.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import torch
from torch import nn

from .evaluate import Examples
from .output import progress, save_figure, style, write_table
from .runs import LoadedRun
from .weights import adapted_layer_names, set_delta_weights

OUTPUT = "model output"


def centred_gram(x: torch.Tensor) -> torch.Tensor:
    """H X Xᵀ H for X (n × p), in float64."""
    x = x.double().reshape(x.shape[0], -1)
    gram = x @ x.t()
    mean_rows = gram.mean(0, keepdim=True)
    return gram - mean_rows - mean_rows.t() + gram.mean()


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representations of the same n examples (rows); see the module docstring."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA compares the same examples: got {x.shape[0]} and {y.shape[0]} rows")
    k, l_ = centred_gram(x), centred_gram(y)
    denominator = (k.norm() * l_.norm()).item()
    if denominator == 0:
        raise ValueError("CKA is undefined for a constant representation (zero centred Gram matrix)")
    return (k * l_).sum().item() / denominator


def _pool(output: Any, batch_size: int, mask: torch.Tensor | None) -> torch.Tensor:
    """One row per example: token dimensions averaged (masked where a mask of matching shape is known)."""
    if isinstance(output, (tuple, list)):
        output = output[0]
    output = output.detach().float()
    if output.dim() == 2:
        return output
    if output.dim() == 3 and output.shape[0] != batch_size and output.shape[1] == batch_size:
        output = output.transpose(0, 1)  # (tokens, batch, features), e.g. nn.MultiheadAttention
    if output.dim() == 3 and mask is not None and tuple(mask.shape) == tuple(output.shape[:2]):
        weights = mask.to(output.dtype).unsqueeze(-1)
        return (output * weights).sum(1) / weights.sum(1).clamp_min(1)
    return output.reshape(batch_size, -1, output.shape[-1]).mean(1)


@torch.no_grad()
def activations(model: nn.Module, examples: Examples, layers: list[str]) -> dict[str, torch.Tensor]:
    """layer name -> (n, features) pooled outputs of `model` on `examples`, plus OUTPUT (the model's output)."""
    model.eval()
    collected: dict[str, list[torch.Tensor]] = {name: [] for name in [*layers, OUTPUT]}
    current: dict[str, Any] = {}

    def hook(name: str):
        def record(module: nn.Module, inputs: Any, output: Any) -> None:
            collected[name].append(_pool(output, current["batch"], current["mask"]))
        return record

    handles = [model.get_submodule(name).register_forward_hook(hook(name)) for name in layers]
    try:
        for inputs, _ in examples.batches:
            mask = inputs.get("attention_mask") if isinstance(inputs, dict) else None
            first = next(iter(inputs.values())) if isinstance(inputs, dict) else inputs
            current.update(batch=first.shape[0], mask=mask)
            collected[OUTPUT].append(_pool(model(inputs), first.shape[0], None))
    finally:
        for handle in handles:
            handle.remove()
    return {name: torch.cat(rows) for name, rows in collected.items()}


def layer_names(model: nn.Module, pattern: str | None) -> list[str]:
    """The adapted layers, or every module whose qualified name fully matches `pattern`, in model order."""
    if pattern is None:
        return adapted_layer_names(model)
    names = [name for name, _ in model.named_modules() if name and re.fullmatch(pattern, name)]
    if not names:
        raise ValueError(f"--layers {pattern!r} matches no module name (e.g. {adapted_layer_names(model)[:2]})")
    return names


def pretrained_model(full: LoadedRun) -> nn.Module:
    """FT's model with every ΔW set to zero: the pretrained weights in the adapted layers."""
    model = copy.deepcopy(full.model)
    set_delta_weights(model, full.initial, {n: torch.zeros_like(d) for n, d in full.deltas.items()})
    return model


def cka_table(runs: list[LoadedRun], examples: Examples, pattern: str | None = None) -> pd.DataFrame:
    """CKA at every layer between each run (and the pretrained model) and FT (runs[0])."""
    full = runs[0]
    layers = layer_names(full.model, pattern)
    progress(f"cka: activations of {full.label} at {len(layers)} layers on {examples.n} examples")
    reference = activations(full.model, examples, layers)
    compared = [(run.label, run.method, run.model) for run in runs[1:]]
    compared.append(("pretrained (W0)", "pretrained", pretrained_model(full)))
    rows = []
    for step, (label, method, model) in enumerate(compared, 1):
        acts = activations(model, examples, layers)
        progress(f"cka: {label} ({step}/{len(compared)})")
        for index, name in enumerate([*layers, OUTPUT]):
            rows.append({"run": label, "method": method, "layer_index": index, "layer": name,
                         "cka_with_ft": linear_cka(acts[name], reference[name])})
    return pd.DataFrame(rows)


def plot_cka(table: pd.DataFrame, title: str) -> plt.Figure:
    """One curve per run across depth: CKA with FT's activations at each layer."""
    layers = table.drop_duplicates("layer_index").sort_values("layer_index")
    figure, ax = plt.subplots(figsize=(max(7.0, 0.22 * len(layers) + 3), 4.8))
    seen: dict[str, int] = {}
    for run, rows in table.groupby("run", sort=False):
        method = rows["method"].iloc[0]
        kw = style(method, seen.get(method, 0))
        seen[method] = seen.get(method, 0) + 1
        ax.plot(rows["layer_index"], rows["cka_with_ft"], label=run, markersize=4, **kw)
    ax.set_xticks(layers["layer_index"], [_short(n) for n in layers["layer"]], rotation=90, fontsize=7)
    ax.set(xlabel="layer (model order)", ylabel="linear CKA with FT's activations", title=title)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _short(name: str) -> str:
    """`encoder.layer.3.attention.self.query` -> `3.attention.self.query`: the name from the block index on."""
    parts = name.split(".")
    last_number = max((i for i, p in enumerate(parts[:-1]) if p.isdigit()), default=None)
    return name if last_number is None else ".".join(parts[last_number:])


def cka(runs: list[LoadedRun], examples: Examples, out_dir: Path, pattern: str | None = None,
        formats: tuple[str, ...] = ("png", "pdf")) -> pd.DataFrame:
    """The whole analysis: `cka.csv` and `cka.png/pdf` under `out_dir`; returns the table."""
    if not runs or not runs[0].is_full or len(runs) < 2:
        raise ValueError("cka needs a full fine-tuning run (adapter=full) and at least one other run")
    table = cka_table(runs, examples, pattern)
    table.insert(0, "split", examples.split)
    table.insert(1, "examples", examples.n)
    write_table(table, out_dir, "cka")
    title = f"Activation similarity to FT ({examples.split} split, {examples.n} examples)"
    save_figure(plot_cka(table, title), out_dir, "cka", formats)
    return table
