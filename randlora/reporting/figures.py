"""Paper-style figures from a summary, one panel per task / backbone (and training set, regime) present.

``params``: metric vs trainable parameters (log x), LoRA and RandLoRA as lines over ranks (Figure 1);
``regime``: metric vs shots per class and data fraction, one line per adapter (Figure 3);
``memory``: peak training memory per adapter (bars); ``heatmap``: rank × LoRA+ lr_ratio, annotated cells.
Error bars are the std over seeds; where several configurations share a point (e.g. learning rates), the one
with the best validation metric is drawn (:func:`~randlora.reporting.summary.pick_best`). Any metric works:
error metrics (``test/rel_error``) are labelled "lower is better". Figures whose data is absent are skipped.
"""
from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path
from typing import Callable, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from randlora.reporting.summary import (average_over, best_per, lower_is_better, metric_label,  # noqa: E402
                                        metric_scale, norm_key)
from randlora.reporting.paper import REGIME_ORDER, network_label, regime_label  # noqa: E402
from randlora.reporting.tables import ADAPTER_LABELS  # noqa: E402

PANEL_KEYS = ["task", "subtask", "train_set", "regime", "backbone"]
STYLES = {"lora": ("tab:blue", "o"), "randlora": ("tab:red", "s"), "loraplus": ("tab:cyan", "v"),
          "vera": ("tab:green", "^"), "nola": ("tab:purple", "D"), "full": ("black", "*"),
          "randlora_sparse": ("tab:orange", "P"), "zero_shot": ("tab:gray", "x"),
          "none": ("tab:gray", "x")}  # (colour, marker)


ZERO_SHOT_ADAPTERS = ("none", "zero_shot")  # the untrained model: a floor line, not a point per regime


class SkipFigure(Exception):
    """The figure's data is absent; the message says what is missing."""


def _is_sparse(basis: str | None) -> bool:
    return norm_key(basis) not in (None, "dense")


def adapter_label(adapter: str, basis: str | None = None, rank: float | None = None) -> str:
    """``LoRA``, ``RandLoRA (sparse)``, ``LoRA r8``: the adapter, a non-dense basis, and the rank if given."""
    label = ADAPTER_LABELS.get(adapter, adapter) + (f" ({basis})" if _is_sparse(basis) else "")
    return label if norm_key(rank) is None else f"{label} r{int(rank)}"


def _style(adapter: str, basis: str | None = None) -> dict[str, str]:
    color, marker = STYLES.get("randlora_sparse" if adapter == "randlora" and _is_sparse(basis) else adapter,
                               ("tab:gray", "o"))
    return {"color": color, "marker": marker}


def _with_metric(summary: pd.DataFrame, metric: str, allow_empty: bool = False) -> pd.DataFrame:
    """The rows of ``summary`` that measured ``metric``; none raises SkipFigure unless ``allow_empty``."""
    column = f"{metric}:mean"
    if column not in summary.columns or not summary[column].notna().any():
        if allow_empty:
            return summary.iloc[0:0].assign(**{column: [], f"{metric}:std": []})
        raise SkipFigure(f"no completed run has metric {metric!r}")
    return summary[summary[column].notna()]


def paper_points(reference: pd.DataFrame | None, axis: str) -> pd.DataFrame | None:
    """The reference rows that are accuracy points on ``axis`` (``trainable_params`` or ``regime``), or None.

    Paper accuracies are in % (as plotted); ``trainable_params`` becomes a number.
    """
    if reference is None or axis not in reference.columns:
        return None
    rows = reference[(reference["metric"] == "acc") & (reference[axis].fillna("") != "")]
    if axis == "trainable_params":
        rows = rows.assign(trainable_params=pd.to_numeric(rows["trainable_params"]))
    return rows if len(rows) else None


def _for_panel(paper: pd.DataFrame | None, panel: pd.DataFrame, aliases: Mapping[str, str] | None) -> pd.DataFrame:
    """The paper's points for a panel: those of its backbone's network, or all when the reference has one network."""
    if paper is None:
        return pd.DataFrame(columns=["adapter", "value", "regime", "trainable_params"])
    if paper["network"].nunique() == 1:
        return paper
    networks = {network_label(b, aliases) for b in panel["backbone"].dropna()} if len(panel) else set()
    return paper[paper["network"].isin(networks)] if networks else paper[paper["network"] == paper["network"].iloc[0]]


