"""The paper's Table 1 and Figure 3 with our numbers beside the paper's (``experiments/<name>/reference.csv``).

Our runs are matched to the paper's cells by network (:func:`network_label`), training set
(:func:`train_set_label`), adapter, Table 1 budget (:func:`table1_budget`) and Figure 3 regime. The paper reports
dense bases; sparse-basis RandLoRA runs get their own rows (no paper number). Where several configurations share a cell,
:func:`~randlora.reporting.summary.pick_best` chooses by the validation metric and a footnote says so; failed
runs and unreadable result files that belong to a table are counted in its footnotes.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from randlora.reporting.summary import average_over, metric_scale, norm_key, pick_best, select_rows
from randlora.reporting.tables import ADAPTER_LABELS, MISSING_CELL, Table, format_cell

REGIME_ORDER = ["1", "2", "4", "16", "50%", "100%"]
NETWORK_PATTERNS = [  # (regex on the lower-cased backbone name without non-alphanumerics, paper label)
    (r"dino.*(b14|base)|(b14|base).*dino", "DINOv2 ViT-B/14"),
    (r"dino.*(l14|large)|(l14|large).*dino", "DINOv2 ViT-L/14"),
    (r"^(open)?(clip)?vitb32|clip.*b32", "ViT-B/32"),
    (r"^(open)?(clip)?vitl14|clip.*l14", "ViT-L/14"),
    (r"^(open)?(clip)?vith14|clip.*h14", "ViT-H/14"),
    (r"qwen2.*05b|qwen205", "Qwen2-0.5B"),
    (r"phi3", "Phi3-3B"),
    (r"llama38b|llama3.*8b", "LLaMA3-8B"),
]
TABLE1_COLUMNS = [  # (header, adapter names in our runs, budget)
    ("zero-shot", ("zero_shot", "zeroshot", "none"), None), ("NoLA", ("nola",), None), ("VeRA", ("vera",), None),
    ("LoRA eff", ("lora",), "efficient"), ("LoRA perf", ("lora",), "performant"),
    ("RandLoRA eff", ("randlora",), "efficient"), ("RandLoRA perf", ("randlora",), "performant")]
TABLE1_BUDGET_PARAMS = {"efficient": 28e6, "performant": 57e6}  # LLaMA3-8B trainable parameters, PAPER.md §4
TABLE1_BUDGET_RANKS = {("lora", 16): "efficient", ("lora", 32): "performant",
                       ("randlora", 60): "efficient", ("randlora", 30): "performant"}
FIG3_ADAPTERS = ["randlora", "nola", "vera", "lora", "full"]
FIG3_NETWORKS = ["ViT-B/32", "ViT-L/14", "ViT-H/14"]


def network_label(backbone: str | None, aliases: Mapping[str, str] | None = None) -> str | None:
    """The paper's name of a backbone (``clip_vit_b32`` -> ``ViT-B/32``): ``aliases`` (backbone -> label) first,
    then ``NETWORK_PATTERNS``; unknown names pass through."""
    if norm_key(backbone) is None:
        return None
    if aliases and backbone in aliases:
        return aliases[backbone]
    compact = re.sub(r"[^a-z0-9]", "", backbone.lower())
    return next((label for pattern, label in NETWORK_PATTERNS if re.search(pattern, compact)), backbone)


def train_set_label(train_set: str | None) -> str | None:
    """``commonsense_170k`` / ``170k`` / ``data/commonsense_170k.json`` -> ``170k``; empty or null -> None."""
    if not norm_key(train_set):
        return None
    found = re.findall(r"(\d+k)", train_set.lower())
    return found[-1] if found else train_set


def regime_label(regime: str) -> str:
    """``"16"`` -> ``"16-shot"``; fractions such as ``"50%"`` unchanged."""
    return regime if regime.endswith("%") else f"{regime}-shot"


def table1_budget(adapter: str | None, rank: Any, budget: Any) -> str | None:
    """The Table 1 budget of a run: ``efficient`` (≈ 28M trainable on LLaMA3-8B), ``performant`` (≈ 57M) or None.

    First match wins: ``budget`` given as one of those words; a numeric ``budget`` (trainable-parameter target)
    within 25% of 28M or 57M; else the paper's rank pairings (LoRA 16 / 32, RandLoRA 60 / 30).
    """
    budget = norm_key(budget)
    if isinstance(budget, str) and budget.lower() in TABLE1_BUDGET_PARAMS:
        return budget.lower()
    try:
        target = float(budget)
    except (TypeError, ValueError):  # no budget, or neither a budget word nor a number
        return TABLE1_BUDGET_RANKS.get((adapter, norm_key(rank)))
    return next((label for label, params in TABLE1_BUDGET_PARAMS.items() if abs(target - params) <= 0.25 * params),
                None)


def read_reference(path: Path | str) -> pd.DataFrame:
    """The paper's numbers, one per row (``experiments/<name>/reference.csv``), ``value`` as float."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ["network", "adapter", "metric", "value", "unit"] if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: reference CSV lacks columns {missing}")
    return frame.assign(value=pd.to_numeric(frame["value"], errors="raise"))


