"""Write the paper's tables with our numbers beside the paper's, from results/summary.csv.

    python scripts/make_tables.py [--results-dir results] [--out-dir results/tables] [--metric test/acc]
        -> table1_commonsense.{md,tex}   Table 1: commonsense average accuracy, network × train set × adapter
        -> fig3_clip.{md,tex}            Figure 3 data: CLIP accuracy per regime and adapter, peak memory
        -> summary_<metric>.{md,tex}     per task: every configuration (rows) × adapter and rank (columns)
        -> points_<metric>.{md,tex}      per task: one row per adapter and rank, the best lr by validation
        -> subtasks_<metric>.{md,tex}    per task with subtasks (commonsense): one column per <metric>/<subtask>
    The paper tables (test/acc) are always written: the paper's numbers, with empty cells where we have no run.
    The summary and points tables are written for every test metric present (test/acc, test/rel_error, ...),
    or only for --metric.

A cell reads "84.6 ± 0.2 (paper 84.6)": our mean ± std over seeds, then the paper's number from
experiments/<name>/reference.csv; "—" where no run completed. Failed runs are counted in a footnote.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from randlora import reporting

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", default="results", help="folder holding summary.csv (from aggregate.py)")
    parser.add_argument("--out-dir", default=None, help="where tables go (default RESULTS_DIR/tables)")
    parser.add_argument("--metric", default=None,
                        help="write the summary/points tables of this metric only (default: every test metric)")
    parser.add_argument("--network-map", action="append", default=[], metavar="BACKBONE=LABEL",
                        help="name a backbone as the paper does, e.g. my_clip=ViT-B/32 (repeatable)")
    args = parser.parse_args(argv)
    args.out_dir = Path(args.out_dir or Path(args.results_dir) / "tables")
    args.aliases = dict(item.partition("=")[::2] for item in args.network_map)
    if not all(backbone and label for backbone, label in args.aliases.items()):
        parser.error(f"--network-map {args.network_map} must each look like BACKBONE=LABEL")
    return args


PAPER_METRIC = "test/acc"  # what the paper's tables report


def paper_tables(summary, runs, table1_ref, fig3_ref, aliases) -> dict[str, list]:
    """Table 1 and Figure 3's table, with empty cells where no run of ours exists."""
    if f"{PAPER_METRIC}:mean" not in summary.columns:
        summary = summary.assign(**{f"{PAPER_METRIC}:mean": float("nan"), f"{PAPER_METRIC}:std": float("nan")})
    return {"table1_commonsense": [reporting.table1_commonsense(summary, table1_ref, runs, PAPER_METRIC, aliases)],
            "fig3_clip": reporting.fig3_clip(summary, fig3_ref, runs, PAPER_METRIC, aliases)}


def metric_tables(summary, metric: str, out_dir: Path) -> list[Path]:
    """summary_<metric> and points_<metric>, one table per task that measured ``metric``; subtasks_<metric> for
    the tasks that measured it per subtask."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", metric).strip("_")
    if f"{metric}:mean" not in summary.columns:
        available = reporting.measured_test_metrics(summary)
        print(f"skipped summary_{slug}: metric {metric!r} is in no run (available: {available})", file=sys.stderr)
        return []
    per_task = {task: rows for task, rows in summary.groupby("task", sort=True)
                if rows[f"{metric}:mean"].notna().any()}
    if not per_task:
        print(f"skipped summary_{slug}: no completed run has {metric}")
        return []
    written = (reporting.write_tables([reporting.summary_table(rows, metric, f"Summary of {task}: {metric}")
                             for task, rows in per_task.items()], out_dir, f"summary_{slug}")
               + reporting.write_tables([reporting.points_table(rows, metric, f"{task}: {metric} per adapter")
                               for task, rows in per_task.items()], out_dir, f"points_{slug}"))
    with_subtasks = {task: rows for task, rows in per_task.items() if reporting.subtask_columns(rows, metric)}
    if with_subtasks:
        written += reporting.write_tables([reporting.subtasks_table(rows, metric, f"{task}: {metric} per subtask")
                                 for task, rows in with_subtasks.items()], out_dir, f"subtasks_{slug}")
    return written


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        runs = reporting.read_runs_csv(Path(args.results_dir) / "summary.csv")
        table1_ref = reporting.read_reference(EXPERIMENTS / "table1_commonsense" / "reference.csv")
        fig3_ref = reporting.read_reference(EXPERIMENTS / "fig3_clip" / "reference.csv")
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary = reporting.summarise(runs)
    written = []
    for stem, tables in paper_tables(summary, runs, table1_ref, fig3_ref, args.aliases).items():
        filled, total = (sum(counts) for counts in zip(*(t.filled_cells() for t in tables)))
        written += reporting.write_tables(tables, args.out_dir, stem)
        print(f"{stem}: {filled} of {total} cells have our runs")
    metrics = [args.metric] if args.metric else reporting.measured_test_metrics(summary)
    for metric in metrics:
        written += metric_tables(summary, metric, args.out_dir)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
