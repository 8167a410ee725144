"""GLUE (the authors' `GLUE/` appendix runs): SST-2, MRPC, CoLA, QNLI, RTE, STS-B from `nyu-mll/glue`.

Data comes through `datasets`: the hub's `nyu-mll/glue` configs (`sst2`, `mrpc`, ...), or a local copy in the
hub's own layout (`<root>/<config>/{train,validation}-*.parquet`, e.g. from `huggingface-cli download
nyu-mll/glue --repo-type dataset`), read with `datasets`' parquet builder. GLUE's test labels are hidden, so, as
in the authors' `run_glue.py`, models train on `train` and are scored on `validation` (the final model, no
selection). Items are `(text or (text_a, text_b), label)`; STS-B labels are floats in [0, 5].

Metrics (`glue_metrics`, fractions; the authors' `evaluate.load("glue", task)`): accuracy everywhere a label is a
class; MRPC also F1 of the positive class (paraphrase = 1); CoLA Matthews correlation; STS-B Pearson and Spearman
correlation. The authors' tables report SST-2, MRPC, QNLI, RTE accuracy, CoLA Matthews and STS-B's mean of
Pearson and Spearman (`combined`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .common import ListDataset

HUB_ID = "nyu-mll/glue"


@dataclass(frozen=True)
class GlueTask:
    """Text columns, number of labels (1: regression), the metrics and the one the authors report."""

    name: str
    columns: tuple[str, ...]
    num_labels: int
    metrics: tuple[str, ...]
    reported: str


TASKS = {t.name: t for t in (
    GlueTask("sst2", ("sentence",), 2, ("acc",), "acc"),
    GlueTask("mrpc", ("sentence1", "sentence2"), 2, ("acc", "f1"), "acc"),
    GlueTask("cola", ("sentence",), 2, ("acc", "matthews"), "matthews"),
    GlueTask("qnli", ("question", "sentence"), 2, ("acc",), "acc"),
    GlueTask("rte", ("sentence1", "sentence2"), 2, ("acc",), "acc"),
    GlueTask("stsb", ("sentence1", "sentence2"), 1, ("pearson", "spearman", "combined"), "combined"),
)}


def get_task(name: str) -> GlueTask:
    if name not in TASKS:
        raise ValueError(f"task.dataset={name!r} is not a GLUE task here; allowed: {', '.join(TASKS)}")
    return TASKS[name]


def _rank(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their mean rank (as Spearman's correlation needs)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; 0 when either side is constant."""
    x, y = np.asarray(x, dtype=float) - np.mean(x), np.asarray(y, dtype=float) - np.mean(y)
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0


def glue_metrics(task: str, predictions: Sequence[float], labels: Sequence[float]) -> dict[str, float]:
    """The task's metrics from predictions (class ids, or scores for STS-B) and gold labels."""
    spec = get_task(task)
    p, y = np.asarray(predictions, dtype=float), np.asarray(labels, dtype=float)
    out: dict[str, float] = {}
    if "acc" in spec.metrics:
        out["acc"] = float((p == y).mean())
    if "f1" in spec.metrics:
        tp, fp, fn = ((p == 1) & (y == 1)).sum(), ((p == 1) & (y == 0)).sum(), ((p == 0) & (y == 1)).sum()
        out["f1"] = float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0
    if "matthews" in spec.metrics:
        tp, tn = ((p == 1) & (y == 1)).sum(), ((p == 0) & (y == 0)).sum()
        fp, fn = ((p == 1) & (y == 0)).sum(), ((p == 0) & (y == 1)).sum()
        denominator = np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
        out["matthews"] = float((tp * tn - fp * fn) / denominator) if denominator > 0 else 0.0
    if "pearson" in spec.metrics:
        out["pearson"] = pearson(p, y)
        out["spearman"] = pearson(_rank(p), _rank(y))
        out["combined"] = (out["pearson"] + out["spearman"]) / 2
    return out


def _load_split(config: str, split: str, root: str | None) -> Any:
    """One split through `datasets`: the local hub-layout parquet files under `root`, else the hub."""
    import datasets

    if root is None:
        return datasets.load_dataset(HUB_ID, config, split=split)
    files = sorted((Path(root).expanduser() / config).glob(f"{split}-*.parquet"))
    if not files:
        raise FileNotFoundError(f"task.root={root!r} has no {config}/{split}-*.parquet (the layout of the hub's "
                                f"{HUB_ID}; download it with `huggingface-cli download {HUB_ID} --repo-type dataset`)")
    return datasets.load_dataset("parquet", data_files={split: [str(f) for f in files]}, split=split)


def load_splits(name: str, root: str | None = None, max_train_samples: int | None = None) -> dict[str, ListDataset]:
    """`train` and `validation` of GLUE task `name` as `(text or (a, b), label)` lists (test = validation)."""
    spec = get_task(name)
    out = {}
    for split in ("train", "validation"):
        table = _load_split(spec.name, split, root)
        missing = [c for c in (*spec.columns, "label") if c not in table.column_names]
        if missing:
            raise ValueError(f"GLUE {spec.name}/{split} lacks columns {missing}; found {table.column_names}")
        columns = [table[c] for c in spec.columns]
        texts = list(zip(*columns)) if len(columns) > 1 else list(columns[0])
        labels = [float(v) if spec.num_labels == 1 else int(v) for v in table["label"]]
        items = list(zip(texts, labels))
        out[split] = ListDataset(items[:max_train_samples] if split == "train" and max_train_samples else items)
    return out
