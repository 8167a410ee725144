"""The GLUE table of the authors' appendix runs: rows network × adapter, columns the six tasks and their mean.

Each task shows the metric the authors report (``randlora.data.glue.TASKS[...].reported``: accuracy, CoLA's
Matthews correlation, STS-B's mean of Pearson and Spearman), in %, mean ± std over seeds; MRPC's F1 and STS-B's
Pearson are footnoted where runs exist. There are no paper numbers: the GLUE values of the paper's appendix could
not be read here, so the table holds ours only ("—" where no run completed).
"""
from __future__ import annotations

import pandas as pd

from randlora.reporting.summary import norm_key
from randlora.reporting.tables import ADAPTER_LABELS, MISSING_CELL, Table, format_cell

GLUE_ORDER = ("sst2", "mrpc", "cola", "qnli", "rte", "stsb")


def glue_table(summary: pd.DataFrame) -> Table:
    """One row per (backbone, adapter, rank) of the GLUE runs in ``summary``; "avg" over the six reported values."""
    from randlora.data.glue import TASKS

    runs = summary[(summary["task"] == "glue") & (summary["status"] == "ok")] if len(summary) else summary
    rows = []
    keys = sorted({(r["backbone"], r["adapter"], norm_key(r["rank"])) for r in runs.to_dict("records")},
                  key=lambda k: tuple(str(v) for v in k))
    for backbone, adapter, rank in keys:
        mine = runs[(runs["backbone"] == backbone) & (runs["adapter"] == adapter)
                    & (runs["rank"].map(norm_key) == rank)]
        row, means = [backbone, ADAPTER_LABELS.get(adapter, adapter) + ("" if rank is None else f" r{rank}")], []
        for task in GLUE_ORDER:
            metric = f"test/{TASKS[task].reported}"
            hit = mine[mine["dataset"] == task]
            if not len(hit) or f"{metric}:mean" not in hit.columns or pd.isna(hit[f"{metric}:mean"].iloc[0]):
                row.append(MISSING_CELL)
                continue
            best = hit.iloc[0]
            means.append(best[f"{metric}:mean"] * 100)
            row.append(format_cell(best[f"{metric}:mean"] * 100, best[f"{metric}:std"] * 100, int(best["n"])))
        row.append(format_cell(sum(means) / len(means)) if len(means) == len(GLUE_ORDER) else MISSING_CELL)
        rows.append(row)
    notes = ["Ours: mean ± std over seeds (the authors ran seeds 1-5) of each task's reported metric (%): accuracy; "
             "CoLA Matthews correlation; STS-B (Pearson + Spearman) / 2; scored on GLUE's validation split. No paper "
             f"numbers: the appendix's GLUE values could not be read here. {MISSING_CELL} = no completed run."]
    return Table("GLUE (the authors' appendix runs): validation scores (%)",
                 ["network", "adapter", *GLUE_ORDER, "avg"], rows, notes, label_columns=2)
