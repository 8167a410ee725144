"""What a run's data and network settings need, checked without loading anything: names, files and folders.

:func:`input_problems` returns every problem it finds (an empty list when there is none), so the training entry
point can report them together in one message before any model is loaded or any run folder is made. Each
problem names the key, the bad value and what would be right. The loaders check the same things again when
they run (and more: file contents); this is the cheap first pass.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import commonsense, fewshot, tweets, vtab
from .common import as_list, cfg_get

# Tasks that only make sense with one kind of network: task name -> (backbone family, the option to pick).
TASK_BACKBONES = {"synthetic_fullrank": ("synthetic", "backbone=synthetic_mlp")}
# The datasets of tasks that need ``task.dataset``.
TASK_DATASETS = {"fewshot": list(fewshot.DATASETS), "vtab": list(vtab.TASKS)}


def _dataset_problems(task: str, task_cfg: Any) -> list[str]:
    names = TASK_DATASETS[task]
    dataset = cfg_get(task_cfg, "dataset", None)
    if dataset is None:
        return [f"task.dataset is missing: task={task} needs one of its {len(names)} datasets "
                f"({', '.join(names)}), e.g. task.dataset={names[0]}"]
    try:
        (fewshot.get_dataset if task == "fewshot" else vtab.get_task)(str(dataset))
    except ValueError:
        return [f"task.dataset={dataset!r} is not a {task} dataset: choose one of {', '.join(names)}"]
    if cfg_get(task_cfg, "hub_id", None) is not None:
        return []
    root = cfg_get(task_cfg, "root", None)
    if root is None:
        return [f"task.root is null and task.hub_id is null: task={task} needs one of them"]
    try:
        if task == "fewshot":
            fewshot.dataset_dir(root, str(dataset))
        else:
            vtab.task_dir(root, str(dataset))
    except FileNotFoundError as error:
        return [f"task.root={str(root)!r}: {error}"]
    return []


# Files and folders a task reads: task -> [(key, "file" | "dir", required, what it should be)].
TASK_PATHS: dict[str, list[tuple[str, str, bool, str]]] = {
    "tweets": [("path", "file", False, f"a tweet CSV with columns {', '.join(tweets.COLUMNS)}; null uses the "
                                      "bundled corpus")],
    "commonsense": [("train_path", "file", False, "commonsense_15k.json or commonsense_170k.json of LLM-Adapters, "
                                                  "or a list of training files"),
                    ("test_root", "dir", False, "<task>/test.json per task")],
    "imagefolder": [("root", "dir", True, "a folder holding train/<class>/ and test/<class>/")],
    "text": [("path", "file", False, "a .csv, .tsv, .jsonl or .json file"), ("test_path", "file", False, "a file"),
             ("val_path", "file", False, "a file")],
    "instruction": [("train_path", "file", True, "a JSON list or JSON lines file"),
                    ("test_path", "file", False, "a JSON list or JSON lines file")],
}


def _file_problems(task: str, task_cfg: Any) -> list[str]:
    problems = []
    for key, kind, required, what in TASK_PATHS.get(task, []):
        value = cfg_get(task_cfg, key, None)
        if value is None:
            if required:
                problems.append(f"task.{key} is missing: task={task} needs it ({what})")
            continue
        for item in as_list(value):  # commonsense's train_path may list several files (mixed)
            exists = Path(str(item)).is_file() if kind == "file" else Path(str(item)).is_dir()
            if not exists:
                problems.append(f"task.{key}={str(item)!r}: no such {'file' if kind == 'file' else 'folder'} ({what})")
    if task == "commonsense":
        unknown = [t for t in as_list(cfg_get(task_cfg, "tasks", None)) or [] if t not in commonsense.TASKS]
        if unknown:
            problems.append(f"task.tasks={unknown} are not commonsense tasks: choose from "
                            f"{', '.join(commonsense.TASKS)}")
    return problems


def _backbone_problems(task: str, backbone_cfg: Any) -> list[str]:
    family = cfg_get(backbone_cfg, "family", None)
    needed = TASK_BACKBONES.get(task)
    if needed is not None and family != needed[0]:
        return [f"task={task} needs its own network: add {needed[1]} (or use experiment=offline_synthetic); "
                f"backbone.family={family!r} cannot be trained on it"]
    owners = [name for name, (kind, _) in TASK_BACKBONES.items() if kind == family]
    if needed is None and owners:
        return [f"backbone.family={family!r} is the network of task={owners[0]} only; got task={task}"]
    return []  # backbone.path is the backbones' own check (randlora.backbones.config.path_problems)


def input_problems(task_cfg: Any, backbone_cfg: Any) -> list[str]:
    """Every problem with the task's names, files and folders and with the network chosen for it."""
    task = cfg_get(task_cfg, "name", None)
    problems = _backbone_problems(task, backbone_cfg)
    if task in TASK_DATASETS:
        problems += _dataset_problems(task, task_cfg)
    return problems + _file_problems(task, task_cfg)
