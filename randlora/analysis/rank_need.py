"""How much rank does a task need? Read off the full fine-tuning (FT) run's weight updates.

For every adapted layer of the FT run, ΔW = W_ft − W0:
1. its singular values (`spectra.csv`) and effective ranks (`effective_ranks.csv`): the energy ranks holding
   90 % and 99 % of ‖ΔW‖²_F and the entropy effective rank (definitions in :mod:`randlora.analysis.spectra`);
2. the task metric when every ΔW is replaced by its best rank-k approximation, for k on a grid 0, 1, 2, 4, … up
   to full rank (`truncation.csv`); everything else (biases, norms, head) keeps its FT value. If the metric at
   k = LoRA's rank is already FT's, the task does not need rank; if it collapses there, LoRA's gap is
   rank-caused.
For every other run (LoRA: ΔW of rank ≤ r; RandLoRA: full rank) the same spectra and ranks, its own metric on the
same examples (on the whole test split it must be the one the run recorded: `evaluate.check_record`), and the overlap of its top subspace with FT's: per layer, k = the run's own 90 %-energy rank and
overlap = ‖U_ft,kᵀ U_run,k‖²_F / k (left/output side; right/input side likewise), against k / d for chance.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import pandas as pd

from .evaluate import Examples, check_record, evaluate
from .output import METRIC_LABELS, progress, save_figure, style, write_table
from .runs import LoadedRun
from .spectra import energy_rank, entropy_rank, rank_grid, singular_values, subspace_overlap, truncate
from .weights import set_delta_weights


def spectra_tables(runs: list[LoadedRun]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(singular values, effective ranks and overlaps) of every run's ΔW per layer; runs[0] is FT."""
    reference = runs[0]
    spectra, ranks = [], []
    for run in runs:
        for position, (layer, delta) in enumerate(run.deltas.items()):
            s = singular_values(delta)
            energy = s.pow(2)
            cumulative = (energy.cumsum(0) / energy.sum()).tolist() if energy.sum() > 0 else [0.0] * len(s)
            spectra += [{"run": run.label, "layer": layer, "index": i + 1, "singular_value": v,
                         "cumulative_energy": c} for i, (v, c) in enumerate(zip(s.tolist(), cumulative))]
            row = {"run": run.label, "method": run.method, "layer_index": position, "layer": layer,
                   "d_out": delta.shape[0], "d_in": delta.shape[1], "max_rank": min(delta.shape),
                   "frobenius_norm": delta.double().norm().item(), "rank_90": energy_rank(s, 0.9),
                   "rank_99": energy_rank(s, 0.99), "entropy_rank": entropy_rank(s)}
            if run is not reference and row["rank_90"] > 0:
                k = row["rank_90"]
                left, right = subspace_overlap(reference.deltas[layer], delta, k)
                row.update(overlap_k=k, overlap_left=left, overlap_right=right,
                           chance_left=k / delta.shape[0], chance_right=k / delta.shape[1])
            ranks.append(row)
    return pd.DataFrame(spectra), pd.DataFrame(ranks)


def truncation_table(runs: list[LoadedRun], examples: Examples, ks: list[int] | None = None) -> pd.DataFrame:
    """FT's metric with every ΔW truncated to rank k (k on `ks`, default `rank_grid`), and each run's own."""
    full = runs[0]
    max_rank = max(min(d.shape) for d in full.deltas.values())
    ks = rank_grid(max_rank) if ks is None else sorted(set(ks))
    rows = []
    try:
        for step, k in enumerate(ks, 1):
            set_delta_weights(full.model, full.initial, {n: truncate(d, k) for n, d in full.deltas.items()})
            scores = evaluate(full.model, examples)
            rows.append({"run": f"{full.label} truncated", "method": "full", "k": k, **scores})
            progress(f"rank-need: FT truncated to rank {k} ({step}/{len(ks)}): {_describe(scores)}")
    finally:
        set_delta_weights(full.model, full.initial, full.deltas)
    for run in runs:
        scores = evaluate(run.model, examples)
        check_record(run, examples, scores)  # on the whole test split: the scores it recorded
        rows.append({"run": run.label, "method": run.method, "k": None, **scores})
        progress(f"rank-need: {run.label} as trained: {_describe(scores)}")
    return pd.DataFrame(rows)


def _describe(scores: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in scores.items())


