"""The paper's 22 image-classification datasets (PAPER.md §4) in few-shot and data-fraction regimes.

Local layout (ImageFolder style):

    <root>/<dataset>/train/<class>/<image files>
    <root>/<dataset>/test/<class>/<image files>
    <root>/<dataset>/val/<class>/<image files>      optional

Class names (``task.class_names``): ``curated`` are the authors' names of ``randlora.data.classnames`` and need
the prepared layout, class i in folder ``classnames.class_folder(dataset, i)`` ("000.<name>"); ``folders`` are
the folder names with "_" shown as " "; ``auto`` (default) takes the curated names when the folders are the
prepared layout and the folder names otherwise.

or, when ``hub_id`` is set, a hub dataset (``datasets.load_dataset(hub_id)`` with ``train``/``test`` splits,
``image`` and ``label`` columns).

Regimes (exactly one of):
- ``shots=k``: k training images per class, drawn with ``random.Random(sample_seed)`` from the sorted listing
  (a class with fewer than k images contributes all of them). The sample is then repeated whole so one epoch has
  at least ``min_iterations * batch_size`` items (the paper: "at least 10 iterations" per epoch, batch 128).
- ``fraction=f`` (0 < f <= 1): ``round(f * n_c)`` (at least 1) seeded images of each class c
  (``fraction_sampling=per_class``), or ``int(f * n)`` images of one seeded ``random_split`` of the whole set
  (``random_split``, the authors'); f = 1 keeps all.
Neither set means the full training split. Validation: the ``val/`` folder if present; otherwise, with
``val_per_class > 0``, that many seeded training images per class held out before sampling; otherwise the test
split (the paper has no validation data and reports test accuracy after a fixed number of epochs, so with
``val = test`` use the final, not the best, checkpoint).
"""
from __future__ import annotations

import os
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from . import classnames as curated
from .common import oversample
from .images import HubImageDataset, ImageListDataset, Transform, list_class_folders, load_hub_split, scan_image_folder
from .manifest import file_list_hash, read_class_names, split_entries

FEWSHOT_EPOCHS = 10
"""Epochs of every few-shot run in the paper."""


@dataclass(frozen=True)
class FewshotDataset:
    """One of the paper's 22 datasets: config name, where to get it, and the paper's full-data epochs."""

    name: str
    source: str
    full_data_epochs: int


DATASETS: dict[str, FewshotDataset] = {
    d.name: d
    for d in (
        FewshotDataset("cars", "torchvision.datasets.StanfordCars", 35),
        FewshotDataset("dtd", "torchvision.datasets.DTD", 76),
        FewshotDataset("eurosat", "torchvision.datasets.EuroSAT", 13),
        FewshotDataset("gtsrb", "torchvision.datasets.GTSRB", 11),
        FewshotDataset("mnist", "torchvision.datasets.MNIST", 5),
        FewshotDataset("resisc45", "NWPU-RESISC45 (tensorflow_datasets 'resisc45')", 15),
        FewshotDataset("sun397", "torchvision.datasets.SUN397", 14),
        FewshotDataset("svhn", "torchvision.datasets.SVHN", 4),
        FewshotDataset("cifar10", "torchvision.datasets.CIFAR10", 5),
        FewshotDataset("cifar100", "torchvision.datasets.CIFAR100", 6),
        FewshotDataset("stl10", "torchvision.datasets.STL10", 4),
        FewshotDataset("food101", "torchvision.datasets.Food101", 15),
        FewshotDataset("caltech256", "torchvision.datasets.Caltech256", 8),
        FewshotDataset("fgvc_aircraft", "torchvision.datasets.FGVCAircraft", 60),
        FewshotDataset("flowers102", "torchvision.datasets.Flowers102", 40),
        FewshotDataset("oxford_pets", "torchvision.datasets.OxfordIIITPet", 5),
        FewshotDataset("cub200", "CUB-200-2011 (Caltech-UCSD Birds)", 20),
        FewshotDataset("pascal_voc", "torchvision.datasets.VOCDetection (2007, one label per object crop)", 10),
        FewshotDataset("country211", "torchvision.datasets.Country211", 15),
        FewshotDataset("caltech101", "torchvision.datasets.Caltech101", 10),
        FewshotDataset("ucf101", "UCF101 middle frames (CoOp split)", 20),
        FewshotDataset("imagenet", "torchvision.datasets.ImageNet", 10),
    )
}
SHOTS = (1, 2, 4, 16)
FRACTIONS = (0.5, 1.0)


