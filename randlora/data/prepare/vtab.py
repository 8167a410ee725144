"""``prepare_data.py vtab``: VTAB-1k in the layout the PEFT-for-ViT literature distributes.

Source: NOAH's ``vtab-1k.zip`` (github.com/ZhangYuanhan-AI/NOAH, "Data Preparation": a Google Drive link;
the same archive VPT/NOAH/FacT/SPT use). It holds ``vtab-1k/<task>/{train800,val200,train800val200,test}.txt``
plus the images. ``prepare`` unpacks it (torchvision's ``extract_archive``) into a temporary folder under
``root`` and moves each task folder into ``root`` only once the whole archive is out, then checks it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ..manifest import write_manifest
from ..vtab import SPLIT_FILES, TASKS, get_task

OBTAIN = ("VTAB-1k: download vtab-1k.zip as linked from github.com/ZhangYuanhan-AI/NOAH (Data Preparation), "
          "then run: python scripts/prepare_data.py vtab --root DIR --archive vtab-1k.zip")


def _task_parent(unpacked: Path) -> Path:
    """The folder that holds the task folders (``vtab-1k/`` inside the archive, or the archive's top)."""
    for candidate in (unpacked / "vtab-1k", unpacked):
        if any((candidate / t.folder / "test.txt").is_file() for t in TASKS.values()):
            return candidate
    raise FileNotFoundError(f"no VTAB-1k task folders (<task>/test.txt) in the unpacked archive at {unpacked}")


def write_task_manifest(folder: Path) -> dict:
    """``<task>/manifest.json``: lines and sha256 of each list file (a run records ``files_hash`` of those it read)."""
    lists = {}
    for name in SPLIT_FILES:
        path = folder / name
        if path.is_file():
            data = path.read_bytes()
            lists[name] = {"lines": sum(1 for line in data.splitlines() if line.strip()),
                           "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {"benchmark": "vtab-1k", "task": folder.name, "lists": lists}
    write_manifest(folder, manifest)
    return manifest


def prepare(root: str | os.PathLike, archive: str | os.PathLike | None, names: list[str]) -> list[str]:
    """Unpack ``archive`` into ``root``; returns the task folders placed. Without an archive, nothing is
    unpacked (the root is only checked) and a missing task raises ``FileNotFoundError`` with where to get it."""
    root = Path(root)
    if archive is None:
        missing = [n for n in names if not (root / get_task(n).folder).is_dir()]
        if missing:
            raise FileNotFoundError(f"vtab: {', '.join(missing)} not under {root}. {OBTAIN}")
        return []
    from torchvision.datasets.utils import extract_archive

    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(f"vtab: archive not found: {archive}. {OBTAIN}")
    root.mkdir(parents=True, exist_ok=True)
    unpacked = root / ".vtab-unpacking"
    shutil.rmtree(unpacked, ignore_errors=True)
    try:
        extract_archive(str(archive), str(unpacked))
        parent = _task_parent(unpacked)
        placed = []
        for name in names:
            folder = get_task(name).folder
            if not (parent / folder).is_dir():
                raise FileNotFoundError(f"vtab: task folder '{folder}' is not in {archive}")
            target = root / folder
            if target.exists():
                shutil.rmtree(target)
            os.replace(parent / folder, target)
            write_task_manifest(target)
            placed.append(folder)
        return placed
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
