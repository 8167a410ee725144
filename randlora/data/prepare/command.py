"""What ``scripts/prepare_data.py`` does, as functions: prepare and/or check one benchmark's data.

Exit status: 0 all good; 1 a dataset could not be prepared or ``--check`` found problems (one line each);
2 bad arguments. Every failure is one line naming the dataset and what to do.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.error import URLError

from . import BENCHMARKS
from . import check as checks
from . import commonsense, vtab
from .download import DownloadError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prepare_data.py", description=__doc__.splitlines()[0])
    p.add_argument("benchmark", choices=BENCHMARKS)
    p.add_argument("--root", required=True, type=Path, help="where the prepared data goes (the task's root)")
    p.add_argument("--datasets", default=None,
                   help="comma-separated subset (few-shot datasets, VTAB tasks, or commonsense files/tasks)")
    p.add_argument("--check", action="store_true", help="only check ROOT against the expected sizes")
    p.add_argument("--skip-images", action="store_true", help="--check without opening every image")
    p.add_argument("--downloads", type=Path, default=None,
                   help="fewshot: raw downloads and hand-fetched sources, <DOWNLOADS>/<dataset> (default ROOT/_downloads)")
    p.add_argument("--no-download", action="store_true", help="fewshot: use only what is already in DOWNLOADS")
    p.add_argument("--archive", type=Path, default=None, help="vtab: NOAH's vtab-1k.zip to unpack into ROOT")
    p.add_argument("--base-url", default=commonsense.BASE_URL,
                   help="commonsense: where the LLM-Adapters files are served (default: the pinned commit)")
    return p


def _names(benchmark: str, datasets: str | None) -> list[str]:
    from ..fewshot import DATASETS
    from ..vtab import TASKS, get_task

    chosen = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else None
    if benchmark == "fewshot":
        for name in chosen or []:
            if name not in DATASETS:
                raise ValueError(f"--datasets: unknown few-shot dataset '{name}'; allowed: {', '.join(DATASETS)}")
        return chosen or list(DATASETS)
    if benchmark == "vtab":
        return [get_task(n).name for n in chosen] if chosen else list(TASKS)
    return [f.target for f in commonsense.select(chosen or None)]


def run_check(benchmark: str, root: Path, names: list[str], images: bool) -> list[str]:
    if benchmark == "fewshot":
        return checks.check_fewshot(root, names, images)
    if benchmark == "vtab":
        return checks.check_vtab(root, names, images)
    return commonsense.check(root, names)


def prepare(args: argparse.Namespace, names: list[str]) -> dict[str, str]:
    """Prepare what is asked; returns {name: one line} for what could not be prepared (all names when the
    benchmark failed as a whole)."""
    failures: dict[str, str] = {}
    if args.benchmark == "commonsense":
        try:
            for target, records in commonsense.prepare(args.root, names, args.base_url).items():
                print(f"commonsense: {target}: {records} records, verified")
        except (DownloadError, ValueError) as err:
            failures = dict.fromkeys(names, f"commonsense: {err}")
    elif args.benchmark == "vtab":
        try:
            placed = vtab.prepare(args.root, args.archive, names)
            print(f"vtab: unpacked {len(placed)} task folders into {args.root}" if placed else "vtab: nothing to unpack")
        except (FileNotFoundError, ValueError) as err:
            failures = dict.fromkeys(names, str(err))
    else:
        from tqdm import tqdm

        from .fewshot import prepare_one

        downloads = args.downloads or args.root / "_downloads"
        for name in names:
            try:
                manifest = prepare_one(name, args.root, downloads, download=not args.no_download,
                                       progress=lambda items, n=name: tqdm(items, desc=n, unit="img", leave=False))
                print(f"fewshot: {name}: {manifest['counts']} -> {args.root / name} "
                      f"(file list {manifest['file_list_sha256'][:12]})")
            except Exception as err:  # one line per dataset; the others still run
                hint = " (no network? torchvision could not download it)" if isinstance(err, URLError) else ""
                failures[name] = f"fewshot: {name}: {type(err).__name__}: {err}{hint}".replace("\n", " ")
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        names = _names(args.benchmark, args.datasets)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failures = {} if args.check else prepare(args, names)
    problems = run_check(args.benchmark, args.root, [n for n in names if n not in failures],
                         images=not args.skip_images)
    for line in [*dict.fromkeys(failures.values()), *problems]:
        print(line, file=sys.stderr)
    if failures or problems:
        return 1
    print(f"{args.benchmark}: {len(names)} checked under {args.root}, no problems")
    return 0
