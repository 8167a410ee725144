"""The few-shot datasets torchvision downloads itself, converted split by split (atlas' splits).

Each entry of ``SOURCES`` names a ``torchvision.datasets`` class and the constructor arguments of each of
our splits. torchvision downloads and md5-checks the archives into ``<downloads>/<dataset>/``; the samples are
then written by :class:`~randlora.data.prepare.layout.DatasetWriter`: files the dataset already has on disk
are linked (its ``_image_files``/``_samples``/``samples`` lists, Caltech's folders), in-memory arrays (CIFAR,
MNIST, SVHN, STL10) and VOC object crops are saved as PNG. Caltech101/256 have no official split: the whole
dataset is split 80/20 with ``torch.Generator().manual_seed(0)`` exactly like atlas' ``random_split``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .layout import DatasetWriter
from .names import curated_names

Sample = tuple[Any, int, str]  # (source file Path or PIL image, label, file name)


@dataclass(frozen=True)
class TorchvisionSource:
    """``cls``: attribute of ``torchvision.datasets``; ``splits``: our split -> constructor keyword arguments."""

    cls: str
    splits: dict[str, dict[str, Any]]
    random_split: float | None = None  # train fraction of a dataset without official splits
    common: dict[str, Any] = field(default_factory=dict)
    manual: bool = False  # the files must be fetched by hand (fewshot_manual.INSTRUCTIONS); never download


SOURCES: dict[str, TorchvisionSource] = {
    "cifar10": TorchvisionSource("CIFAR10", {"train": {"train": True}, "test": {"train": False}}),
    "cifar100": TorchvisionSource("CIFAR100", {"train": {"train": True}, "test": {"train": False}}),
    "mnist": TorchvisionSource("MNIST", {"train": {"train": True}, "test": {"train": False}}),
    "svhn": TorchvisionSource("SVHN", {"train": {"split": "train"}, "test": {"split": "test"}}),
    "stl10": TorchvisionSource("STL10", {"train": {"split": "train"}, "test": {"split": "test"}}),
    "food101": TorchvisionSource("Food101", {"train": {"split": "train"}, "test": {"split": "test"}}),
    "flowers102": TorchvisionSource("Flowers102", {"train": {"split": "train"}, "val": {"split": "val"},
                                                   "test": {"split": "test"}}),
    "oxford_pets": TorchvisionSource("OxfordIIITPet", {"train": {"split": "trainval"}, "test": {"split": "test"}}),
    "fgvc_aircraft": TorchvisionSource("FGVCAircraft", {"train": {"split": "train"}, "val": {"split": "val"},
                                                        "test": {"split": "test"}},
                                       common={"annotation_level": "variant"}),
    "gtsrb": TorchvisionSource("GTSRB", {"train": {"split": "train"}, "test": {"split": "test"}}),
    "country211": TorchvisionSource("Country211", {"train": {"split": "train"}, "val": {"split": "valid"},
                                                   "test": {"split": "test"}}),
    "caltech101": TorchvisionSource("Caltech101", {"all": {}}, random_split=0.8),
    "caltech256": TorchvisionSource("Caltech256", {"all": {}}, random_split=0.8),
    "pascal_voc": TorchvisionSource("VOCDetection", {"train": {"image_set": "train"}, "val": {"image_set": "val"},
                                                     "test": {"image_set": "test"}}, common={"year": "2007"}),
    "cars": TorchvisionSource("StanfordCars", {"train": {"split": "train"}, "test": {"split": "test"}}, manual=True),
    "imagenet": TorchvisionSource("ImageNet", {"train": {"split": "train"}, "test": {"split": "val"}}, manual=True),
}

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")


def _source_class_names(name: str, dataset: Any) -> list[str]:
    if name == "pascal_voc":
        return list(VOC_CLASSES)
    for attr in ("categories", "classes"):
        names = getattr(dataset, attr, None)
        if names:
            return [n if isinstance(n, str) else n[0] for n in names]  # ImageNet-style tuples of synonyms
    labels = [label for _, label, _ in samples(name, dataset)]
    return [str(i) for i in range(max(labels) + 1)]


def _caltech_file(dataset: Any, index: int) -> Path:
    category = dataset.categories[dataset.y[index]]
    if type(dataset).__name__.endswith("256"):
        return Path(dataset.root) / "256_ObjectCategories" / category / \
            f"{dataset.y[index] + 1:03d}_{dataset.index[index]:04d}.jpg"
    return Path(dataset.root) / "101_ObjectCategories" / category / f"image_{dataset.index[index]:04d}.jpg"


def _voc_crops(dataset: Any) -> Iterator[Sample]:
    """One sample per object box (as atlas' PASCALVoc2007Cropped: every object, boxes as integers)."""
    index_of = {c: i for i, c in enumerate(VOC_CLASSES)}
    for i in range(len(dataset)):
        image, target = dataset[i]
        annotation = target["annotation"]
        stem = Path(annotation["filename"]).stem
        for k, obj in enumerate(annotation["object"]):
            box = obj["bndbox"]
            crop = image.crop(tuple(int(float(box[key])) for key in ("xmin", "ymin", "xmax", "ymax")))
            yield crop, index_of[obj["name"]], f"{stem}_{k}.png"


def samples(name: str, dataset: Any) -> Iterator[Sample]:
    """The samples of one torchvision dataset object: files where it has them, decoded images otherwise."""
    if name == "pascal_voc":
        yield from _voc_crops(dataset)
        return
    pairs: list[tuple[Any, int]] | None = None
    if hasattr(dataset, "_image_files") and hasattr(dataset, "_labels"):
        pairs = list(zip(dataset._image_files, dataset._labels))
    elif hasattr(dataset, "_images") and hasattr(dataset, "_labels"):  # OxfordIIITPet
        pairs = list(zip(dataset._images, dataset._labels))
    elif hasattr(dataset, "_samples") or hasattr(dataset, "samples"):  # GTSRB, StanfordCars; ImageFolders
        pairs = list(getattr(dataset, "_samples", None) or dataset.samples)
    elif hasattr(dataset, "categories") and hasattr(dataset, "y"):  # Caltech101/256
        pairs = [(_caltech_file(dataset, i), dataset.y[i]) for i in range(len(dataset.y))]
    if pairs is not None:
        for path, label in pairs:
            yield Path(path), int(label), Path(path).name
        return
    for i in range(len(dataset)):  # in-memory arrays
        image, label = dataset[i]
        yield image, int(label), f"{i:06d}.png"


def caltech_split(n: int, train_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """atlas' ``random_split(dataset, [int(n * f), n - int(n * f)], generator=Generator().manual_seed(0))``."""
    import torch

    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    cut = int(n * train_fraction)
    return order[:cut], order[cut:]


def write_sample(writer: DatasetWriter, split: str, sample: Sample) -> None:
    source, label, file_name = sample
    if isinstance(source, Path):
        writer.add_file(split, label, source, file_name)
    else:
        writer.add_image(split, label, source.convert("RGB") if source.mode not in ("RGB", "L") else source,
                         file_name)


def convert(name: str, out_root: Path, downloads: Path, download: bool = True,
            progress: Callable[[Any], Any] = lambda it: it) -> dict:
    """Download (torchvision) and write dataset ``name`` under ``out_root``; returns its manifest."""
    import torchvision.datasets

    spec = SOURCES[name]
    factory = getattr(torchvision.datasets, spec.cls)
    downloads.mkdir(parents=True, exist_ok=True)
    fetch = {} if spec.manual else {"download": download}
    opened = {split: factory(str(downloads), **fetch, **spec.common, **kwargs) for split, kwargs in spec.splits.items()}
    first = next(iter(opened.values()))
    source_names = _source_class_names(name, first)
    writer = DatasetWriter(out_root, name, curated_names(name, source_names), source_names)
    try:
        if spec.random_split is not None:
            all_samples = list(samples(name, first))
            train, test = caltech_split(len(all_samples), spec.random_split)
            for split, indices in (("train", train), ("test", test)):
                for i in progress(sorted(indices)):
                    write_sample(writer, split, all_samples[i])
        else:
            for split, dataset in opened.items():
                for sample in progress(samples(name, dataset)):
                    write_sample(writer, split, sample)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise
