"""Collect every run's result.json into one table and summarise it over seeds.

    python scripts/aggregate.py [RUNS_DIR]            # default results/runs
        -> results/summary.csv       one row per run (ok, failed, corrupt, incomplete), with its metrics
        -> results/summary_mean.csv  one row per configuration: mean, std and n over seeds of the ok runs

It prints how many runs are ok / failed / corrupt / incomplete and lists every run that is not ok.
Failed, corrupt and missing runs are never averaged in (see randlora/reporting/); smoke runs (debug=fast) are
left out unless --include-debug.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from randlora import reporting


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs_dir", nargs="?", default="results/runs", help="folder holding the runs")
    parser.add_argument("--out-dir", default="results", help="where summary.csv and summary_mean.csv go")
    parser.add_argument("--expected", default=None,
                        help="CSV of expected configurations (header: configuration keys such as adapter,rank); "
                             "cells without any run appear in summary_mean.csv with status 'missing'")
    parser.add_argument("--include-debug", action="store_true",
                        help="also count smoke runs (debug=fast, marked \"debug\" in result.json)")
    parser.add_argument("--config-field", action="append", default=[], metavar="COLUMN=DOTTED.PATH",
                        help="add a configuration column read from the stored config, e.g. targets=adapter.targets")
    args = parser.parse_args(argv)
    args.config_fields = dict(item.partition("=")[::2] for item in args.config_field)
    if not all(column and dotted for column, dotted in args.config_fields.items()):
        parser.error(f"--config-field {args.config_field} must each look like COLUMN=dotted.path")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        runs = reporting.collect(args.runs_dir, config_fields=args.config_fields, include_debug=args.include_debug)
        expected = reporting.read_csv(args.expected) if args.expected else None
        summary = reporting.summarise(runs, expected=expected)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    runs_path = reporting.write_csv(runs, Path(args.out_dir) / "summary.csv")
    mean_path = reporting.write_csv(summary, Path(args.out_dir) / "summary_mean.csv")
    counts = reporting.status_counts(runs)
    print(f"{len(runs)} runs under {args.runs_dir}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if runs.attrs.get("debug_left_out"):
        print(f"{runs.attrs['debug_left_out']} smoke runs (debug=fast) left out; --include-debug counts them")
    missing = summary[summary["status"] == "missing"].to_dict("records")
    print(f"{len(summary)} configurations" + (f", {len(missing)} expected ones missing" if args.expected else ""))
    bad = reporting.failures(runs)
    if len(bad) or missing:
        print("Not averaged in:")
    for row in bad.itertuples(index=False):
        error = (row.error or "").strip().splitlines()
        print(f"  [{row.status}] {row.path}: {error[-1] if error else 'no error recorded'}")

    def configuration(record: dict) -> dict:
        keys = reporting.key_columns(summary)
        return {k: v for k in keys if (v := reporting.norm_key(record[k])) is not None}

    for record in missing:
        print(f"  [missing] {configuration(record)}")
    for record in summary[summary["config_differs"].notna()].to_dict("records"):
        print(f"warning: {configuration(record)} averages runs whose configs differ in "
              f"{record['config_differs']}; separate them with --config-field NAME=<that key>")
    print(f"wrote {runs_path} and {mean_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
