"""Draw the paper-style figures from results/summary.csv (PNG and PDF; see randlora/reporting/figures.py).

    python scripts/make_figures.py [--results-dir results] [--out-dir results/figures] [--metric test/acc]
    (without --metric: the figures of every test metric present, e.g. test/acc and test/rel_error)
        -> params_vs_<metric>         metric vs trainable parameters (log x), LoRA vs RandLoRA lines (Figure 1)
        -> <metric>_vs_regime         metric vs shots per class / data fraction, one line per adapter (Figure 3)
        -> peak_memory                peak training memory per adapter (bars)
        -> rank_lr_ratio_<metric>     rank × LoRA+ lr_ratio heatmap from a sweep, annotated cells

A figure whose data is absent is skipped with the reason printed. Error metrics (``--metric test/rel_error``)
are labelled "lower is better".
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from randlora import reporting
from randlora.reporting.figures import FIGURES, make_figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results-dir", default="results", help="folder holding summary.csv (from aggregate.py)")
    parser.add_argument("--out-dir", default=None, help="where figures go (default RESULTS_DIR/figures)")
    parser.add_argument("--metric", default=None,
                        help="metric to plot: test/acc, test/rel_error, ... (default: every test metric present)")
    parser.add_argument("--only", action="append", choices=list(FIGURES), help="draw only these figures")
    parser.add_argument("--formats", default="png,pdf", help="comma-separated file formats: png, pdf, svg")
    args = parser.parse_args(argv)
    args.out_dir = Path(args.out_dir or Path(args.results_dir) / "figures")
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not args.formats or set(args.formats) - {"png", "pdf", "svg"}:
        parser.error(f"--formats {args.formats}: allowed png, pdf, svg")
    if args.metric is not None and "/" not in args.metric:
        parser.error(f"--metric {args.metric!r} must look like split/name, e.g. test/acc")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        runs = reporting.read_runs_csv(Path(args.results_dir) / "summary.csv")
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary = reporting.summarise(runs)
    metrics = [args.metric] if args.metric else reporting.measured_test_metrics(summary) or ["test/acc"]
    written = []
    for index, metric in enumerate(metrics):  # the memory figure does not depend on the metric: drawn once
        only = args.only or [name for name in FIGURES if index == 0 or name != "memory"]
        drawn, skipped = make_figures(summary, metric, args.out_dir, only, args.formats)
        written += drawn
        for name, reason in skipped.items():
            print(f"skipped {name} ({metric}): {reason}")
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
