"""The loss landscape on the plane through three solutions: FT, RandLoRA and LoRA (the paper's figure).

The plane is the authors' (`vision_language/loss_barrier.py` of PaulAlbert31/RandLoRA). With the pretrained
weights θ0 and each run's full weights θ_R (RandLoRA), θ_F (FT), θ_L (LoRA) — every parameter, the head
included, adapters merged — and Δ_i = θ_i − θ0, the point (x, y) of the plane is

    θ(x, y) = θ0 + a Δ_R + b Δ_F + c Δ_L,   a = 1 − s·y − x,  b = y,  c = x − s·y,  s = 0.5,

so a + b + c = 1 and θ(x, y) = a θ_R + b θ_F + c θ_L (computed in that form: exact at the three runs). RandLoRA
sits at (0, 0), LoRA at (1, 0) and FT at (0.5, 1). The grid is x ∈ [−1, 1.5), y ∈ [−0.5, 2) with step 0.1
(the authors' `np.arange(-1, 1.5, 0.1)` and `np.arange(-.5, 2, 0.1)`, 25 × 25 points), here x = x0 + i·step
(rounded, so the three runs' points are grid points whenever the step divides 0.5). The loss is the training
loss (cross-entropy, or MSE for the synthetic task) on a subset of the training split, as the authors computed
it (their `train_loader` with `--data-ratio 0.01`). Their figures clip the loss at 1.2 × the largest of the three
runs' losses; the contour plot here does the same (the CSV keeps the raw values). Non-float tensors (e.g.
position ids) are taken from θ0.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .evaluate import Examples, evaluate
from .output import progress, save_figure, write_table
from .runs import LoadedRun, build_plain_backbone

SHEAR = 0.5
POSITIONS = {"randlora": (0.0, 0.0), "full": (0.5, 1.0), "lora": (1.0, 0.0)}  # role -> (x, y)


def coefficients(x: float, y: float, shear: float = SHEAR) -> tuple[float, float, float]:
    """(a, b, c): the weights of RandLoRA, FT and LoRA at the plane's point (x, y)."""
    return 1 - shear * y - x, y, x - shear * y


def grid(start: float, stop: float, step: float) -> list[float]:
    """start, start + step, … below stop (like np.arange, but each value rounded: 0.5 is exactly 0.5)."""
    if step <= 0 or stop <= start:
        raise ValueError(f"grid [{start}, {stop}) with step {step} is invalid: need start < stop and step > 0")
    count = math.ceil((stop - start) / step - 1e-9)
    return [round(start + i * step, 10) for i in range(count)]


def assign_roles(runs: list[LoadedRun]) -> dict[str, LoadedRun]:
    """{"full", "randlora", "lora"} -> run: FT, then the RandLoRA run, then the other (LoRA) run."""
    if len(runs) != 3 or sum(r.is_full for r in runs) != 1:
        raise ValueError(f"landscape needs exactly three runs, one of them full fine-tuning (adapter=full); "
                         f"got {[r.label for r in runs]}")
    full = next(r for r in runs if r.is_full)
    others = [r for r in runs if r is not full]
    if others[1].method == "randlora" and others[0].method != "randlora":
        others.reverse()
    return {"full": full, "randlora": others[0], "lora": others[1]}


def plane_state(states: dict[str, dict[str, torch.Tensor]], base: dict[str, torch.Tensor], x: float,
                y: float) -> dict[str, torch.Tensor]:
    """θ(x, y) = a θ_R + b θ_F + c θ_L for float tensors (θ0's tensor otherwise)."""
    a, b, c = coefficients(x, y)
    combined = {}
    for name, value in base.items():
        if value.is_floating_point():
            combined[name] = a * states["randlora"][name] + b * states["full"][name] + c * states["lora"][name]
        else:
            combined[name] = value
    return combined


