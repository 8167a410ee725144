"""VTAB-1k's usual summary: the natural / specialized / structured group means and the overall mean.

One row per configuration (every configuration key except the task), the groups as columns. A group's cell
averages the seed means of the tasks that completed, with the task count beside it ("74.1 (6/7)") when some
are missing; missing tasks are never counted as 0.
"""
from __future__ import annotations

import pandas as pd

from randlora.data import vtab
from randlora.reporting.summary import key_columns, metric_scale, norm_key
from randlora.reporting.tables import ADAPTER_LABELS, MISSING_CELL, Table

GROUP_COLUMNS = ("natural", "specialized", "structured", "overall", "group_average")


def vtab_group_table(summary: pd.DataFrame, metric: str = "test/acc") -> Table:
    """Group means per configuration of the VTAB-1k rows of ``summary`` (``subtask`` names the task)."""
    scale = metric_scale(metric)
    rows_of = summary[(summary["task"] == "vtab") & (summary["status"] == "ok")] if len(summary) else summary
    keys = [k for k in key_columns(summary) if k not in ("task", "subtask", "dataset")]
    varying = [k for k in keys if len(rows_of) and rows_of[k].map(norm_key).nunique(dropna=False) > 1]
    label_keys = ["backbone", "adapter"] + [k for k in varying if k not in ("backbone", "adapter")]
    sizes = {g: sum(t.group == g for t in vtab.TASKS.values()) for g in vtab.GROUPS}
    configurations: dict[tuple, dict[str, float]] = {}
    for record in rows_of.to_dict("records"):
        label = tuple(norm_key(record[k]) for k in label_keys)
        configurations.setdefault(label, {})[record["subtask"]] = float(record[f"{metric}:mean"]) * scale
    rows = []
    for label, per_task in sorted(configurations.items(), key=lambda item: tuple(map(str, item[0]))):
        means = vtab.group_means(per_task)
        counts = {g: sum(vtab.get_task(t).group == g for t in per_task) for g in vtab.GROUPS}
        cells = [ADAPTER_LABELS.get(v, v) if k == "adapter" else (MISSING_CELL if v is None else str(v))
                 for k, v in zip(label_keys, label)]
        for column in GROUP_COLUMNS:
            if column not in means:
                cells.append(MISSING_CELL)
                continue
            done, size = (counts[column], sizes[column]) if column in sizes else (len(per_task), len(vtab.TASKS))
            cells.append(f"{means[column]:.1f}" + ("" if done == size else f" ({done}/{size})"))
        rows.append(cells)
    notes = [f"Mean over tasks of the seed means of {metric}; overall = mean of all tasks, group_average = mean "
             f"of the three group means; (k/n) = only k of the group's n tasks completed; {MISSING_CELL} = none."]
    return Table(f"VTAB-1k group means: {metric}", label_keys + list(GROUP_COLUMNS), rows, notes,
                 label_columns=len(label_keys))