class _Cells:
    """Fills a paper table's cells from our configurations, collecting the footnotes as it goes."""

    def __init__(self, metric: str, reference: pd.DataFrame):
        self.metric, self.reference, self.notes, self.failed = metric, reference, [], []

    def paper(self, **match: Any) -> float | None:
        """The paper's value in the reference row matching ``match``, if there is one."""
        rows = select_rows(self.reference, **match)
        return float(rows["value"].iloc[0]) if len(rows) else None

    def cell(self, label: str, ours: pd.DataFrame, paper: float | None, n_failed: int) -> str:
        """The best of ``ours`` beside ``paper``; notes a choice between configurations and failed runs."""
        best, note = pick_best(ours, self.metric)
        self.notes += [f"{label}: {note}."] if note else []
        self.failed.append((label, n_failed))
        if best is None:
            return format_cell(None, paper=paper)
        scale = metric_scale(self.metric)
        return format_cell(best[f"{self.metric}:mean"] * scale, best[f"{self.metric}:std"] * scale, int(best["n"]),
                           paper)

    def footnotes(self, runs: pd.DataFrame | None, belongs: Callable[[dict], bool]) -> list[str]:
        """The notes, the failed runs per cell, and the unreadable or incomplete runs that ``belongs`` here."""
        notes = list(self.notes)
        if total := sum(n for _, n in self.failed):
            per_cell = "; ".join(f"{label}: {n}" for label, n in self.failed if n)
            notes.append(f"Failed runs, not averaged in: {total} ({per_cell}).")
        bad = [] if runs is None else runs[runs["status"].isin(["corrupt", "incomplete"])].to_dict("records")
        if n_bad := sum(bool(belongs(r)) for r in bad):
            notes.append(f"Unreadable or incomplete result files ignored: {n_bad} (listed by scripts/aggregate.py).")
        return notes


def _labelled(summary: pd.DataFrame, aliases: Mapping[str, str] | None) -> pd.DataFrame:
    """``summary`` with the paper's ``network`` and ``train_label``, and ``sparse``: the basis of a RandLoRA run
    with non-dense bases (``sparse``, ``very_sparse``), else None (the paper's dense cells)."""
    basis = summary["basis"].map(norm_key)
    sparse = [b if a == "randlora" and b not in (None, "dense") else None for a, b in zip(summary["adapter"], basis)]
    return summary.assign(network=[network_label(b, aliases) for b in summary["backbone"]],
                          train_label=summary["train_set"].map(train_set_label), sparse=pd.Series(
                              sparse, index=summary.index, dtype=object))


