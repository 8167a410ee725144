"""Few-shot datasets converted from files the user fetched by hand (or torchvision fetched but we split).

Each converter reads the source in its distributed layout, applies atlas' split rule (see ``expected.py``)
and writes through :class:`~randlora.data.prepare.layout.DatasetWriter`. ``INSTRUCTIONS`` says what to fetch
and where to put it; ``prepare_data.py`` prints it when the source is missing.
"""
from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .expected import EUROSAT_SPLIT_SEED, EUROSAT_TEST_PER_CLASS, EUROSAT_VAL_PER_CLASS
from .layout import DatasetWriter
from .names import curated_names

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")

INSTRUCTIONS: dict[str, str] = {
    "cars": "Stanford Cars (its site is offline): images from kaggle.com/datasets/jessicali9530/stanford-cars-dataset, "
            "the devkit github.com/pytorch/vision/files/11644847/car_devkit.tgz and cars_test_annos_withlabels.mat; "
            "arrange SOURCE/stanford_cars/{devkit/{cars_meta.mat,cars_train_annos.mat},cars_test_annos_withlabels.mat,"
            "cars_train/*.jpg,cars_test/*.jpg}",
    "resisc45": "NWPU-RESISC45: NWPU-RESISC45.rar (drive.google.com/file/d/1DnPSU5nVSN7xv95bpZ3XQ0JhKXZOKgIv), "
                "unpacked to SOURCE/NWPU-RESISC45/<class>/<class>_NNN.jpg; the split files resisc45-{train,val,test}.txt "
                "(storage.googleapis.com/remote_sensing_representations/) are fetched into SOURCE if absent",
    "sun397": "SUN397: SUN397.tar.gz and Partitions.zip from vision.princeton.edu/projects/2010/SUN/; unpack to "
              "SOURCE/SUN397/<letter>/<class>/... and SOURCE/Partitions/{Training_01,Testing_01}.txt",
    "imagenet": "ImageNet (ILSVRC2012): ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar and "
                "ILSVRC2012_devkit_t12.tar.gz from image-net.org, placed in SOURCE (torchvision unpacks them)",
    "ucf101": "UCF101 middle frames: UCF-101-midframes.zip (drive.google.com/file/d/10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O) "
              "unpacked to SOURCE/UCF-101-midframes/<Class>/*.jpg, and split_zhou_UCF101.json "
              "(drive.google.com/file/d/1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y) put in SOURCE/UCF-101-midframes/",
}

RESISC45_SPLIT_URL = "https://storage.googleapis.com/remote_sensing_representations/resisc45-{split}.txt"
CUB_URL = "https://s3.amazonaws.com/fast-ai-imageclas/CUB_200_2011.tgz"
CUB_MD5 = "97eceeb196236b17998738112f37df78"

Progress = Callable[[Any], Any]


def _identity(items: Any) -> Any:
    return items


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _write(name: str, out_root: Path, source_names: list[str], rows: dict[str, list[tuple[Path, int]]],
           progress: Progress) -> dict:
    writer = DatasetWriter(out_root, name, curated_names(name, source_names), source_names)
    try:
        for split, items in rows.items():
            for path, label in progress(items):
                if not path.is_file():
                    raise FileNotFoundError(f"{name}: listed image not found: {path}")
                writer.add_file(split, label, path)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


