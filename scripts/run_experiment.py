"""Run every cell of a paper table or figure that has no ok result yet, then aggregate and render it.

    python scripts/run_experiment.py NAME [--launcher local|joblib|slurm] [--dry-run] [--set AXIS=v1,v2 ...]
                                          [--runs-dir results/runs] [--out-dir results/NAME]
                                          [--network-map BACKBONE=LABEL] [--include-debug]
                                          [-- TRAIN.PY OVERRIDES ...]

NAME: fig3_clip, fig1_clip, fig1_dinov2, fig1_llama, table1_commonsense, vtab, sparse_bases (also through
experiments/NAME/run.sh). A cell is one run (backbone x adapter x regime x dataset x seed); it is skipped when
RUNS_DIR holds an ok result with its keys, so re-running the command after a pre-emption runs only what is
missing. --dry-run lists the cells (pending ones marked) and the compute estimate, and runs nothing.
--set replaces one axis (e.g. --set backbone=clip_vitb32 --set seed=0); overrides after -- go to every
train.py job (e.g. hydra.launcher.partition=gpu, paths.data_dir=/data) and count in the cells' identity.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from randlora.experiments import EXPERIMENTS, LAUNCHERS

    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=list(EXPERIMENTS), help="the table or figure")
    parser.add_argument("--launcher", default="local", choices=list(LAUNCHERS), help="where the jobs run")
    parser.add_argument("--dry-run", action="store_true", help="list the cells and the compute estimate only")
    parser.add_argument("--set", action="append", default=[], metavar="AXIS=V1,V2", dest="settings",
                        help="replace an axis's values (repeatable)")
    parser.add_argument("--runs-dir", default=str(REPO / "results" / "runs"), help="where runs are written and read")
    parser.add_argument("--out-dir", default=None, help="summaries, tables, figures (default results/NAME)")
    parser.add_argument("--metric", default="test/acc", help="metric of the tables and figures")
    parser.add_argument("--network-map", action="append", default=[], metavar="BACKBONE=LABEL",
                        help="draw and tabulate a backbone as one of the paper's networks, e.g. tiny_clip=ViT-B/32")
    parser.add_argument("--render-only", action="store_true", help="aggregate and render, run nothing")
    parser.add_argument("--include-debug", action="store_true",
                        help="count smoke runs (debug=fast) as done and render them (left out by default)")
    args = parser.parse_args(argv)
    args.extra = extra
    args.runs_dir = Path(args.runs_dir).resolve()
    args.out_dir = Path(args.out_dir or REPO / "results" / args.name).resolve()
    settings = {}
    for item in args.settings:
        axis, _, values = item.partition("=")
        if not axis or not _:
            parser.error(f"--set {item!r} must look like AXIS=V1,V2")
        settings[axis] = tuple(v for v in values.split(",") if v)
    args.settings = settings
    args.aliases = dict(item.partition("=")[::2] for item in args.network_map)
    if not all(backbone and label for backbone, label in args.aliases.items()):
        parser.error(f"--network-map {args.network_map} must each look like BACKBONE=LABEL")
    return args


def print_plan(cells, done) -> None:
    """One line per cell ([ok] or [todo] and its command), then counts and the compute estimate of the pending."""
    for cell, is_done in zip(cells, done):
        print(f"[{'ok' if is_done else 'todo'}] {cell.command()}")
    pending = [c for c, d in zip(cells, done) if not d]
    hours = [c.hours for c in pending]
    known = sum(h for h in hours if h is not None)
    unknown = sum(h is None for h in hours)
    print(f"{len(cells)} cells: {len(cells) - len(pending)} with an ok result, {len(pending)} to run; "
          f"estimated compute of those: {known:,.1f} H100-hours (order of magnitude)"
          + (f", {unknown} cells without an estimate" if unknown else ""))


def main(argv: list[str] | None = None) -> int:
    from randlora.experiments import done_cells, experiment_cells, launch
    from randlora.experiments.render import experiment_runs, render
    from randlora.utils.validate import ConfigError

    args = parse_args(argv)
    try:
        cells = experiment_cells(args.name, args.settings, args.extra)
    except (ValueError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    done = done_cells(cells, experiment_runs(args.runs_dir, cells, args.include_debug))
    if args.dry_run:
        print_plan(cells, done)
        return 0
    failed = 0
    if not args.render_only:
        pending = [c for c, d in zip(cells, done) if not d]
        print(f"{args.name}: {len(cells)} cells, {len(cells) - len(pending)} already ok, running {len(pending)}")
        failed = launch(pending, args.launcher, args.runs_dir, REPO)
    for path in render(args.name, cells, args.runs_dir, args.out_dir, args.metric, args.aliases,
                       include_debug=args.include_debug):
        print(f"wrote {path}")
    if failed:
        print(f"{failed} sweep(s) had failed jobs: re-run the command to retry them", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