def table1_commonsense(summary: pd.DataFrame, reference: pd.DataFrame, runs: pd.DataFrame | None = None,
                       metric: str = "test/acc", aliases: Mapping[str, str] | None = None) -> Table:
    """Table 1: average accuracy over the 8 commonsense tasks; rows network × training set, columns adapters.

    Ours: configurations of a ``commonsense`` task without subtask (zero-shot, NoLA and VeRA ignore budget; a
    zero-shot run, ``adapter=none``, trained on nothing and fills its network's zero-shot cell in every row).
    ``runs`` (the runs table) adds the count of unreadable result files of commonsense runs.
    """
    ours = _labelled(summary, aliases)
    ours = ours[ours["task"].fillna("").str.contains("commonsense") & ours["subtask"].isna()]
    ours = ours.assign(budget_label=[table1_budget(*k) for k in zip(ours["adapter"], ours["rank"], ours["budget"])])
    ref = reference[reference["metric"] == "avg_acc"]
    cells = _Cells(metric, ref.assign(train_label=ref["train_set"].map(train_set_label)))
    row_keys = dict.fromkeys(zip(cells.reference["network"], cells.reference["train_label"].map(norm_key)))
    row_keys.update(dict.fromkeys(zip(ours["network"].map(norm_key), ours["train_label"].map(norm_key))))
    sparse, ours = ours[ours["sparse"].notna()], ours[ours["sparse"].isna()]
    rows = []
    for network, train in row_keys:
        here = select_rows(ours, network=network, train_label=train)
        untrained = select_rows(ours, network=network)  # zero-shot saw no training set: it fills every row
        rows.append([network, train or MISSING_CELL])
        for header, adapters, budget in TABLE1_COLUMNS:
            mine = (untrained if adapters[0] == "zero_shot" else here)
            mine = mine[mine["adapter"].isin(adapters)]
            mine = mine[mine["budget_label"] == budget] if budget else mine
            paper = cells.paper(network=network, train_label=train, adapter=adapters[0], budget=budget or "")
            rows[-1].append(cells.cell(f"{network} {train} {header}", mine, paper, int(mine["n_failed"].sum())))
        rows += _table1_sparse_rows(cells, select_rows(sparse, network=network, train_label=train), network, train)
    notes = [f"Ours: mean ± std over seeds of {metric} ({'%' if metric_scale(metric) == 100 else 'raw'}); "
             f"paper: PAPER.md §4 Table 1; {MISSING_CELL} = no completed run."]
    notes += [f"Rows '<train>, <basis> bases': RandLoRA with sparse random bases (the paper's numbers are dense)."
              ] if len(sparse) else []
    notes += cells.footnotes(runs, lambda r: "commonsense" in (r["task"] or ""))
    return Table("Table 1: commonsense reasoning, average accuracy over 8 tasks (%)",
                 ["network", "train"] + [h for h, _, _ in TABLE1_COLUMNS], rows, notes, label_columns=2)


def _table1_sparse_rows(cells: _Cells, sparse: pd.DataFrame, network: str, train: str | None) -> list[list[str]]:
    """One Table 1 row per non-dense basis of ``sparse`` (RandLoRA runs): the RandLoRA columns only."""
    rows = []
    for basis in sorted(set(sparse["sparse"])):
        mine_basis = sparse[sparse["sparse"] == basis]
        row = [network, f"{train or MISSING_CELL}, {basis} bases"]
        for header, adapters, budget in TABLE1_COLUMNS:
            mine = mine_basis[mine_basis["adapter"].isin(adapters) & (mine_basis["budget_label"] == budget)]
            row.append(cells.cell(f"{network} {train} {header} {basis}", mine, None, int(mine["n_failed"].sum()))
                       if "randlora" in adapters else MISSING_CELL)
        rows.append(row)
    return rows


def fig3_clip(summary: pd.DataFrame, reference: pd.DataFrame, runs: pd.DataFrame | None = None,
              metric: str = "test/acc", aliases: Mapping[str, str] | None = None) -> list[Table]:
    """Figure 3 as one table per CLIP network: adapters × regimes (1, 2, 4, 16 shots, 50%, 100%) + memory.

    Ours: configurations with a regime on a CLIP backbone, averaged over datasets by
    :func:`~randlora.reporting.summary.average_over`; "memory (GB)" is the largest mean peak memory
    (MiB / 1024) over datasets and regimes. One table per paper network and per other CLIP network we ran.
    """
    ours = _labelled(summary, aliases)
    ours = ours[(ours["network"].isin(FIG3_NETWORKS) | ours["backbone"].fillna("").str.contains("clip"))
                & ours["regime"].notna()]
    failed: dict[tuple, int] = {}  # (network, adapter, sparse basis or None, regime) -> failed runs
    for run in ours.to_dict("records"):
        key = (run["network"], run["adapter"], run["sparse"], run["regime"])
        failed[key] = failed.get(key, 0) + int(run["n_failed"])
    averaged = average_over(ours, "dataset", [metric, "peak_memory_mb"])
    tables = []
    for network in FIG3_NETWORKS + sorted(set(averaged["network"]) - set(FIG3_NETWORKS)):
        cells = _Cells(metric, reference[reference["network"] == network])
        mine_net = averaged[averaged["network"] == network]
        if not len(cells.reference) and not len(mine_net):
            continue
        rows = []
        for adapter in FIG3_ADAPTERS:
            ranks = [rank for rank in select_rows(cells.reference, adapter=adapter)["rank"] if rank]
            label = ADAPTER_LABELS[adapter] + (ranks[0] if ranks and adapter != "nola" else "")
            bases = [None] + sorted(set(mine_net.loc[mine_net["adapter"] == adapter, "sparse"].dropna()))
            for basis in bases:  # the paper's dense row, then one row per sparse basis we ran (no paper number)
                mine = select_rows(mine_net, adapter=adapter, sparse=basis)
                row = [label if basis is None else f"{label} ({basis} bases)"]
                for regime in REGIME_ORDER:
                    paper = cells.paper(adapter=adapter, regime=regime, metric="acc") if basis is None else None
                    n_failed = failed.get((network, adapter, basis, regime), 0)
                    row.append(cells.cell(f"{row[0]} {regime}", mine[mine["regime"] == regime], paper, n_failed))
                memory = mine["peak_memory_mb:mean"].max() / 1024 if len(mine) else None
                paper_memory = cells.paper(adapter=adapter, metric="peak_memory") if basis is None else None
                rows.append(row + [format_cell(memory, paper=paper_memory)])
        notes = [f"Ours: mean over datasets of the seed means of {metric}, ± the propagated seed std; memory: "
                 f"peak training memory (GB); paper: PAPER.md §4 Figure 3; {MISSING_CELL} = no completed run."]
        if len(mine_net):
            counts = sorted({int(c) for c in mine_net["n_dataset"]})
            cells.notes.append(f"Datasets averaged per cell: {', '.join(map(str, counts))} (paper: 22).")
        notes += cells.footnotes(runs, lambda r: network_label(r["backbone"], aliases) == network)
        tables.append(Table(f"Figure 3 data: CLIP {network}, accuracy (%) per regime and peak memory",
                            ["adapter"] + [regime_label(r) for r in REGIME_ORDER] + ["memory (GB)"], rows, notes))
    return tables


