"""prepare_data.py fewshot: torchvision-backed conversions with stand-ins for the torchvision classes, and the
manual conversions from fixtures in the archives' real layouts. Offline."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets
from PIL import Image

from randlora.data import fewshot
from randlora.data.manifest import read_manifest
from randlora.data.prepare import fewshot_manual as manual
from randlora.data.prepare import fewshot_torchvision as tv
from randlora.data.prepare.expected import FEWSHOT
from randlora.data.prepare.fewshot import SourceMissing, prepare_one


def _jpeg(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 5), (value % 256, 30, 60)).save(path, format="JPEG")
    return path


class FileBackedStandIn:
    """A torchvision dataset whose images are files (Food101, Flowers102, FGVCAircraft, DTD, ...): writes a
    few JPEGs under ``root`` and exposes them as ``_image_files``/``_labels`` with ``classes``."""

    def __init__(self, root, download=False, split="train", train=None, **kwargs):
        assert download, "torchvision-backed datasets are fetched with download=True"
        split = {True: "train", False: "test"}.get(train, split)
        self.classes = ["apple_pie", "baby_back_ribs", "beignets"]
        self._image_files, self._labels = [], []
        for i in range(7 if split in ("train", "trainval") else 4):
            label = i % 3
            self._image_files.append(_jpeg(Path(root) / "images" / split / f"{split}_{i}.jpg", 40 * i))
            self._labels.append(label)


@pytest.mark.parametrize("name", ["food101", "flowers102", "oxford_pets", "fgvc_aircraft", "gtsrb", "country211"])
def test_file_backed_torchvision_datasets_are_linked_split_by_split(tmp_path, monkeypatch, name):
    spec = tv.SOURCES[name]
    monkeypatch.setattr(torchvision.datasets, spec.cls, FileBackedStandIn)
    manifest = prepare_one(name, tmp_path / "out", tmp_path / "downloads")
    expected = {split: 7 if kwargs.get("split") in ("train", "trainval") else 4 for split, kwargs in spec.splits.items()}
    assert manifest["counts"] == expected and manifest["classes"] == 3
    folder = tmp_path / "out" / name
    assert sorted(p.name for p in (folder / "train").iterdir()) == ["000_apple_pie", "001_baby_back_ribs",
                                                                    "002_beignets"]
    assert (folder / "classnames.txt").read_text().split("\n")[:3] == ["apple pie", "baby back ribs", "beignets"]
    assert read_manifest(folder) == manifest
    splits = fewshot.load_splits(name, root=tmp_path / "out")
    assert splits["manifest"] == manifest["file_list_sha256"]
    assert fewshot.class_names(name, root=tmp_path / "out") == ["apple pie", "baby back ribs", "beignets"]
    assert not (tmp_path / "out" / f"{name}.partial").exists()


def test_cifar10_from_its_real_pickle_batches(tmp_path, monkeypatch):
    """The stand-in writes cifar-10-batches-py in the real pickle format; the real torchvision class reads it."""
    real = torchvision.datasets.CIFAR10
    rng = np.random.default_rng(0)

    def write_batches(root: Path) -> None:
        folder = root / "cifar-10-batches-py"
        if folder.is_dir():  # downloaded once, like torchvision
            return
        folder.mkdir(parents=True)
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            data = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
            with open(folder / name, "wb") as handle:
                pickle.dump({"data": data, "labels": [1, 9]}, handle)
        with open(folder / "batches.meta", "wb") as handle:
            pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                         "ship", "truck"]}, handle)

    class StandIn(real):
        def __init__(self, root, train=True, download=False, **kwargs):
            write_batches(Path(root))
            super().__init__(root, train=train, download=False)

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args: True)  # fixture md5s differ
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", StandIn)
    manifest = prepare_one("cifar10", tmp_path / "out", tmp_path / "dl")
    assert manifest["counts"] == {"train": 10, "test": 2} and manifest["classes"] == 10
    truck = sorted((tmp_path / "out" / "cifar10" / "train" / "009.truck").iterdir())  # the curated layout
    assert len(truck) == 5 and truck[0].suffix == ".png"
    first = real(str(tmp_path / "dl" / "cifar10"), train=True)[1][0]
    assert np.array_equal(np.asarray(Image.open(truck[0])), np.asarray(first))  # PNG keeps the pixels
    from randlora.data import classnames

    assert fewshot.class_names("cifar10", root=tmp_path / "out", source="curated") == classnames.class_names("cifar10")


def test_imagenet_from_torchvision_imagenet_without_download(tmp_path, monkeypatch):
    """ImageNet is hand-fetched: torchvision's ImageNet (an ImageFolder: samples, tuples of class synonyms) is
    opened without a download argument, train -> train and val -> test."""
    seen = []

    class ImageNetStandIn:
        def __init__(self, root, split="train", **kwargs):
            assert "download" not in kwargs
            seen.append(split)
            self.classes = [("tench", "Tinca tinca"), ("goldfish", "Carassius auratus")]
            self.samples = [(_jpeg(Path(root) / split / f"n0{label}" / f"{split}_{label}_{i}.JPEG", i), label)
                            for label in range(2) for i in range(2 if split == "train" else 1)]

    (tmp_path / "downloads" / "imagenet").mkdir(parents=True)
    monkeypatch.setattr(torchvision.datasets, "ImageNet", ImageNetStandIn)
    manifest = prepare_one("imagenet", tmp_path / "out", tmp_path / "downloads")
    assert seen == ["train", "val"] and manifest["counts"] == {"train": 4, "test": 2}
    assert sorted(p.name for p in (tmp_path / "out" / "imagenet" / "test").iterdir()) == ["000_tench", "001_goldfish"]


def test_caltech_split_is_atlas_random_split():
    from torch.utils.data import random_split

    train, test = tv.caltech_split(8677, 0.8)
    ref_train, ref_test = random_split(range(8677), [6941, 1736], generator=torch.Generator().manual_seed(0))
    assert train == list(ref_train.indices) and test == list(ref_test.indices)
    assert (len(train), len(test)) == (FEWSHOT["caltech101"].train, FEWSHOT["caltech101"].test)


def test_voc_is_one_crop_per_object(tmp_path, monkeypatch):
    class VOCStandIn:
        def __init__(self, root, download=False, year="2012", image_set="train", **kwargs):
            assert year == "2007"
            self.n = {"train": 2, "val": 1, "test": 1}[image_set]

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            objects = [{"name": "dog", "bndbox": {"xmin": "1", "ymin": "2", "xmax": "5", "ymax": "6"}},
                       {"name": "tvmonitor", "bndbox": {"xmin": "0", "ymin": "0", "xmax": "3", "ymax": "3"}}]
            return Image.new("RGB", (8, 8)), {"annotation": {"filename": f"00000{i}.jpg", "object": objects}}

    monkeypatch.setattr(torchvision.datasets, "VOCDetection", VOCStandIn)
    manifest = prepare_one("pascal_voc", tmp_path / "out", tmp_path / "dl")
    assert manifest["counts"] == {"train": 4, "val": 2, "test": 2} and manifest["classes"] == 20
    crop = tmp_path / "out" / "pascal_voc" / "train" / "011.dog" / "000000_0.png"
    assert Image.open(crop).size == (4, 4)


# ------------------------------------------------------------------------------ manual conversions


def test_dtd_split_1_from_labels_files(tmp_path):
    source = tmp_path / "dtd"
    for cls in ("banded", "zigzagged"):
        for i in range(4):
            _jpeg(source / "images" / cls / f"{cls}_{i}.jpg", i)
    (source / "labels").mkdir()
    for split, index in (("train1", 0), ("val1", 1), ("test1", 2), ("train2", 3)):
        (source / "labels" / f"{split}.txt").write_text(f"banded/banded_{index}.jpg\nzigzagged/zigzagged_{index}.jpg\n")
    manifest = manual.convert_dtd(source, tmp_path / "out")
    assert manifest["counts"] == {"train": 4, "test": 2}  # train1 + val1; test1; split 2 ignored
    assert sorted(p.name for p in (tmp_path / "out" / "dtd" / "train" / "000_banded").iterdir()) == \
        ["banded_0.jpg", "banded_1.jpg"]


def test_dtd_is_downloaded_by_torchvision_when_not_fetched_by_hand(tmp_path, monkeypatch):
    calls = []

    def dtd_stand_in(root, partition=1, download=False):
        calls.append((partition, download))
        data = Path(root) / "dtd" / "dtd"  # where torchvision unpacks dtd-r1.0.1.tar.gz
        (data / "labels").mkdir(parents=True)
        for i, split in enumerate(("train1", "val1", "test1")):
            _jpeg(data / "images" / "banded" / f"banded_{i}.jpg", i)
            (data / "labels" / f"{split}.txt").write_text(f"banded/banded_{i}.jpg\n")

    monkeypatch.setattr(torchvision.datasets, "DTD", dtd_stand_in)
    manifest = prepare_one("dtd", tmp_path / "out", tmp_path / "downloads")
    assert calls == [(1, True)] and manifest["counts"] == {"train": 2, "test": 1}


def test_eurosat_270_val_270_test_per_class_seeded(tmp_path):
    files = {"Forest": [Path(f"Forest_{i}.jpg") for i in range(600)],
             "River": [Path(f"River_{i}.jpg") for i in range(545)]}
    rows = manual.eurosat_split(files)
    assert [len(rows[s]) for s in ("train", "val", "test")] == [60 + 5, 540, 540]
    assert sum(label == 1 for _, label in rows["val"]) == 270 and sum(label == 1 for _, label in rows["test"]) == 270
    assert manual.eurosat_split(files) == rows and manual.eurosat_split(files, seed=1) != rows
    assert not {p for p, _ in rows["val"]} & {p for p, _ in rows["test"] + rows["train"]}
    source = tmp_path / "src"
    for i in range(541):
        folder = source / "2750" / "Pasture"
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (2, 2)).save(folder / f"Pasture_{i}.jpg")
    assert manual.convert_eurosat(source, tmp_path / "out")["counts"] == {"train": 1, "val": 270, "test": 270}


def test_resisc45_from_split_files(tmp_path):
    source = tmp_path / "resisc45"
    for cls in ("airplane", "sea_ice"):
        for i in range(1, 4):
            _jpeg(source / "NWPU-RESISC45" / cls / f"{cls}_{i:03d}.jpg", i)
    for split, i in (("train", 1), ("val", 2), ("test", 3)):
        (source / f"resisc45-{split}.txt").write_text(f"airplane_{i:03d}.jpg\nsea_ice_{i:03d}.jpg\n")
    manifest = manual.convert_resisc45(source, tmp_path / "out")
    assert manifest["counts"] == {"train": 2, "val": 2, "test": 2}
    assert (tmp_path / "out" / "resisc45" / "test" / "001_sea_ice" / "sea_ice_003.jpg").is_file()
    assert fewshot.class_names("resisc45", root=tmp_path / "out") == ["airplane", "sea ice"]


def test_sun397_partition_01(tmp_path):
    source = tmp_path / "sun397"
    lines = {"Training_01.txt": ["/a/abbey/sun_a.jpg", "/b/bus_interior/sun_b.jpg"],
             "Testing_01.txt": ["/a/abbey/sun_c.jpg", "/a/apartment_building/outdoor/sun_d.jpg"]}
    for file, paths in lines.items():
        for path in paths:
            _jpeg(source / "SUN397" / path.lstrip("/"), 1)
        (source / "Partitions").mkdir(exist_ok=True)
        (source / "Partitions" / file).write_text("\n".join(paths) + "\n")
    manifest = manual.convert_sun397(source, tmp_path / "out")
    assert manifest["counts"] == {"train": 2, "test": 2} and manifest["classes"] == 3
    assert fewshot.class_names("sun397", root=tmp_path / "out") == ["abbey", "apartment building outdoor",
                                                                    "bus interior"]


def test_ucf101_midframes_from_zhou_json(tmp_path):
    folder = tmp_path / "ucf101" / "UCF-101-midframes"
    split = {s: [[f"Apply_Eye_Makeup/{s}0.jpg", 0, "Apply_Eye_Makeup"], [f"Biking/{s}1.jpg", 1, "Biking"]]
             for s in ("train", "val", "test")}
    for items in split.values():
        for path, label, _ in items:
            _jpeg(folder / path, label)
    (folder / "split_zhou_UCF101.json").write_text(json.dumps(split))
    manifest = manual.convert_ucf101(tmp_path / "ucf101", tmp_path / "out")
    assert manifest["counts"] == {"train": 2, "val": 2, "test": 2}
    assert fewshot.class_names("ucf101", root=tmp_path / "out") == ["Apply Eye Makeup", "Biking"]


def test_cars_from_the_devkit_mat_files_read_by_torchvision(tmp_path):
    from scipy.io import savemat

    base = tmp_path / "downloads" / "cars" / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    savemat(base / "devkit" / "cars_meta.mat",
            {"class_names": np.array(["AM General Hummer SUV 2000", "Acura RL Sedan 2012"], dtype=object)})

    def annotations(split: str, files: list[tuple[str, int]]) -> dict:
        records = np.zeros(len(files), dtype=[("fname", "O"), ("class", "O")])
        for i, (fname, label) in enumerate(files):
            records[i] = (fname, label)
            _jpeg(base / f"cars_{split}" / fname, label)
        return {"annotations": records}

    savemat(base / "devkit" / "cars_train_annos.mat", annotations("train", [("00001.jpg", 1), ("00002.jpg", 2)]))
    savemat(base / "cars_test_annos_withlabels.mat", annotations("test", [("00001.jpg", 2), ("00002.jpg", 2)]))
    manifest = prepare_one("cars", tmp_path / "out", tmp_path / "downloads")
    assert manifest["counts"] == {"train": 2, "test": 2}
    assert (tmp_path / "out" / "cars" / "test" / "001_Acura_RL_Sedan_2012" / "00001.jpg").is_file()


def test_manual_dataset_without_source_says_what_to_fetch(tmp_path):
    with pytest.raises(SourceMissing, match=r"sun397: fetch by hand into .*Partitions/\{Training_01,Testing_01\}"):
        prepare_one("sun397", tmp_path / "out", tmp_path / "downloads")
    assert not (tmp_path / "out").exists()
