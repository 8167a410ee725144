"""Aggregate an experiment's runs and render its table(s) and figure(s) beside the paper's numbers.

    results/<experiment>/summary.csv, summary_mean.csv     the runs of this experiment's cells (any seed)
    results/<experiment>/tables/<stem>.{md,tex}            the paper table (paper numbers, "—" where no run)
    results/<experiment>/figures/*.{png,pdf}               ours filled with seed error bars, the paper's hollow

Tables are written even when no run exists: they then carry the paper's numbers only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd

from randlora import reporting
from randlora.experiments.cells import Cell, belongs
from randlora.reporting.runs import RUN_COLUMNS, typed

EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"
TableMaker = Callable[[pd.DataFrame, pd.DataFrame | None, pd.DataFrame, str, Mapping[str, str]],
                      list[reporting.Table]]


def _table1(summary, reference, runs, metric, aliases):
    return [reporting.table1_commonsense(summary, reference, runs, metric, aliases)]


def _fig3(summary, reference, runs, metric, aliases):
    return reporting.fig3_clip(summary, reference, runs, metric, aliases)


def _fig1(summary, reference, runs, metric, aliases):
    tables = [reporting.fig1_points(summary, reference, metric, aliases)]
    if len(summary) and summary[f"{metric}:mean"].notna().any():
        tables.append(reporting.points_table(summary, metric, f"Every point we ran: {metric}"))
    return tables


def _summary(summary, reference, runs, metric, aliases):
    if not len(summary) or not summary[f"{metric}:mean"].notna().any():
        return [reporting.Table(f"{metric}: no completed run", ["configuration"], [], [])]
    return [reporting.summary_table(summary, metric, f"Summary: {metric}")]


def _vtab(summary, reference, runs, metric, aliases):
    from randlora.reporting.vtab import vtab_group_table

    return [vtab_group_table(summary, metric)] + _summary(summary, reference, runs, metric, aliases)


def _sparse_bases(summary, reference, runs, metric, aliases):
    """Figure 3 and Table 1 with one row per basis (the paper's numbers are those of dense bases)."""
    fig3_ref, table1_ref = (reporting.read_reference(EXPERIMENTS_DIR / n / "reference.csv")
                            for n in ("fig3_clip", "table1_commonsense"))
    return reporting.fig3_clip(summary, fig3_ref, runs, metric, aliases) + [
        reporting.table1_commonsense(summary, table1_ref, runs, metric, aliases)]


def _glue(summary, reference, runs, metric, aliases):
    from randlora.reporting.glue import glue_table

    return [glue_table(summary)]


def _e2e(summary, reference, runs, metric, aliases):
    from randlora.reporting.e2e import e2e_table

    return [e2e_table(summary)]


@dataclass(frozen=True)
class Rendering:
    """What an experiment renders: the reference CSV's folder (or None), its tables and figures."""

    reference: str | None
    tables: TableMaker
    figures: tuple[str, ...]


RENDERINGS = {
    "table1_commonsense": Rendering("table1_commonsense", _table1, ()),
    "fig3_clip": Rendering("fig3_clip", _fig3, ("regime", "memory")),
    "fig1_clip": Rendering("fig1_clip", _fig1, ("params",)),
    "fig1_dinov2": Rendering("fig1_dinov2", _fig1, ("params",)),
    "fig1_llama": Rendering("fig1_llama", _fig1, ("params",)),
    "vtab": Rendering(None, _vtab, ()),
    "sparse_bases": Rendering("fig3_clip", _sparse_bases, ("regime",)),
    "glue": Rendering(None, _glue, ()),
    "e2e": Rendering(None, _e2e, ()),
}


def experiment_runs(runs_dir: Path, cells: Sequence[Cell], include_debug: bool = False) -> pd.DataFrame:
    """The runs table of ``runs_dir`` restricted to runs of ``cells`` (empty when there is no such folder).

    Smoke runs (``debug=fast``) neither count as done nor enter the tables unless ``include_debug``.
    """
    runs = (reporting.collect(runs_dir, include_debug=include_debug) if runs_dir.is_dir()
            else typed(pd.DataFrame(columns=RUN_COLUMNS)))
    return runs[belongs(runs, cells)].reset_index(drop=True) if len(runs) else runs


def render(name: str, cells: Sequence[Cell], runs_dir: Path, out_dir: Path, metric: str = "test/acc",
           aliases: Mapping[str, str] | None = None, rendering: Rendering | None = None,
           include_debug: bool = False) -> list[Path]:
    """Aggregate the runs of ``cells`` under ``runs_dir`` and write the summaries, tables and figures of ``name``."""
    from randlora.reporting.figures import make_figures

    rendering = rendering or RENDERINGS[name]
    aliases = dict(aliases or {})
    runs = experiment_runs(runs_dir, cells, include_debug)
    written = [reporting.write_csv(runs, out_dir / "summary.csv")]
    summary = reporting.summarise(runs)
    written.append(reporting.write_csv(summary, out_dir / "summary_mean.csv"))
    if f"{metric}:mean" not in summary.columns:
        summary = summary.assign(**{f"{metric}:mean": float("nan"), f"{metric}:std": float("nan")})
    reference = (reporting.read_reference(EXPERIMENTS_DIR / rendering.reference / "reference.csv")
                 if rendering.reference else None)
    tables = rendering.tables(summary, reference, runs, metric, aliases)
    written += reporting.write_tables(tables, out_dir / "tables", name)
    counts = [t.filled_cells() for t in tables]
    print(f"{name}: {sum(c[0] for c in counts)} of {sum(c[1] for c in counts)} table cells have our runs")
    if rendering.figures:
        figures, skipped = make_figures(summary, metric, out_dir / "figures", list(rendering.figures),
                                        reference=reference, aliases=aliases)
        written += figures
        for figure, reason in skipped.items():
            print(f"skipped figure {figure}: {reason}")
    return written