def fig1_points(summary: pd.DataFrame, reference: pd.DataFrame, metric: str = "test/acc",
                aliases: Mapping[str, str] | None = None) -> Table:
    """Figure 1's paper points (accuracy at a trainable-parameter count), each beside our nearest point.

    Ours: the dataset-averaged configurations of the same adapter (dense bases) whose trainable count is within
    a factor 2 of the paper's, the closest in log scale; "—" where we have none. ``aliases`` is unused here
    (Figure 1's references hold one network each) and kept for the same call as the other paper tables.
    """
    points = reference[(reference["metric"] == "acc") & (reference["trainable_params"].fillna("") != "")]
    ours = _labelled(summary, aliases)
    ours = ours[ours["sparse"].isna()]
    if len(ours) and f"{metric}:mean" in ours.columns:
        ours = ours[ours[f"{metric}:mean"].notna() & (ours["trainable:mean"] > 0)]
        if ours["dataset"].notna().any():
            ours = average_over(ours, "dataset", [metric, "trainable"])
    scale, rows = metric_scale(metric), []
    points = points.assign(trainable_params=pd.to_numeric(points["trainable_params"]))
    for point in points.sort_values(["adapter", "trainable_params"], kind="stable").to_dict("records"):
        target = float(point["trainable_params"])
        mine = ours[ours["adapter"] == point["adapter"]] if len(ours) else ours
        distance = (mine["trainable:mean"] / target).map(lambda r: abs(math.log(r))) if len(mine) else None
        close = mine[distance <= math.log(2)] if len(mine) else mine
        label = ADAPTER_LABELS.get(point["adapter"], point["adapter"])
        if not len(close):
            rows.append([label, f"{target:,.0f}", MISSING_CELL, format_cell(None, paper=point["value"])])
            continue
        best = close.loc[distance[close.index].idxmin()]
        rank = norm_key(best["rank"])
        rows.append([label, f"{target:,.0f}", f"r{rank}: {best['trainable:mean']:,.0f}" if rank else
                     f"{best['trainable:mean']:,.0f}",
                     format_cell(best[f"{metric}:mean"] * scale, best[f"{metric}:std"] * scale, int(best["n"]),
                                 point["value"])])
    notes = [f"Paper points: {points['source'].iloc[0] if len(points) else 'none'} (read from the plot); ours: the "
             f"configuration of the same adapter nearest in trainable parameters (within 2x), mean over datasets of "
             f"the seed means of {metric}; {MISSING_CELL} = no completed run near that budget."]
    network = points["network"].iloc[0] if len(points) else ""
    return Table(f"Figure 1 data: {network}, accuracy (%) vs trainable parameters",
                 ["adapter", "trainable (paper)", "ours: rank and trainable", "accuracy"], rows, notes, label_columns=2)
