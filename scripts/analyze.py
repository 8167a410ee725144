#!/usr/bin/env python
"""Analyse finished runs: how much rank a task needs, activation similarity to FT, the loss landscape.

    python scripts/analyze.py rank-need RUN_DIR... [--out DIR]   # FT's ΔW spectra, effective ranks, metric vs rank k
    python scripts/analyze.py cka RUN_DIR... [--out DIR]         # layer-wise linear CKA of each run with FT
    python scripts/analyze.py landscape FT_DIR RANDLORA_DIR LORA_DIR [--step 0.25]   # loss on their plane

RUN_DIR is a run folder written by train.py (result.json + adapter.safetensors); one of them must be full
fine-tuning (adapter=full), all of one backbone and task. Each analysis writes CSVs and PNG/PDF figures to
--out (default results/analysis). The logic is in randlora.analysis; this script only wires it.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_SAMPLES = {"rank-need": 500, "cka": 500, "landscape": 256}
DEFAULT_SPLIT = {"rank-need": "test", "cka": "test", "landscape": "train"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("analysis", choices=["rank-need", "cka", "landscape"])
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--out", type=Path, default=Path("results/analysis"), help="output folder")
    parser.add_argument("--split", choices=["train", "val", "test"], default=None,
                        help="examples to evaluate on (default: test; landscape: train, as the authors)")
    parser.add_argument("--max-samples", type=int, default=None,
                        help="N examples of the split, a fixed random subset "
                             "(default: rank-need/cka 500, landscape 256; 0 = all)")
    parser.add_argument("--ks", type=int, nargs="+", default=None,
                        help="rank-need: truncation ranks (default 0, 1, 2, 4, ... up to full rank)")
    parser.add_argument("--layers", default=None,
                        help="cka: regex of module names to compare (default: the adapted layers)")
    parser.add_argument("--step", type=float, default=0.1, help="landscape: grid step (0.25 or 0.5 on a CPU)")
    parser.add_argument("--x-range", type=float, nargs=2, default=(-1.0, 1.5), metavar=("START", "STOP"))
    parser.add_argument("--y-range", type=float, nargs=2, default=(-0.5, 2.0), metavar=("START", "STOP"))
    parser.add_argument("--name", default=None, help="landscape: file name stem (default from the runs' labels)")
    parser.add_argument("--formats", nargs="+", default=["png", "pdf"], help="figure formats")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip re-scoring each rebuilt run on its test split against its recorded metric")
    args = parser.parse_args(argv)
    if args.max_samples is not None and args.max_samples < 0:
        parser.error(f"--max-samples={args.max_samples} is invalid: allowed is 0 (all) or a positive count")
    missing = [str(d) for d in args.run_dirs if not (d / "result.json").is_file()]
    if missing:
        parser.error(f"not run folders (no result.json): {', '.join(missing)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from randlora.analysis.cka import cka
    from randlora.analysis.evaluate import task_examples
    from randlora.analysis.landscape import landscape
    from randlora.analysis.rank_need import rank_need
    from randlora.analysis.runs import load_runs

    try:
        runs = load_runs(args.run_dirs, verify=not args.no_verify)
        samples = DEFAULT_SAMPLES[args.analysis] if args.max_samples is None else (args.max_samples or None)
        examples = task_examples(runs[0], args.split or DEFAULT_SPLIT[args.analysis], samples)
        formats = tuple(args.formats)
        if args.analysis == "rank-need":
            rank_need(runs, examples, args.out, args.ks, formats)
        elif args.analysis == "cka":
            cka(runs, examples, args.out, args.layers, formats)
        else:
            landscape(runs, examples, args.out, args.step, tuple(args.x_range), tuple(args.y_range), args.name,
                      formats)
    except (ValueError, FileNotFoundError) as error:
        print(f"analyze.py {args.analysis}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
