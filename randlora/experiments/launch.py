"""Run the cells of a table or figure that have no ok result yet, as few ``python train.py -m`` sweeps as possible.

Hydra sweeps the cartesian product of comma lists, so pending cells are grouped by everything but their dataset
and seed (:data:`~randlora.experiments.cells.SWEPT_KEYS`), and datasets needing the same seeds share one sweep:
``train.py -m experiment=fig3_clip/lora backbone=clip_vitb32 task.shots=1 task.fraction=null task.dataset=dtd,
eurosat seed=0,1,2``. The launcher decides where the jobs run: ``local`` one after the other, ``joblib`` in
parallel processes here, ``slurm`` one SLURM job each (``configs/hydra/launcher/slurm_gpu.yaml``). A sweep with a
failed job goes on (the failure is a failed result, re-run next time); the launch reports it at the end.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Sequence

from randlora.experiments.cells import SWEPT_KEYS, Cell

LAUNCHERS = {"local": (), "joblib": ("hydra/launcher=joblib",), "slurm": ("hydra/launcher=slurm_gpu",)}


def _split(overrides: Sequence[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """(overrides that are not swept, {swept key: value})."""
    fixed, swept = [], {}
    for override in overrides:
        key, _, value = override.partition("=")
        (swept.__setitem__(key, value) if key in SWEPT_KEYS else fixed.append(override))
    return tuple(fixed), swept


def sweeps(cells: Sequence[Cell]) -> list[tuple[str, ...]]:
    """The ``train.py -m`` override lists that run exactly ``cells`` (each once), in the cells' order."""
    groups: dict[tuple[str, ...], dict[str | None, list[str]]] = {}
    for cell in cells:
        fixed, swept = _split(cell.overrides)
        seeds = groups.setdefault(fixed, {}).setdefault(swept.get("task.dataset"), [])
        if "seed" in swept and swept["seed"] not in seeds:
            seeds.append(swept["seed"])
    out = []
    for fixed, by_dataset in groups.items():
        by_seeds: dict[tuple[str, ...], list[str | None]] = {}
        for dataset, seeds in by_dataset.items():
            by_seeds.setdefault(tuple(seeds), []).append(dataset)
        for seeds, datasets in by_seeds.items():
            swept = [f"task.dataset={','.join(datasets)}"] if datasets != [None] else []
            out.append(fixed + tuple(swept) + ((f"seed={','.join(seeds)}",) if seeds else ()))
    return out


def launch(cells: Sequence[Cell], launcher: str, runs_dir: Path, repo_root: Path,
           launcher_overrides: Sequence[str] = ()) -> int:
    """Run ``cells`` through ``train.py -m``; returns the number of sweeps that reported a failed job."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"--launcher {launcher!r} is not known; allowed: {', '.join(LAUNCHERS)}")
    failed = 0
    for overrides in sweeps(cells):
        command = [sys.executable, str(repo_root / "train.py"), "-m", *LAUNCHERS[launcher], *launcher_overrides,
                   f"paths.runs_dir={runs_dir}", *overrides]
        print("+ python train.py -m " + " ".join(command[3:]), flush=True)
        if subprocess.run(command, cwd=repo_root).returncode != 0:
            failed += 1
            print("  a job of this sweep failed: it is recorded as failed and re-run next time", flush=True)
    return failed