def get_dataset(name: str) -> FewshotDataset:
    key = name.lower()
    if key not in DATASETS:
        raise ValueError(f"unknown few-shot dataset '{name}'; allowed: {', '.join(DATASETS)}")
    return DATASETS[key]


def paper_epochs(name: str, shots: int | None) -> int:
    """Epochs the paper trains for: 10 in few-shot regimes, the per-dataset number with 50% or 100% data."""
    return FEWSHOT_EPOCHS if shots else get_dataset(name).full_data_epochs


def check_regime(shots: int | None, fraction: float | None) -> None:
    """``shots`` and ``fraction`` are exclusive; shots >= 1, 0 < fraction <= 1."""
    if shots is not None and fraction is not None:
        raise ValueError(
            f"task.shots={shots} and task.fraction={fraction} are both set; set one of them (shots: "
            f"{'/'.join(map(str, SHOTS))} images per class, or fraction: {'/'.join(map(str, FRACTIONS))}) "
            f"and the other to null"
        )
    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
        raise ValueError(f"task.shots must be a positive integer (paper: {SHOTS}), got {shots!r}")
    if fraction is not None and not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"task.fraction must be in (0, 1] (paper: {FRACTIONS}), got {fraction!r}")


def prompt_name(folder: str) -> str:
    """Class name for CLIP prompts from a folder name: underscores become spaces."""
    return folder.replace("_", " ").strip()


# ---------------------------------------------------------------------------------------------- sampling


def _by_class(labels: Sequence[int]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        groups[int(label)].append(index)
    return dict(sorted(groups.items()))


def sample_shots(labels: Sequence[int], shots: int, seed: int) -> list[int]:
    """Indices of ``shots`` seeded samples per class (all of a class that has fewer), in class order."""
    rng = random.Random(seed)
    chosen: list[int] = []
    for members in _by_class(labels).values():
        chosen.extend(sorted(rng.sample(members, min(shots, len(members)))))
    return chosen


def sample_fraction(labels: Sequence[int], fraction: float, seed: int) -> list[int]:
    """Indices of ``round(fraction * n_c)`` (at least 1) seeded samples of each class c; all when fraction = 1."""
    if fraction >= 1:
        return list(range(len(labels)))
    rng = random.Random(seed)
    chosen: list[int] = []
    for members in _by_class(labels).values():
        chosen.extend(sorted(rng.sample(members, max(1, round(fraction * len(members))))))
    return chosen


FRACTION_SAMPLINGS = ("per_class", "random_split")


def sample_fraction_random_split(num_samples: int, fraction: float, seed: int) -> list[int]:
    """The authors' fraction (atlas's ``subsample``): ``torch.utils.data.random_split`` of the whole training
    set into ``int(fraction · n)`` and the rest with ``torch.Generator().manual_seed(seed)``; the first part,
    sorted. Classes are not balanced (a class may lose more or less than ``fraction`` of its images)."""
    import torch

    if fraction >= 1:
        return list(range(num_samples))
    keep = int(num_samples * fraction)
    order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[:keep])


def hold_out(labels: Sequence[int], per_class: int, seed: int) -> tuple[list[int], list[int]]:
    """Split indices into (rest, held_out) with ``per_class`` seeded held-out samples of each class
    (classes keep at least one training sample)."""
    rng = random.Random(seed + 7919)  # independent of the training sample drawn with ``seed``
    rest: list[int] = []
    held: list[int] = []
    for members in _by_class(labels).values():
        take = set(rng.sample(members, min(per_class, len(members) - 1)))
        held.extend(i for i in members if i in take)
        rest.extend(i for i in members if i not in take)
    return sorted(rest), sorted(held)


def select_training_indices(labels: Sequence[int], shots: int | None, fraction: float | None, seed: int,
                            min_length: int = 0, fraction_sampling: str = "per_class") -> list[int]:
    """The training indices of a regime (see module docstring), oversampled to ``min_length`` for shots.

    ``fraction_sampling``: ``per_class`` (round(f·n_c) of each class) or ``random_split`` (the authors': one
    seeded random subset of int(f·n) images of the whole set)."""
    check_regime(shots, fraction)
    if fraction_sampling not in FRACTION_SAMPLINGS:
        raise ValueError(f"task.fraction_sampling={fraction_sampling!r}; allowed: {', '.join(FRACTION_SAMPLINGS)}")
    if shots is not None:
        return oversample(sample_shots(labels, shots, seed), min_length)
    fraction = fraction if fraction is not None else 1.0
    if fraction_sampling == "random_split":
        return sample_fraction_random_split(len(labels), fraction, seed)
    return sample_fraction(labels, fraction, seed)


