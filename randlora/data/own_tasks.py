"""The user's own data, no code needed: ``task=imagefolder``, ``task=text``, ``task=instruction``.

Config fields (``configs/task/<name>.yaml``; defaults after ``=``, "required" has none):

imagefolder (any ImageFolder tree; see ``fewshot.load_folder_splits``)
    root                   required  folder with train/ and test/ (optional val/) holding <class>/<images>
    shots=null, fraction=null, sample_seed=0, min_iterations=10, batch_size, val_per_class=0   as fewshot
    class names: ``<root>/classnames.txt`` (line i names sorted class folder i) or the folder names
text (see ``randlora.data.text``)
    path                   required  .csv, .tsv, .jsonl or .json file; or hub_id (a hub dataset) instead
    text_column=text, label_column=label, class_names=null (null: the sorted distinct labels), encoding=utf-8
    test_path=null, val_path=null    separate files; else test_size / val_size items are cut from path
    train_size=null (the rest), val_size, test_size, split_seed=0
instruction (see ``randlora.data.instruction``)
    train_path             required  LLM-Adapters JSON (list or lines); test_path=null
    answer=words|regex|exact, answer_words=null, answer_regex=null   how answers are extracted and compared
    cutoff_len=256, max_eval_samples=null, val_size=120, split_seed=42, train_on_inputs=false
"""
from __future__ import annotations

from typing import Any

from . import commonsense, fewshot, instruction, text
from .common import ListDataset, as_list, cfg_get
from .images import load_hub_split
from .manifest import files_hash


def imagefolder_info(cfg: Any) -> Any:
    from . import TaskInfo

    names = fewshot.folder_class_names(_root(cfg))
    return TaskInfo(len(names), names)


def _root(cfg: Any) -> Any:
    root = cfg_get(cfg, "root", None)
    if root is None:
        raise ValueError("task imagefolder needs task.root=DIR (DIR/train/<class>/<images>, DIR/test/...)")
    return root


def imagefolder_build(cfg: Any, backbone: Any) -> Any:
    from . import TaskData

    shots, fraction = cfg_get(cfg, "shots", None), cfg_get(cfg, "fraction", None)
    fewshot.check_regime(shots, fraction)
    splits = fewshot.load_folder_splits(
        _root(cfg), shots=shots, fraction=fraction, sample_seed=cfg_get(cfg, "sample_seed", 0),
        min_iterations=cfg_get(cfg, "min_iterations", 10), batch_size=cfg_get(cfg, "batch_size", 128),
        val_per_class=cfg_get(cfg, "val_per_class", 0),
        train_transform=getattr(backbone, "train_transform", None),
        eval_transform=getattr(backbone, "eval_transform", None))
    info = imagefolder_info(cfg)
    return TaskData(splits["train"], splits["val"], splits["test"], info.num_classes, info.class_names,
                    extras={"val_is_test": splits["val"] is splits["test"], "data_manifest": splits["manifest"]})


# ------------------------------------------------------------------------------------------------ text

def _text_splits(cfg: Any) -> tuple[dict[str, ListDataset], list[str]]:
    columns = {"text_column": cfg_get(cfg, "text_column", "text"), "label_column": cfg_get(cfg, "label_column", "label")}
    hub_id, path = cfg_get(cfg, "hub_id", None), cfg_get(cfg, "path", None)
    if hub_id is not None:
        return _hub_text_splits(hub_id, **columns)
    if path is None:
        raise ValueError("task text needs task.path=FILE (.csv/.tsv/.jsonl/.json) or task.hub_id")
    return text.load_splits(path, class_names=as_list(cfg_get(cfg, "class_names", None)),
                            train_size=cfg_get(cfg, "train_size", None), val_size=cfg_get(cfg, "val_size", 0),
                            test_size=cfg_get(cfg, "test_size", 0), split_seed=cfg_get(cfg, "split_seed", 0),
                            val_path=cfg_get(cfg, "val_path", None), test_path=cfg_get(cfg, "test_path", None),
                            encoding=cfg_get(cfg, "encoding", "utf-8"), **columns)


