"""Tables of our numbers, and their rendering as Markdown or LaTeX.

A cell reads ``84.6 ± 0.2``: the mean ± std over seeds (``84.6 (n=1)`` for one seed), followed by
``(paper 84.6)`` where the paper has the number (see :mod:`randlora.reporting.paper`); ``—`` where no run
completed. Failed runs are counted in a footnote, never averaged in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from randlora.reporting.summary import best_per, key_columns, metric_scale, norm_key, validation_column

MISSING_CELL = "—"
ADAPTER_LABELS = {"full": "FT", "lora": "LoRA", "loraplus": "LoRA+", "vera": "VeRA", "nola": "NoLA",
                  "randlora": "RandLoRA", "zero_shot": "zero-shot", "none": "zero-shot"}
LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                 "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "—": "---"}


@dataclass
class Table:
    """Cell strings under a header, with footnotes; the first ``label_columns`` columns name the row."""

    title: str
    header: list[str]
    rows: list[list[str]]
    footnotes: list[str] = field(default_factory=list)
    label_columns: int = 1

    def filled_cells(self) -> tuple[int, int]:
        """(value cells holding our number, all value cells)."""
        cells = [c for row in self.rows for c in row[self.label_columns:]]
        return sum(not c.startswith(MISSING_CELL) for c in cells), len(cells)


def _present(x: float | None) -> bool:
    return x is not None and not math.isnan(x)


def format_cell(mean: float | None, std: float | None = None, n: int = 0, paper: float | None = None,
                digits: int = 1) -> str:
    """``84.6 ± 0.2 (paper 84.6)``; one seed ``84.6 (n=1)``; no run ``—``; no paper value, no parenthesis."""
    if not _present(mean):
        ours = MISSING_CELL
    elif _present(std):
        ours = f"{mean:.{digits}f} ± {std:.{digits}f}"
    else:
        ours = f"{mean:.{digits}f}" + (" (n=1)" if n == 1 else "")
    return f"{ours} (paper {paper:.{digits}f})" if _present(paper) else ours


def _sort_key(values: tuple) -> tuple:
    """Orders key tuples that mix None, numbers and text: None first, then numbers, then text."""
    return tuple((0, 0, "") if v is None else (1, v, "") if isinstance(v, (int, float)) else (2, 0, v) for v in values)


def summary_table(summary: pd.DataFrame, metric: str, title: str | None = None) -> Table:
    """Any summary as a table: one column per adapter and rank, one row per other configuration.

    Rows are labelled by every other configuration key that varies, so no two configurations share a cell.
    Accuracies are shown in % with 1 decimal, other metrics raw with 3.
    """
    if f"{metric}:mean" not in summary.columns:
        raise KeyError(f"metric {metric!r} not in the summary; available: "
                       f"{sorted(c[:-5] for c in summary.columns if c.endswith(':mean'))}")
    scale = metric_scale(metric)
    row_keys = [k for k in key_columns(summary) if k not in ("adapter", "rank")
                and summary[k].map(norm_key).nunique(dropna=False) > 1] or ["task", "backbone"]
    records = {(tuple(norm_key(r[k]) for k in row_keys), (r["adapter"], norm_key(r["rank"]))): r
               for r in summary.to_dict("records")}
    columns = sorted({column for _, column in records}, key=_sort_key)
    rows = []
    for row in sorted({row for row, _ in records}, key=_sort_key):
        cells = [MISSING_CELL if v is None else str(v) for v in row]
        for column in columns:
            r = records.get((row, column))
            cells.append(MISSING_CELL if r is None or r["status"] != "ok" else format_cell(
                r[f"{metric}:mean"] * scale, r[f"{metric}:std"] * scale, int(r["n"]), digits=1 if scale == 100 else 3))
        rows.append(cells)
    header = row_keys + [ADAPTER_LABELS.get(a, a) + ("" if rank is None else f" r{rank}") for a, rank in columns]
    notes = [f"mean ± std over seeds of {metric}{' (%)' if scale == 100 else ''}; {MISSING_CELL} = no completed run."]
    if n_failed := int(summary["n_failed"].fillna(0).sum()):
        notes.append(f"Failed runs, not averaged in: {n_failed}.")
    return Table(title or f"Summary: {metric}", header, rows, notes, label_columns=len(row_keys))


POINT_KEYS = ["task", "subtask", "dataset", "regime", "backbone", "adapter", "basis", "rank", "lr_ratio"]


def points_table(summary: pd.DataFrame, metric: str, title: str | None = None) -> Table:
    """The points a figure draws, as a table: one row per adapter and rank (and LoRA+ ratio) of each task.

    Where several configurations share a point (learning rates, a budget and a rank), the one with the best
    validation metric is shown (:func:`~randlora.reporting.summary.best_per`), with its lr and seed count.
    """
    if f"{metric}:mean" not in summary.columns:
        raise KeyError(f"metric {metric!r} not in the summary")
    by = [k for k in POINT_KEYS if k in summary.columns]
    chosen = best_per(summary[summary[f"{metric}:mean"].notna()], by, metric)
    shown = [k for k in by if k not in ("adapter", "rank") and chosen[k].map(norm_key).nunique(dropna=True) > 1]
    scale = metric_scale(metric)
    digits = 1 if scale == 100 else 3
    rows = []
    for r in sorted(chosen.to_dict("records"), key=lambda r: _sort_key(
            tuple(norm_key(r[k]) for k in shown) + (r["adapter"], r["trainable:mean"]))):
        rank = norm_key(r["rank"])
        rows.append([MISSING_CELL if norm_key(r[k]) is None else str(norm_key(r[k])) for k in shown] + [
            ADAPTER_LABELS.get(r["adapter"], r["adapter"]) + ("" if rank is None else f" r{rank}"),
            f"{int(r['trainable:mean']):,}" if _present(r.get("trainable:mean")) else MISSING_CELL,
            f"{r['lr']:g}" if _present(r.get("lr")) else MISSING_CELL,
            format_cell(r[f"{metric}:mean"] * scale, r[f"{metric}:std"] * scale, int(r["n"]), digits=digits),
            str(int(r["n"]))])
    header = shown + ["adapter", "trainable", "lr", f"{metric}{' (%)' if scale == 100 else ''}", "seeds"]
    notes = ["mean ± std over seeds; where several learning rates (or other settings) share a row, the one with the "
             + ("best validation score is shown." if validation_column(summary, metric) else
                "most seeds is shown (the first in the summary on a tie): these runs have no validation metric to "
                "choose by, and the test metric is never used to choose; the summary table shows every setting.")]
    if n_failed := int(summary["n_failed"].fillna(0).sum()):
        notes.append(f"Failed runs, not averaged in: {n_failed}.")
    return Table(title or f"{metric} per adapter", header, rows, notes, label_columns=len(shown) + 1)


def subtask_columns(summary: pd.DataFrame, metric: str) -> list[str]:
    """The subtasks with a value in some ``<metric>/<subtask>`` column of ``summary``, in column order."""
    prefix = f"{metric}/"
    return [c[len(prefix):-len(":mean")] for c in summary.columns
            if c.startswith(prefix) and c.endswith(":mean") and "/" not in c[len(prefix):-len(":mean")]
            and summary[c].notna().any()]


def subtasks_table(summary: pd.DataFrame, metric: str, title: str | None = None) -> Table:
    """One row per configuration (labelled by the keys that vary, adapter and rank always), one column per
    subtask's ``<metric>/<subtask>`` and the ``<metric>`` average, plus trainable parameters and seeds: e.g. the
    per-task accuracies of commonsense runs, or the share of generations an answer could be extracted from."""
    subtasks = subtask_columns(summary, metric)
    if not subtasks:
        raise KeyError(f"no per-subtask columns {metric}/<subtask> in the summary")
    ok = summary[(summary["status"] == "ok") & summary[f"{metric}:mean"].notna()]
    row_keys = ["adapter", "rank"] + [k for k in key_columns(ok) if k not in ("adapter", "rank")
                                      and ok[k].map(norm_key).nunique(dropna=False) > 1]
    scale = metric_scale(metric)
    digits = 1 if scale == 100 else 3
    rows = []
    for r in sorted(ok.to_dict("records"), key=lambda r: _sort_key(
            (r["trainable:mean"] if _present(r.get("trainable:mean")) else -1.0,
             *(norm_key(r[k]) for k in row_keys)))):
        label = [ADAPTER_LABELS.get(r["adapter"], r["adapter"]),
                 MISSING_CELL if norm_key(r["rank"]) is None else str(norm_key(r["rank"]))]
        label += [MISSING_CELL if norm_key(r[k]) is None else f"{norm_key(r[k]):g}" if isinstance(
            norm_key(r[k]), float) else str(norm_key(r[k])) for k in row_keys[2:]]
        cells = [format_cell(r[f"{metric}/{t}:mean"] * scale, r[f"{metric}/{t}:std"] * scale, int(r["n"]),
                             digits=digits).replace(" (n=1)", "") for t in subtasks]
        cells.append(format_cell(r[f"{metric}:mean"] * scale, r[f"{metric}:std"] * scale, int(r["n"]),
                                 digits=digits).replace(" (n=1)", ""))
        trainable = f"{int(r['trainable:mean']):,}" if _present(r.get("trainable:mean")) else MISSING_CELL
        rows.append(label + [trainable] + cells + [str(int(r["n"]))])
    header = row_keys + ["trainable"] + subtasks + ["mean", "seeds"]
    notes = [f"{metric}{' (%)' if scale == 100 else ''}: mean ± std over seeds (one value: one seed); "
             "mean = the unweighted average over the subtasks."]
    if n_failed := int(summary["n_failed"].fillna(0).sum()):
        notes.append(f"Failed runs, not averaged in: {n_failed}.")
    return Table(title or f"{metric} per subtask", header, rows, notes, label_columns=len(row_keys))


def to_markdown(table: Table) -> str:
    """GitHub Markdown: a heading, the table (pipes escaped) and the footnotes as a list."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    parts = [f"### {table.title}", "", line(table.header), line(["---"] * len(table.header))]
    parts += [line(row) for row in table.rows] + ([""] + [f"- {n}" for n in table.footnotes] if table.footnotes else [])
    return "\n".join(parts) + "\n"


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped; ``±`` becomes ``$\\pm$`` and ``—`` becomes ``---``."""
    return "".join(LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment: the title as caption, the footnotes below the tabular."""
    def line(cells: Sequence[str]) -> str:
        return " & ".join(map(latex_escape, cells)) + r" \\"

    spec = "l" * table.label_columns + "c" * (len(table.header) - table.label_columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{latex_escape(table.title)}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule", line(table.header), r"\midrule"]
    lines += [line(row) for row in table.rows] + [r"\bottomrule", r"\end{tabular}"]
    lines += [rf"\par\footnotesize {latex_escape(note)}" for note in table.footnotes] + [r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_tables(tables: list[Table], out_dir: str | Path, stem: str) -> list[Path]:
    """``stem.md`` and ``stem.tex`` in ``out_dir``, each holding all ``tables`` one after another."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.md", out_dir / f"{stem}.tex"]
    for path, render in zip(paths, (to_markdown, to_latex)):
        path.write_text("\n".join(map(render, tables)), encoding="utf-8")
    return paths