# ----------------------------------------------------------------------------------------------- loading


def dataset_dir(root: str | os.PathLike, name: str) -> Path:
    """``<root>/<dataset>`` with its ``train`` and ``test`` folders checked; errors name the expected layout."""
    get_dataset(name)
    root = Path(root)
    folder = root / name
    expected = f"{folder}/train/<class>/<images> and {folder}/test/<class>/<images>"
    if not root.is_dir():
        raise FileNotFoundError(f"few-shot data root does not exist: {root} (expected {expected})")
    for split in ("train", "test"):
        if not (folder / split).is_dir():
            raise FileNotFoundError(f"few-shot split folder not found: {folder / split} (expected {expected})")
    return folder


def local_class_folders(root: str | os.PathLike, name: str) -> list[str]:
    """Class folder names of the training split (sorted); label i is folder i."""
    return list_class_folders(dataset_dir(root, name) / "train")


def folder_class_names(folder: str | os.PathLike) -> list[str]:
    """Class names of an ImageFolder dataset ``folder/{train,test}``: its ``classnames.txt`` (line i names
    sorted class folder i; what ``prepare_data.py`` writes) or else the folder names with "_" shown as " "."""
    classes = list_class_folders(Path(folder) / "train")
    return read_class_names(folder, classes) or [prompt_name(f) for f in classes]


def hub_class_names(hub_id: str) -> list[str]:
    """Class names from a hub dataset's ``label`` feature, without downloading the data."""
    try:
        import datasets

        features = datasets.load_dataset_builder(hub_id).info.features
    except Exception as err:
        raise RuntimeError(f"could not read the features of hub dataset '{hub_id}': {type(err).__name__}: {err}. "
                           f"Use a local copy instead (task.root=...).") from err
    for key in ("label", "labels", "fine_label"):
        if features is not None and key in features and hasattr(features[key], "names"):
            return list(features[key].names)
    raise ValueError(f"hub dataset '{hub_id}' has no ClassLabel 'label' feature to take class names from")


def hub_id_for(name: str, hub_id: Any) -> str | None:
    """The hub mirror of dataset ``name``: ``hub_id`` is null, a map ``{dataset: repo id}`` (the entry of
    ``name``, none when absent) or one repo id, accepted only if its name contains the dataset's name (so one
    id cannot silently serve every dataset of a sweep). Anything else raises ``ValueError``."""
    if hub_id is None:
        return None
    if hasattr(hub_id, "items"):
        unknown = [key for key in hub_id if key not in DATASETS]
        if unknown:
            raise ValueError(f"task.hub_id: unknown dataset(s) {unknown} in the map; allowed keys: "
                             f"{', '.join(DATASETS)}")
        return hub_id.get(name)
    squash = lambda text: "".join(ch for ch in str(text).lower() if ch.isalnum())  # noqa: E731
    if squash(name) not in squash(str(hub_id).rsplit("/", 1)[-1]):
        raise ValueError(f"task.hub_id '{hub_id}' does not belong to task.dataset '{name}' (its name does not "
                         f"contain '{name}'); give a per-dataset map, e.g. task.hub_id={{{name}: <repo id>}}")
    return str(hub_id)


CLASS_NAME_SOURCES = ("auto", "curated", "folders")


def class_names(name: str, root: str | os.PathLike | None = None, hub_id: Any = None,
                source: str = "auto") -> list[str]:
    """Prompt-ready class names in label order; ``source`` is ``task.class_names`` (see module docstring)."""
    if source not in CLASS_NAME_SOURCES:
        raise ValueError(f"task.class_names={source!r}; allowed: {', '.join(CLASS_NAME_SOURCES)}")
    get_dataset(name)
    hub_id = hub_id_for(name, hub_id)
    if hub_id is not None:
        hub_names = hub_class_names(hub_id)
        if source == "curated":
            names = curated.class_names(name)
            if len(names) != len(hub_names):
                raise ValueError(f"task.class_names=curated: hub dataset '{hub_id}' has {len(hub_names)} classes, "
                                 f"the curated list of '{name}' {len(names)}")
            return names
        return [prompt_name(n) for n in hub_names]
    if root is None:
        raise ValueError("few-shot data needs task.root (an ImageFolder-style folder) or task.hub_id")
    folders = local_class_folders(root, name)
    if source != "folders" and folders == curated.class_folders(name):
        return curated.class_names(name)
    if source == "curated":
        raise ValueError(f"task.class_names=curated: the class folders of {Path(root) / name}/train are not the "
                         f"prepared layout (expected {curated.class_folders(name)[:2]}..., found {folders[:2]}...); "
                         f"prepare the data with scripts/prepare_data.py or set task.class_names=folders")
    return folder_class_names(dataset_dir(root, name))