def _require(path: Path, name: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{name}: {path} not found. {INSTRUCTIONS.get(name, '')}".strip())
    return path


def convert_dtd(source: Path, out_root: Path, progress: Progress = _identity) -> dict:
    """DTD split 1 from ``source/{images,labels}`` (the archive's layout): train = train1 + val1, test = test1."""
    classes = sorted(p.name for p in _require(source / "images", "dtd").iterdir() if p.is_dir())
    index = {c: i for i, c in enumerate(classes)}

    def listed(file: str) -> list[tuple[Path, int]]:
        lines = _require(source / "labels" / file, "dtd").read_text().split()
        return [(source / "images" / line, index[line.split("/")[0]]) for line in lines]

    rows = {"train": listed("train1.txt") + listed("val1.txt"), "test": listed("test1.txt")}
    return _write("dtd", out_root, classes, rows, progress)


def eurosat_split(files_by_class: dict[str, list[Path]], seed: int = EUROSAT_SPLIT_SEED
                  ) -> dict[str, list[tuple[Path, int]]]:
    """Per class (sorted): shuffle the sorted files with one ``random.Random(seed)``; the first 270 are val,
    the next 270 test, the rest train (atlas' rule, made reproducible: atlas shuffled without a seed)."""
    rng = random.Random(seed)
    rows: dict[str, list[tuple[Path, int]]] = {"train": [], "val": [], "test": []}
    for label, cls in enumerate(sorted(files_by_class)):
        files = sorted(files_by_class[cls])
        rng.shuffle(files)
        cut_val, cut_test = EUROSAT_VAL_PER_CLASS, EUROSAT_VAL_PER_CLASS + EUROSAT_TEST_PER_CLASS
        if len(files) <= cut_test:
            raise ValueError(f"eurosat: class {cls} has {len(files)} images, needs more than {cut_test}")
        rows["val"] += [(f, label) for f in files[:cut_val]]
        rows["test"] += [(f, label) for f in files[cut_val:cut_test]]
        rows["train"] += [(f, label) for f in files[cut_test:]]
    return rows


def convert_eurosat(source: Path, out_root: Path, progress: Progress = _identity) -> dict:
    """EuroSAT RGB from ``source/2750/<class>/*.jpg``: 270 val + 270 test per class (seeded), rest train."""
    folder = _require(source / "2750", "eurosat")
    files = {p.name: _images(p) for p in folder.iterdir() if p.is_dir()}
    return _write("eurosat", out_root, sorted(files), eurosat_split(files), progress)


def convert_resisc45(source: Path, out_root: Path, progress: Progress = _identity) -> dict:
    """NWPU-RESISC45 with the split files ``resisc45-{train,val,test}.txt`` (one file name per line)."""
    images = _require(source / "NWPU-RESISC45", "resisc45")
    for split in ("train", "val", "test"):
        if not (source / f"resisc45-{split}.txt").is_file():
            from torchvision.datasets.utils import download_url

            download_url(RESISC45_SPLIT_URL.format(split=split), str(source))
    listed = {s: (source / f"resisc45-{s}.txt").read_text().split() for s in ("train", "val", "test")}
    class_of = {n: "_".join(n.split("_")[:-1]) for names in listed.values() for n in names}
    classes = sorted(set(class_of.values()))
    index = {c: i for i, c in enumerate(classes)}

    def locate(file: str) -> Path:
        nested = images / class_of[file] / file
        return nested if nested.is_file() else images / file

    rows = {s: [(locate(n), index[class_of[n]]) for n in names] for s, names in listed.items()}
    return _write("resisc45", out_root, classes, rows, progress)


def convert_sun397(source: Path, out_root: Path, progress: Progress = _identity) -> dict:
    """SUN397 partition 01: ``Training_01.txt`` / ``Testing_01.txt`` list ``/a/abbey/sun_x.jpg``; the class is
    the path's folders joined by ``_`` (``a_abbey``, sorted as atlas' ImageFolder), its name without the letter."""
    partitions = source / "Partitions" if (source / "Partitions").is_dir() else source
    images = source / "SUN397" if (source / "SUN397").is_dir() else source
    listed = {split: _require(partitions / f"{file}_01.txt", "sun397").read_text().split()
              for split, file in (("train", "Training"), ("test", "Testing"))}
    folder_of = {line: "_".join(line.strip("/").split("/")[:-1]) for lines in listed.values() for line in lines}
    classes = sorted(set(folder_of.values()))
    index = {c: i for i, c in enumerate(classes)}
    rows = {s: [(images / line.lstrip("/"), index[folder_of[line]]) for line in lines] for s, lines in listed.items()}
    return _write("sun397", out_root, [c[2:] for c in classes], rows, progress)


def convert_ucf101(source: Path, out_root: Path, progress: Progress = _identity) -> dict:
    """UCF101 middle frames with CoOp's ``split_zhou_UCF101.json`` (``{split: [[path, label, class], ...]}``)."""
    folder = source / "UCF-101-midframes" if (source / "UCF-101-midframes").is_dir() else source
    split = json.loads(_require(folder / "split_zhou_UCF101.json", "ucf101").read_text())
    names: dict[int, str] = {}
    rows: dict[str, list[tuple[Path, int]]] = {}
    for ours, theirs in (("train", "train"), ("val", "val"), ("test", "test")):
        rows[ours] = []
        for path, label, cls in split[theirs]:
            names.setdefault(int(label), cls)
            rows[ours].append((folder / path, int(label)))
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"ucf101: labels in {folder / 'split_zhou_UCF101.json'} are not 0..{len(names) - 1}")
    return _write("ucf101", out_root, [names[i] for i in range(len(names))], rows, progress)


def convert_cub200(source: Path, out_root: Path, download: bool = True, progress: Progress = _identity) -> dict:
    """CUB-200-2011 (atlas' copy: the fast.ai S3 archive, md5-checked) with its train_test_split.txt."""
    base = source / "CUB_200_2011"
    if not base.is_dir() and download:
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(CUB_URL, str(source), md5=CUB_MD5)
    _require(base / "images.txt", "cub200")

    def table(file: str) -> dict[str, str]:
        return dict(line.split(" ", 1) for line in (base / file).read_text().splitlines() if line.strip())

    paths, labels, is_train = table("images.txt"), table("image_class_labels.txt"), table("train_test_split.txt")
    classes = [v.split(".", 1)[-1] for _, v in sorted(table("classes.txt").items(), key=lambda kv: int(kv[0]))]
    rows: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    for image_id in sorted(paths, key=int):
        split = "train" if is_train[image_id].strip() == "1" else "test"
        rows[split].append((base / "images" / paths[image_id].strip(), int(labels[image_id]) - 1))
    return _write("cub200", out_root, classes, rows, progress)