@torch.no_grad()
def landscape_table(runs: list[LoadedRun], examples: Examples, xs: list[float], ys: list[float]) -> pd.DataFrame:
    """Loss and metric at every (x, y) of the grid, with the coefficients and which run a point stands for."""
    roles = assign_roles(runs)
    states = {role: {k: v.detach().clone() for k, v in run.model.state_dict().items()} for role, run in roles.items()}
    model = build_plain_backbone(roles["full"].cfg)
    model.eval()
    base = {k: v.detach().clone() for k, v in model.state_dict().items()}
    at_point = {position: roles[role].label for role, position in POSITIONS.items()}
    rows = []
    for i, x in enumerate(xs, 1):
        for y in ys:
            model.load_state_dict(plane_state(states, base, x, y), strict=True)
            a, b, c = coefficients(x, y)
            rows.append({"x": x, "y": y, "a_randlora": a, "b_ft": b, "c_lora": c,
                         **evaluate(model, examples), "run_at_point": at_point.get((x, y), "")})
        progress(f"landscape: row x={x:+.2f} done ({i}/{len(xs)}, {len(ys)} points each)")
    return pd.DataFrame(rows)


def plot_landscape(table: pd.DataFrame, title: str) -> tuple[plt.Figure, plt.Figure]:
    """(contour plot with the three runs marked, 3-D surface); loss clipped at 1.2 × the runs' largest."""
    xs, ys = sorted(table.x.unique()), sorted(table.y.unique())
    loss = table.pivot(index="y", columns="x", values="loss").loc[ys, xs].to_numpy()
    marked = table[table.run_at_point != ""]
    top = 1.2 * marked["loss"].max() if len(marked) else np.nanmax(loss)
    clipped = np.minimum(loss, top)
    grid_x, grid_y = np.meshgrid(xs, ys)
    contour, ax = plt.subplots(figsize=(7.5, 6.5))
    filled = ax.contourf(grid_x, grid_y, clipped, levels=20, cmap="viridis")
    ax.contour(grid_x, grid_y, clipped, levels=10, colors="white", linewidths=0.5)
    contour.colorbar(filled, ax=ax, label=f"training loss (clipped at {top:.3g})")
    for _, row in marked.iterrows():
        ax.plot(row.x, row.y, marker="o", color="red", markersize=7)
        right_half = row.x > (xs[0] + xs[-1]) / 2
        ax.annotate(f"{row.run_at_point}\nloss {row.loss:.3g}", (row.x, row.y), textcoords="offset points",
                    xytext=(-6 if right_half else 6, 6), ha="right" if right_half else "left", color="white",
                    fontsize=9, fontweight="bold")
    ax.set(xlabel="x  (RandLoRA at x=0, LoRA at x=1)", ylabel="y  (FT at y=1)", title=title)
    surface = plt.figure(figsize=(8, 6.5))
    ax3 = surface.add_subplot(projection="3d")
    ax3.plot_surface(grid_x, grid_y, clipped, cmap="viridis", linewidth=0, antialiased=True, alpha=0.9)
    for _, row in marked.iterrows():
        ax3.scatter([row.x], [row.y], [min(row.loss, top)], color="red", s=30)
        ax3.text(row.x, row.y, min(row.loss, top), f" {row.run_at_point}", fontsize=9)
    ax3.set(xlabel="x", ylabel="y", zlabel="training loss", title=title)
    return contour, surface


def landscape(runs: list[LoadedRun], examples: Examples, out_dir: Path, step: float = 0.1,
              x_range: tuple[float, float] = (-1.0, 1.5), y_range: tuple[float, float] = (-0.5, 2.0),
              name: str | None = None, formats: tuple[str, ...] = ("png", "pdf")) -> pd.DataFrame:
    """The whole analysis: `<name>.csv`, `<name>_contour` and `<name>_surface` figures under `out_dir`."""
    roles = assign_roles(runs)
    xs, ys = grid(*x_range, step), grid(*y_range, step)
    progress(f"landscape: {len(xs)} x {len(ys)} grid, {examples.n} {examples.split} examples per point")
    table = landscape_table(runs, examples, xs, ys)
    table.insert(0, "split", examples.split)
    table.insert(1, "examples", examples.n)
    name = name or "landscape_" + "_".join(roles[r].label.replace(" ", "") for r in ("randlora", "lora"))
    write_table(table, out_dir, name)
    title = (f"Loss on the plane through {roles['randlora'].label}, {roles['full'].label}, {roles['lora'].label}\n"
             f"({examples.n} {examples.split} examples, step {step})")
    contour, surface = plot_landscape(table, title)
    save_figure(contour, out_dir, f"{name}_contour", formats)
    save_figure(surface, out_dir, f"{name}_surface", formats)
    return table

