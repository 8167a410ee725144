"""Run results -> runs table -> summary over seeds -> the paper's tables and figures.

    collect(runs_dir)        -> runs     one row per run: ok, failed, corrupt or incomplete      (runs.py)
    summarise(runs)          -> summary  one row per configuration: mean ± std, n over seeds    (summary.py)
    table1_commonsense(summary, reference), fig3_clip(...)  -> Table, our numbers beside the paper's (paper.py)
    summary_table(summary, metric), points_table(summary, metric), subtasks_table(summary, metric) -> Table;  to_markdown(table), to_latex(table)                (tables.py)
    make_figures(summary, metric, out_dir)   -> PNG / PDF files (import randlora.reporting.figures) (figures.py)

Corrupt or truncated result files are refused and never counted as 0; failed runs are listed and never averaged;
configurations expected but never run are shown as missing. ``scripts/aggregate.py``, ``make_tables.py`` and
``make_figures.py`` are thin command lines over these functions.
"""
from randlora.reporting.runs import (CorruptResultError, collect, failures, read_csv, read_result, read_runs_csv,
                                     status_counts, write_csv)
from randlora.reporting.summary import (average_over, expected_grid, key_columns, measured_test_metrics, metric_label,
                                        norm_key, select_rows, summarise)
from randlora.reporting.paper import (fig1_points, fig3_clip, network_label, read_reference, table1_budget,
                                      table1_commonsense, train_set_label)
from randlora.reporting.tables import (Table, format_cell, latex_escape, points_table, subtask_columns,
                                      subtasks_table, summary_table, to_latex, to_markdown, write_tables)

__all__ = ["CorruptResultError", "Table", "average_over", "collect", "expected_grid", "failures", "fig1_points",
           "fig3_clip", "format_cell", "key_columns", "latex_escape", "measured_test_metrics", "metric_label", "network_label", "norm_key",
           "read_csv", "read_reference", "read_result", "read_runs_csv", "select_rows", "status_counts",
           "points_table", "subtask_columns", "subtasks_table", "summarise", "summary_table", "table1_budget", "table1_commonsense", "to_latex", "to_markdown",
           "train_set_label", "write_csv", "write_tables"]
