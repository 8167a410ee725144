"""VTAB-1k: 19 visual tasks with 1000 training images each, in the layout of the PEFT-for-ViT literature.

On disk (the NOAH / VPT release of VTAB-1k):

    <root>/<folder>/train800.txt          800 lines  "relative/path label"
    <root>/<folder>/val200.txt            200 lines
    <root>/<folder>/train800val200.txt    the 1000 training images (train800 + val200)
    <root>/<folder>/test.txt              the full test split
    <root>/<folder>/<relative/path>       the images (paths relative to the task folder)

``<folder>`` is the literature's folder name (``cifar`` for CIFAR-100; the others as the task name here).
Protocol: train on train800val200 and report test accuracy (``use_val=False``; val200 is then only a monitor
and overlaps the training data); for model selection, train on train800 and validate on val200
(``use_val=True``). Results are summarised by group (natural, specialized, structured) and overall.
A hub mirror is used instead when ``hub_id`` is set (splits ``train800val200``/``train800``/``val200``/``test``,
columns ``image`` and ``label``; config name = the task folder).
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from .images import HubImageDataset, ImageListDataset, Transform, load_hub_split, read_image_list

GROUPS = ("natural", "specialized", "structured")


@dataclass(frozen=True)
class VtabTask:
    """One VTAB-1k task: name used in configs, folder in the VTAB-1k release, group, number of classes."""

    name: str
    folder: str
    group: str
    num_classes: int


TASKS: dict[str, VtabTask] = {
    t.name: t
    for t in (
        VtabTask("cifar100", "cifar", "natural", 100),
        VtabTask("caltech101", "caltech101", "natural", 102),
        VtabTask("dtd", "dtd", "natural", 47),
        VtabTask("oxford_flowers102", "oxford_flowers102", "natural", 102),
        VtabTask("oxford_iiit_pet", "oxford_iiit_pet", "natural", 37),
        VtabTask("svhn", "svhn", "natural", 10),
        VtabTask("sun397", "sun397", "natural", 397),
        VtabTask("patch_camelyon", "patch_camelyon", "specialized", 2),
        VtabTask("eurosat", "eurosat", "specialized", 10),
        VtabTask("resisc45", "resisc45", "specialized", 45),
        VtabTask("diabetic_retinopathy", "diabetic_retinopathy", "specialized", 5),
        VtabTask("clevr_count", "clevr_count", "structured", 8),
        VtabTask("clevr_dist", "clevr_dist", "structured", 6),
        VtabTask("dmlab", "dmlab", "structured", 6),
        VtabTask("kitti", "kitti", "structured", 4),
        VtabTask("dsprites_loc", "dsprites_loc", "structured", 16),
        VtabTask("dsprites_ori", "dsprites_ori", "structured", 16),
        VtabTask("smallnorb_azi", "smallnorb_azi", "structured", 18),
        VtabTask("smallnorb_ele", "smallnorb_ele", "structured", 9),
    )
}
_ALIASES = {t.folder: t.name for t in TASKS.values()}  # "cifar" -> "cifar100"

SPLIT_FILES = ("train800.txt", "val200.txt", "train800val200.txt", "test.txt")


def get_task(name: str) -> VtabTask:
    """Look a task up by its name or its VTAB-1k folder name (``cifar`` = ``cifar100``)."""
    key = _ALIASES.get(name, name)
    if key not in TASKS:
        raise ValueError(f"unknown VTAB-1k task '{name}'; allowed: {', '.join(TASKS)}")
    return TASKS[key]


def class_names(name: str) -> list[str]:
    """VTAB-1k list files carry integer labels only: class names are ``"class 0"``, ``"class 1"``, ..."""
    return [f"class {i}" for i in range(get_task(name).num_classes)]


def split_files(use_val: bool) -> dict[str, str]:
    """Which list file feeds each split under the standard protocol (see module docstring)."""
    train = "train800.txt" if use_val else "train800val200.txt"
    return {"train": train, "val": "val200.txt", "test": "test.txt"}


def task_dir(root: str | os.PathLike, name: str) -> Path:
    """``<root>/<folder>``, checked to exist with the list files; errors name the path and expected files."""
    task = get_task(name)
    root = Path(root)
    expected = f"{root}/{task.folder}/{{{', '.join(SPLIT_FILES)}}} plus the images they list"
    if not root.is_dir():
        raise FileNotFoundError(f"VTAB-1k root does not exist: {root} (expected {expected})")
    folder = root / task.folder
    if not folder.is_dir():
        raise FileNotFoundError(f"VTAB-1k task folder not found: {folder} (expected {expected})")
    return folder


def load_split(root: str | os.PathLike, name: str, split: str, use_val: bool = False,
               transform: Transform | None = None) -> ImageListDataset:
    """One split (``train``, ``val`` or ``test``) of a VTAB-1k task from the on-disk release."""
    files = split_files(use_val)
    if split not in files:
        raise ValueError(f"unknown VTAB-1k split '{split}'; allowed: {', '.join(files)}")
    folder = task_dir(root, name)
    list_file = folder / files[split]
    if not list_file.is_file():
        present = sorted(p.name for p in folder.glob("*.txt"))
        raise FileNotFoundError(
            f"VTAB-1k list file not found: {list_file} (split '{split}' with use_val={use_val}); "
            f"expected {', '.join(SPLIT_FILES)} in {folder}, found {present or 'none'}"
        )
    samples = read_image_list(list_file, folder, num_classes=get_task(name).num_classes)
    return ImageListDataset(samples, transform)


_HUB_SPLITS = {"train800.txt": "train800", "val200.txt": "val200", "train800val200.txt": "train800val200",
               "test.txt": "test"}


def load_hub(hub_id: str, name: str, split: str, use_val: bool = False,
             transform: Transform | None = None) -> HubImageDataset:
    """One split of a VTAB-1k task from a hub mirror (config = task folder name). Needs network access."""
    hub_split = _HUB_SPLITS[split_files(use_val)[split]]
    data = load_hub_split(hub_id, hub_split, name=get_task(name).folder)
    return HubImageDataset(data, hub_id, transform)


def hub_id_for(name: str, hub_id: Any) -> str | None:
    """The hub mirror of task ``name``: a map ``{task: repo id}`` gives the task's entry (none when absent; keys
    are task or folder names, unknown keys refused); one repo id is a multi-config mirror whose config is the
    task folder, used for every task."""
    if hub_id is None or isinstance(hub_id, str):
        return hub_id
    by_task = {}
    for key, value in hub_id.items():
        by_task[get_task(key).name] = value  # raises on an unknown task name
    return by_task.get(get_task(name).name)


def load_splits(name: str, root: str | os.PathLike | None = None, hub_id: str | None = None,
                use_val: bool = False, train_transform: Transform | None = None,
                eval_transform: Transform | None = None) -> dict[str, Dataset]:
    """``{"train", "val", "test"}`` datasets of one task, from the hub mirror ``hub_id`` when given, else ``root``."""
    hub_id = hub_id_for(name, hub_id)
    if root is None and hub_id is None:
        raise ValueError("VTAB-1k needs task.root (a local VTAB-1k folder) or task.hub_id (a hub mirror)")
    transforms = {"train": train_transform, "val": eval_transform, "test": eval_transform}
    if hub_id is not None:
        return {s: load_hub(hub_id, name, s, use_val, t) for s, t in transforms.items()}
    return {s: load_split(root, name, s, use_val, t) for s, t in transforms.items()}


def group_means(per_task_acc: Mapping[str, float]) -> dict[str, float]:
    """Summarise per-task accuracies the way VTAB-1k tables do.

    Returns the mean of each group that has at least one task (``natural``, ``specialized``, ``structured``),
    ``overall`` = mean over all given tasks, and, when all three groups are present, ``group_average`` = mean of
    the three group means (some papers report that instead). Tasks may be named by name or folder; unknown
    names and NaN values raise ``ValueError``; absent tasks are simply not counted (never as 0).
    """
    by_group: dict[str, list[float]] = {g: [] for g in GROUPS}
    for name, acc in per_task_acc.items():
        value = float(acc)
        if math.isnan(value):
            raise ValueError(f"group_means: accuracy of '{name}' is NaN")
        by_group[get_task(name).group].append(value)
    if not any(by_group.values()):
        raise ValueError("group_means: no task accuracies given")
    means = {g: sum(v) / len(v) for g, v in by_group.items() if v}
    all_values = [v for values in by_group.values() for v in values]
    means["overall"] = sum(all_values) / len(all_values)
    if all(by_group.values()):
        means["group_average"] = sum(means[g] for g in GROUPS) / len(GROUPS)
    return means