def _over_datasets(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The average over datasets (Figures 1 and 3 show dataset averages) where runs name them."""
    if summary["dataset"].isna().all():
        return summary
    return average_over(summary, "dataset", [m for m in (metric, "trainable", "peak_memory_mb")
                                             if f"{m}:mean" in summary.columns])


def _panels(summary: pd.DataFrame, keys: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """``summary`` split by the values of ``keys``; each panel titled by its non-null values."""
    panels = []
    for values, panel in summary.groupby(keys, dropna=False, sort=True):
        title = " / ".join(regime_label(v) if k == "regime" else str(v)
                           for k, v in zip(keys, values) if norm_key(v) is not None)
        panels.append((title or "all runs", panel))
    return panels


def _figure(panels: list[tuple[str, pd.DataFrame]], draw: Callable[[plt.Axes, pd.DataFrame], None], title: str,
            size: tuple[float, float] = (5.0, 3.8)) -> plt.Figure:
    """A figure of ``panels`` laid out three per row, each drawn by ``draw``, under a wrapped ``title``."""
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, squeeze=False, figsize=(size[0] * columns, size[1] * rows))
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (panel_title, panel) in zip(axes.flat, panels):
        draw(ax, panel)
        ax.set_title(panel_title, fontsize=10)
    figure.suptitle(textwrap.fill(title, width=int(figure.get_figwidth() * 11)), fontsize=11)
    figure.tight_layout()
    return figure


def _compact(count: float, _position: int | None = None) -> str:
    """``500``, ``2k``, ``1.5M``: a parameter count as a short tick label."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if count >= size:
            return f"{count / size:g}{suffix}"
    return f"{count:g}"


def _count_ticks(axis: matplotlib.axis.Axis) -> None:
    """Log-scale ticks at 1, 2 and 5 per decade, labelled 500 / 1k / 2k, with no colliding minor labels."""
    axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=12))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(_compact))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def plot_params(summary: pd.DataFrame, metric: str, reference: pd.DataFrame | None = None,
                aliases: Mapping[str, str] | None = None) -> plt.Figure:
    """Figure 1 style: ``metric`` vs trainable parameters (log x); LoRA and RandLoRA as lines over ranks.

    With ``reference`` (``experiments/<name>/reference.csv``), the paper's points (rows with a
    ``trainable_params``) are drawn hollow and labelled "paper", ours filled and labelled "ours".
    """
    paper = paper_points(reference, "trainable_params")
    data = _over_datasets(_with_metric(summary, metric, allow_empty=paper is not None), metric)
    data, scale = data[data["trainable:mean"] > 0], metric_scale(metric)  # zero-shot (0 trainable) has no point
    if not len(data) and paper is None:
        raise SkipFigure("no completed run records its trainable parameter count")
    ours = " (ours)" if paper is not None else ""

    def draw(ax: plt.Axes, panel: pd.DataFrame) -> None:
        chosen = best_per(panel, ["adapter", "basis", "rank"], metric)
        for (adapter, basis), points in chosen.groupby(["adapter", "basis"], dropna=False, sort=True):
            points, is_line = points.sort_values("trainable:mean"), adapter in ("lora", "randlora")
            x, y = points["trainable:mean"], points[f"{metric}:mean"] * scale
            ax.errorbar(x, y, yerr=points[f"{metric}:std"].fillna(0) * scale,
                        label=adapter_label(adapter, basis) + ours,
                        linestyle="-" if is_line else "none", capsize=3, markersize=7 if is_line else 9,
                        **_style(adapter, basis))
            for rank, xy in zip(points["rank"], zip(x, y)):
                if is_line and norm_key(rank) is not None:
                    ax.annotate(f"r{int(rank)}", xy, textcoords="offset points", fontsize=7,  # LoRA above, others below
                                xytext=(5, 4) if adapter == "lora" else (5, -10),
                                color=_style(adapter, basis)["color"])
        for adapter, points in _for_panel(paper, panel, aliases).groupby("adapter", sort=True):
            points = points.sort_values("trainable_params")
            ax.plot(points["trainable_params"], points["value"], linestyle=":", markerfacecolor="none",
                    markersize=9, markeredgewidth=1.5, label=f"{ADAPTER_LABELS.get(adapter, adapter)} (paper)",
                    **_style(adapter))
        ax.set(xscale="log", xlabel="trainable parameters (log scale)", ylabel=metric_label(metric))
        _count_ticks(ax.xaxis)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)

    panels = _panels(data, PANEL_KEYS) if len(data) else [("paper only: no completed run", data)]
    return _figure(panels, draw, f"{metric_label(metric)} vs trainable parameters (mean ± std over seeds"
                   + ("; hollow: the paper's points" if paper is not None else "") + ")")