def _hub_text_splits(hub_id: str, text_column: str, label_column: str) -> tuple[dict[str, ListDataset], list[str]]:
    """A hub dataset with ``train`` and ``test`` splits (``validation`` if present) and a ClassLabel column."""
    parts = {}
    for split, hub_split in (("train", "train"), ("test", "test"), ("val", "validation")):
        try:
            parts[split] = load_hub_split(hub_id, hub_split)
        except RuntimeError:
            if split != "val":
                raise
    feature = parts["train"].features.get(label_column)
    names = list(feature.names) if hasattr(feature, "names") else \
        [str(i) for i in range(max(parts["train"][label_column]) + 1)]
    out = {s: ListDataset(list(zip(d[text_column], map(int, d[label_column])))) for s, d in parts.items()}
    out.setdefault("val", out["test"])
    return out, names


def text_info(cfg: Any) -> Any:
    from . import TaskInfo

    _, names = _text_splits(cfg)
    return TaskInfo(len(names), names)


def text_build(cfg: Any, backbone: Any) -> Any:
    from . import TaskData

    splits, names = _text_splits(cfg)
    if not len(splits["val"]):
        splits["val"] = splits["test"]
    baseline = text.majority_baseline([label for _, label in splits["train"].items],
                                      [label for _, label in splits["test"].items])
    read = [p for p in (cfg_get(cfg, "path", None), cfg_get(cfg, "val_path", None), cfg_get(cfg, "test_path", None))
            if p is not None and cfg_get(cfg, "hub_id", None) is None]
    return TaskData(splits["train"], splits["val"], splits["test"], len(names), names,
                    collate=getattr(backbone, "collate", None),
                    extras={"majority_baseline": baseline, "val_is_test": splits["val"] is splits["test"],
                            "data_manifest": files_hash(read) if read else None})


# ----------------------------------------------------------------------------------------- instruction

def instruction_info(cfg: Any) -> Any:
    from . import TaskInfo

    return TaskInfo(None, None)


def instruction_build(cfg: Any, backbone: Any) -> Any:
    from . import TaskData

    train_path, test_path = cfg_get(cfg, "train_path", None), cfg_get(cfg, "test_path", None)
    if train_path is None:
        raise ValueError("task instruction needs task.train_path=FILE (LLM-Adapters JSON records)")
    test_records = instruction.load_records(test_path) if test_path is not None else None
    extract = instruction.build_extractor(cfg_get(cfg, "answer", "words"),
                                          as_list(cfg_get(cfg, "answer_words", None)),
                                          cfg_get(cfg, "answer_regex", None), test_records)
    records = instruction.with_gold_answers(instruction.load_records(train_path), extract, train_path)
    train_records, val_records = commonsense.split_train_val(records, cfg_get(cfg, "val_size", 120),
                                                             cfg_get(cfg, "split_seed", 42))
    test = None
    if test_records is not None:
        limit = cfg_get(cfg, "max_eval_samples", None)
        test = commonsense.CommonsenseDataset(
            instruction.with_gold_answers(test_records[:limit] if limit else test_records, extract, test_path))
    tokenizer = getattr(backbone, "tokenizer", None)
    collate = None if tokenizer is None else commonsense.CausalLMCollator(
        tokenizer, cfg_get(cfg, "cutoff_len", 256), bool(cfg_get(cfg, "train_on_inputs", False)), extract=extract)
    read = [train_path] + ([test_path] if test_path is not None else [])
    return TaskData(commonsense.CommonsenseDataset(train_records), commonsense.CommonsenseDataset(val_records),
                    test, None, None, collate=collate, extras={"data_manifest": files_hash(read)},
                    answer_extractor=lambda subtask: extract)