def plot_rank_need(ranks: pd.DataFrame, spectra: pd.DataFrame, truncation: pd.DataFrame, metric: str,
                   title: str) -> plt.Figure:
    """Three panels: FT's cumulative spectrum per layer; effective ranks per layer and run; metric vs k."""
    figure, (ax_spec, ax_rank, ax_trunc) = plt.subplots(1, 3, figsize=(17, 4.8))
    reference = ranks.iloc[0]["run"]
    ft = spectra[spectra.run == reference]
    for layer, rows in ft.groupby("layer", sort=False):
        ax_spec.plot(rows["index"], rows["cumulative_energy"], color="black", alpha=0.25, linewidth=0.8)
    for fraction in (0.9, 0.99):
        ax_spec.axhline(fraction, color="tab:gray", linestyle=":", linewidth=1)
    ax_spec.set(xscale="log", xlabel="number of singular directions k", ylim=(0, 1.02),
                ylabel="fraction of ‖ΔW‖²_F in the top k", title=f"{reference}: ΔW spectrum, one line per layer")
    seen: dict[str, int] = {}
    for run, rows in ranks.groupby("run", sort=False):
        method = rows["method"].iloc[0]
        kw = style(method, seen.get(method, 0))
        seen[method] = seen.get(method, 0) + 1
        ax_rank.plot(rows["layer_index"], rows["rank_90"], label=f"{run}", markersize=4, zorder=3 if method == "full" else 2,
                     **kw)
    ax_rank.set(yscale="log", xlabel="adapted layer (model order)", ylabel="rank holding 90 % of ‖ΔW‖²_F",
                title="Effective rank of ΔW per layer")
    ax_rank.legend(fontsize=8)
    truncated = truncation[truncation.k.notna()]
    ks = truncated.k.astype(int)
    positions = ks.where(ks > 0, 0.5)  # k = 0 (W0 only) drawn at 0.5 on the log axis
    ax_trunc.plot(positions, truncated[metric], color="black", marker="*", label=f"{reference}, ΔW truncated to rank k")
    seen = {}
    for _, row in truncation[truncation.k.isna()].iterrows():
        kw = style(row["method"], seen.get(row["method"], 0))
        seen[row["method"]] = seen.get(row["method"], 0) + 1
        ax_trunc.axhline(row[metric], color=kw["color"], linestyle=kw["linestyle"], linewidth=1,
                         label=f"{row['run']} (as trained)")
    ax_trunc.set(xscale="log", xlabel="rank k of every ΔW (0 drawn at 0.5: W0 with FT's other weights)",
                 ylabel=METRIC_LABELS.get(metric, metric), title="Task metric vs the rank FT's update keeps")
    ax_trunc.legend(fontsize=8)
    for axis in (ax_spec.xaxis, ax_trunc.xaxis, ax_rank.yaxis):  # 1, 10, 100 rather than 10^0, 10^1, 10^2
        axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_formatter(ticker.NullFormatter())
    ax_rank.yaxis.set_major_locator(ticker.LogLocator(base=2))  # 1, 2, 4, 8, ...
    ax_rank.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def rank_need(runs: list[LoadedRun], examples: Examples, out_dir: Path, ks: list[int] | None = None,
              formats: tuple[str, ...] = ("png", "pdf")) -> dict[str, pd.DataFrame]:
    """The whole analysis: three CSVs and one figure under `out_dir`; returns the tables."""
    if not runs or not runs[0].is_full:
        raise ValueError("rank-need needs a full fine-tuning run (adapter=full) among the run folders")
    spectra, ranks = spectra_tables(runs)
    truncation = truncation_table(runs, examples, ks)
    truncation.insert(0, "split", examples.split)
    truncation.insert(1, "examples", examples.n)
    for frame, name in ((spectra, "spectra"), (ranks, "effective_ranks"), (truncation, "truncation")):
        write_table(frame, out_dir, name)
    title = (f"How much rank does the task need? {runs[0].cfg.backbone.name} / {_task_name(runs[0])} "
             f"({examples.split} split, {examples.n} examples)")
    save_figure(plot_rank_need(ranks, spectra, truncation, examples.metric, title), out_dir, "rank_need", formats)
    return {"spectra": spectra, "effective_ranks": ranks, "truncation": truncation}


def _task_name(run: LoadedRun) -> str:
    subtask = run.result.get("subtask")
    return f"{run.cfg.task.name}" + (f" ({subtask})" if subtask else "")