def plot_regime(summary: pd.DataFrame, metric: str, reference: pd.DataFrame | None = None,
                aliases: Mapping[str, str] | None = None) -> plt.Figure:
    """Figure 3 style: ``metric`` vs shots per class (1, 2, 4, 16) and data fraction (50%, 100%), per adapter.

    With ``reference``, the paper's points of the panel's network (rows with a ``regime``) are drawn hollow and
    labelled "paper", ours filled with error bars and labelled "ours"; zero-shot runs (no regime) are a floor line.
    """
    paper = paper_points(reference, "regime")
    data = _with_metric(summary, metric, allow_empty=paper is not None)
    floor = data[data["adapter"].isin(ZERO_SHOT_ADAPTERS)]
    data = data[data["regime"].notna() & ~data["adapter"].isin(ZERO_SHOT_ADAPTERS)]
    if data["regime"].nunique() < 2 and paper is None:
        raise SkipFigure("fewer than two few-shot regimes (task.shots / task.fraction) in the runs")
    data, scale = _over_datasets(data, metric), metric_scale(metric)
    floor = _over_datasets(floor, metric) if len(floor) else floor
    regimes = set(data["regime"]) | (set(paper["regime"]) if paper is not None else set())
    order = [r for r in REGIME_ORDER if r in regimes] + sorted(regimes - set(REGIME_ORDER))
    ours = " (ours)" if paper is not None else ""

    def draw(ax: plt.Axes, panel: pd.DataFrame) -> None:
        chosen = best_per(panel, ["adapter", "basis", "rank", "regime"], metric)
        for (adapter, basis, rank), line in chosen.groupby(["adapter", "basis", "rank"], dropna=False, sort=True):
            line = line.assign(x=line["regime"].map(order.index)).sort_values("x")
            ax.errorbar(line["x"], line[f"{metric}:mean"] * scale, yerr=line[f"{metric}:std"].fillna(0) * scale,
                        label=adapter_label(adapter, basis, rank) + ours, capsize=3, **_style(adapter, basis))
        for adapter, line in _for_panel(paper, panel, aliases).groupby("adapter", sort=True):
            line = line.assign(x=line["regime"].map(order.index)).sort_values("x")
            ax.plot(line["x"], line["value"], linestyle=":", markerfacecolor="none", markersize=9,
                    markeredgewidth=1.5, label=f"{ADAPTER_LABELS.get(adapter, adapter)} (paper)", **_style(adapter))
        backbones = set(panel["backbone"]) if len(panel) else set()
        for row in floor[floor["backbone"].isin(backbones)].to_dict("records") if len(floor) else []:
            ax.axhline(row[f"{metric}:mean"] * scale, color="tab:gray", linestyle="--", label="zero-shot" + ours)
        ax.set_xticks(range(len(order)), [regime_label(r) for r in order])
        ax.set(xlabel="training data: shots per class, or fraction of the training set", ylabel=metric_label(metric))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)

    panels = _panels(data, [k for k in PANEL_KEYS if k != "regime"]) if len(data) else [
        ("paper only: no completed run", data)]
    return _figure(panels, draw, f"{metric_label(metric)} vs training data (mean ± std over seeds"
                   + ("; hollow: the paper's points" if paper is not None else "") + ")")


# What result.json's peak_memory_mb measures (randlora.run.results.peak_memory_mb): the CUDA allocator's peak on
# a GPU run, the process's peak resident set size (RSS: weights, activations, data, Python) on a CPU run.
MEMORY_LABEL = "peak memory (MiB)"
MEMORY_MEASURE = "GPU runs: CUDA allocator peak; CPU runs: process peak RSS"


def plot_memory(summary: pd.DataFrame, metric: str) -> plt.Figure:
    """Bars of peak training memory per adapter and rank (the configuration shown for ``metric``, if any)."""
    if "peak_memory_mb:mean" not in summary.columns or not summary["peak_memory_mb:mean"].notna().any():
        raise SkipFigure("no completed run records peak_memory_mb")
    data = _over_datasets(summary[summary["peak_memory_mb:mean"].notna()], metric)  # largest over datasets

    def draw(ax: plt.Axes, panel: pd.DataFrame) -> None:
        has_metric = f"{metric}:mean" in panel.columns and panel[f"{metric}:mean"].notna().any()
        chosen = best_per(panel, ["adapter", "basis", "rank"], metric if has_metric else "peak_memory_mb")
        ax.bar(range(len(chosen)), chosen["peak_memory_mb:mean"], yerr=chosen["peak_memory_mb:std"].fillna(0),
               color=[_style(a, b)["color"] for a, b in zip(chosen["adapter"], chosen["basis"])], capsize=3)
        ax.set_xticks(range(len(chosen)), [adapter_label(*k) for k in zip(chosen["adapter"], chosen["basis"],
                                                                          chosen["rank"])], rotation=30, ha="right")
        ax.set_ylabel(MEMORY_LABEL)
        ax.grid(True, axis="y", alpha=0.3)

    return _figure(_panels(data, ["task", "backbone"]), draw,
                   "Peak training memory per adapter (mean ± std over seeds; " + MEMORY_MEASURE + ")")