def load_splits(name: str, root: str | os.PathLike | None = None, hub_id: str | None = None,
                shots: int | None = None, fraction: float | None = None, sample_seed: int = 0,
                min_iterations: int = 10, batch_size: int = 128, val_per_class: int = 0,
                train_transform: Transform | None = None,
                eval_transform: Transform | None = None, fraction_sampling: str = "per_class") -> dict[str, Dataset]:
    """``{"train", "val", "test"}`` datasets of one dataset in one regime (see module docstring)."""
    check_regime(shots, fraction)
    if val_per_class < 0:
        raise ValueError(f"task.val_per_class must be >= 0, got {val_per_class}")
    hub_id = hub_id_for(name, hub_id)
    if hub_id is None and root is not None:
        return load_folder_splits(dataset_dir(root, name), shots, fraction, sample_seed, min_iterations,
                                  batch_size, val_per_class, train_transform, eval_transform, fraction_sampling)
    if hub_id is not None:
        train_data = load_hub_split(hub_id, "train")
        test = HubImageDataset(load_hub_split(hub_id, "test"), hub_id, eval_transform)
        val_samples = None
        labels = HubImageDataset(train_data, hub_id).labels

        def make(indices: Sequence[int], transform: Transform | None) -> Dataset:
            return HubImageDataset(train_data, hub_id, transform, indices=indices)
    else:
        raise ValueError("few-shot data needs task.root (an ImageFolder-style folder) or task.hub_id")
    return _regime_splits(labels, make, val_samples, test, shots, fraction, sample_seed, min_iterations,
                          batch_size, val_per_class, train_transform, eval_transform, fraction_sampling)


def load_folder_splits(folder: str | os.PathLike, shots: int | None = None, fraction: float | None = None,
                       sample_seed: int = 0, min_iterations: int = 10, batch_size: int = 128,
                       val_per_class: int = 0, train_transform: Transform | None = None,
                       eval_transform: Transform | None = None, fraction_sampling: str = "per_class") -> dict[str, Any]:
    """The splits of one ImageFolder dataset ``folder/{train,test[,val]}/<class>/*`` in one regime, plus
    ``"manifest"``: the hash of the file list scanned (``randlora.data.manifest``; equal to the hash in the
    ``manifest.json`` that ``prepare_data.py`` writes when the files are the same)."""
    check_regime(shots, fraction)
    folder = Path(folder)
    classes = list_class_folders(folder / "train")
    train_samples = scan_image_folder(folder / "train", classes)
    test_samples = scan_image_folder(folder / "test", classes)
    val_samples = scan_image_folder(folder / "val", classes) if (folder / "val").is_dir() else None
    entries = split_entries("train", train_samples) + split_entries("test", test_samples)
    entries += split_entries("val", val_samples) if val_samples is not None else []
    labels = [label for _, label in train_samples]

    def make(indices: Sequence[int], transform: Transform | None) -> Dataset:
        return ImageListDataset([train_samples[i] for i in indices], transform)

    splits = _regime_splits(labels, make, val_samples, ImageListDataset(test_samples, eval_transform), shots,
                            fraction, sample_seed, min_iterations, batch_size, val_per_class, train_transform,
                            eval_transform, fraction_sampling)
    return {**splits, "manifest": file_list_hash(entries)}


def _regime_splits(labels: Sequence[int], make: Any, val_samples: Any, test: Dataset, shots: int | None,
                   fraction: float | None, sample_seed: int, min_iterations: int, batch_size: int,
                   val_per_class: int, train_transform: Transform | None,
                   eval_transform: Transform | None, fraction_sampling: str = "per_class") -> dict[str, Dataset]:
    """Validation (val folder / held-out train images / test) and the regime's training sample."""
    pool = list(range(len(labels)))
    val: Dataset
    if val_samples is not None:
        val = ImageListDataset(val_samples, eval_transform)
    elif val_per_class > 0:
        pool, held = hold_out(labels, val_per_class, sample_seed)
        val = make(held, eval_transform)
    else:
        val = test
    pool_labels = [labels[i] for i in pool]
    chosen = select_training_indices(pool_labels, shots, fraction, sample_seed, min_iterations * batch_size,
                                     fraction_sampling)
    train = make([pool[i] for i in chosen], train_transform)
    return {"train": train, "val": val, "test": test}