def plot_heatmap(summary: pd.DataFrame, metric: str) -> plt.Figure:
    """``metric`` over LoRA/LoRA+ rank (rows) × lr_ratio (columns), cells annotated with mean ± std."""
    data = _with_metric(summary, metric)
    data = data[data["adapter"].isin(["lora", "loraplus"]) & data["lr_ratio"].notna() & data["rank"].notna()]
    if data["lr_ratio"].nunique() < 2 and data["rank"].nunique() < 2:
        raise SkipFigure("no LoRA+ sweep: need runs of lora/loraplus with at least two ranks or lr_ratio values")
    scale = metric_scale(metric)

    def draw(ax: plt.Axes, panel: pd.DataFrame) -> None:
        chosen = best_per(panel, ["rank", "lr_ratio"], metric)
        ranks, ratios = sorted(chosen["rank"].unique()), sorted(chosen["lr_ratio"].unique())
        mean = np.full((len(ranks), len(ratios)), np.nan)
        std = mean.copy()
        for row in chosen.to_dict("records"):
            at = ranks.index(row["rank"]), ratios.index(row["lr_ratio"])
            mean[at], std[at] = row[f"{metric}:mean"] * scale, row[f"{metric}:std"] * scale
        image = ax.imshow(mean, cmap="viridis_r" if lower_is_better(metric) else "viridis", aspect="auto")
        for i, j in np.ndindex(mean.shape):
            text = "—" if np.isnan(mean[i, j]) else f"{mean[i, j]:.3g}" + (
                "" if np.isnan(std[i, j]) else f"\n± {std[i, j]:.2g}")
            dark = not np.isnan(mean[i, j]) and np.dot(image.to_rgba(mean[i, j])[:3], [0.3, 0.59, 0.11]) < 0.5
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
        ax.set_xticks(range(len(ratios)), [f"{r:g}" for r in ratios])
        ax.set_yticks(range(len(ranks)), [f"{int(r)}" for r in ranks])
        ax.set(xlabel="LoRA+ lr_ratio (lr_B / lr_A)", ylabel="rank")
        ax.figure.colorbar(image, ax=ax, label=metric_label(metric))

    return _figure(_panels(data, PANEL_KEYS + ["dataset"]), draw,
                   f"{metric_label(metric)}: rank × LoRA+ lr_ratio (mean ± std over seeds)", size=(5.5, 4.2))


FIGURES = {  # name -> (drawing function, file name; {metric} is the metric as in test_acc)
    "params": (plot_params, "params_vs_{metric}"), "regime": (plot_regime, "{metric}_vs_regime"),
    "memory": (plot_memory, "peak_memory"), "heatmap": (plot_heatmap, "rank_lr_ratio_{metric}")}


WITH_PAPER_POINTS = ("params", "regime")  # the figures that draw a reference CSV's points beside ours


def make_figures(summary: pd.DataFrame, metric: str, out_dir: Path | str, which: list[str] | None = None,
                 formats: list[str] | None = None, reference: pd.DataFrame | None = None,
                 aliases: Mapping[str, str] | None = None) -> tuple[list[Path], dict[str, str]]:
    """Draw each figure of ``which`` (default all) into ``out_dir`` as each of ``formats`` (default PNG and PDF).

    ``reference`` (a paper CSV) adds the paper's points to the figures of ``WITH_PAPER_POINTS``; ``aliases``
    (backbone -> paper network) says which network a backbone stands for. Returns the written paths and
    ``{figure: reason}`` for the figures skipped for lack of data.
    """
    written, skipped = [], {}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for name in which or list(FIGURES):
        plot, file_name = FIGURES[name]
        try:
            figure = (plot(summary, metric, reference, aliases) if name in WITH_PAPER_POINTS and reference is not None
                      else plot(summary, metric))
        except SkipFigure as reason:
            skipped[name] = str(reason)
            continue
        stem = file_name.format(metric=re.sub(r"[^A-Za-z0-9]+", "_", metric).strip("_"))
        paths = [Path(out_dir) / f"{stem}.{fmt}" for fmt in formats or ["png", "pdf"]]
        for path in paths:
            figure.savefig(path, dpi=150)
        plt.close(figure)
        written += paths
    return written, skipped
