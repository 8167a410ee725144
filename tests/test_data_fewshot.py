"""Few-shot / data-fraction regimes on ImageFolder trees: the 22-dataset table, seeded sampling, oversampling."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from helpers_data import ImageBackboneStandIn, make_image_folder
from randlora.data import fewshot
from randlora.data.common import oversample


def test_table_of_22_datasets_with_paper_epochs():
    assert len(fewshot.DATASETS) == 22
    assert fewshot.paper_epochs("cars", shots=None) == 35
    assert fewshot.paper_epochs("fgvc_aircraft", shots=None) == 60
    assert fewshot.paper_epochs("dtd", shots=4) == 10
    paper = {"cars": 35, "dtd": 76, "eurosat": 13, "gtsrb": 11, "mnist": 5, "resisc45": 15, "sun397": 14,
             "svhn": 4, "cifar10": 5, "cifar100": 6, "stl10": 4, "food101": 15, "caltech256": 8,
             "fgvc_aircraft": 60, "flowers102": 40, "oxford_pets": 5, "cub200": 20, "pascal_voc": 10,
             "country211": 15, "caltech101": 10, "ucf101": 20, "imagenet": 10}  # PAPER.md section 4
    assert {d.name: d.full_data_epochs for d in fewshot.DATASETS.values()} == paper
    with pytest.raises(ValueError, match="unknown few-shot dataset 'cub'.*cub200"):
        fewshot.get_dataset("cub")


@pytest.mark.parametrize("shots", [1, 2, 4, 16])
def test_sample_shots_counts_per_class_and_determinism(shots):
    labels = [c for c in range(5) for _ in range(20)]
    chosen = fewshot.sample_shots(labels, shots, seed=3)
    assert Counter(labels[i] for i in chosen) == {c: shots for c in range(5)}
    assert len(set(chosen)) == len(chosen)
    assert chosen == fewshot.sample_shots(labels, shots, seed=3)
    assert chosen != fewshot.sample_shots(labels, shots, seed=4)


def test_small_classes_give_all_their_images():
    labels = [0] * 10 + [1] * 2
    chosen = fewshot.sample_shots(labels, 4, seed=0)
    assert Counter(labels[i] for i in chosen) == {0: 4, 1: 2}


def test_sample_fraction_is_stratified_and_seeded():
    labels = [0] * 10 + [1] * 4 + [2] * 1
    half = fewshot.sample_fraction(labels, 0.5, seed=0)
    assert Counter(labels[i] for i in half) == {0: 5, 1: 2, 2: 1}  # at least one per class
    assert half == fewshot.sample_fraction(labels, 0.5, seed=0)
    assert fewshot.sample_fraction(labels, 1.0, seed=0) == list(range(15))


def test_oversample_reaches_min_iterations_times_batch():
    assert oversample([3, 1, 2], 10) == [3, 1, 2] * 4
    assert oversample(list(range(12)), 10) == list(range(12))
    chosen = fewshot.select_training_indices([0, 0, 1, 1, 2, 2], shots=1, fraction=None, seed=0, min_length=10 * 4)
    assert len(chosen) == 42 and Counter(chosen).most_common(1)[0][1] == 14


@pytest.mark.parametrize(
    "shots, fraction, match",
    [
        (4, 0.5, r"task.shots=4 and task.fraction=0.5 are both set"),
        (0, None, r"task.shots must be a positive integer"),
        (2.5, None, r"task.shots must be a positive integer"),
        (None, 1.5, r"task.fraction must be in \(0, 1\]"),
        (None, 0, r"task.fraction must be in \(0, 1\]"),
    ],
)
def test_bad_regimes(shots, fraction, match):
    with pytest.raises(ValueError, match=match):
        fewshot.check_regime(shots, fraction)


def test_load_shots_from_image_folder(tmp_path):
    make_image_folder(tmp_path, "dtd", classes=("banded", "golden_retriever", "zig_zag"), train_per_class=6,
                      test_per_class=2)
    backbone = ImageBackboneStandIn(size=10)
    splits = fewshot.load_splits("dtd", root=tmp_path, shots=2, sample_seed=1, min_iterations=2, batch_size=4,
                                 train_transform=backbone.train_transform, eval_transform=backbone.eval_transform)
    train = splits["train"]
    assert len(train) == 12  # 3 classes x 2 shots = 6, repeated to >= 2 * 4
    unique = set(train.samples)
    assert len(unique) == 6 and Counter(label for _, label in unique) == {0: 2, 1: 2, 2: 2}
    assert splits["val"] is splits["test"] and len(splits["test"]) == 6
    image, label = train[0]
    assert isinstance(image, torch.Tensor) and image.shape == (3, 10, 10)
    again = fewshot.load_splits("dtd", root=tmp_path, shots=2, sample_seed=1, min_iterations=2, batch_size=4)
    assert again["train"].samples == train.samples
    assert fewshot.class_names("dtd", root=tmp_path) == ["banded", "golden retriever", "zig zag"]


def test_fraction_and_val_holdout_and_val_folder(tmp_path):
    make_image_folder(tmp_path, "eurosat", classes=("a", "b"), train_per_class=8, test_per_class=1)
    splits = fewshot.load_splits("eurosat", root=tmp_path, fraction=0.5, val_per_class=2, sample_seed=0)
    assert len(splits["val"]) == 4 and len(splits["train"]) == 6  # (8 - 2) / 2 per class
    assert set(splits["train"].samples).isdisjoint(splits["val"].samples)
    full = fewshot.load_splits("eurosat", root=tmp_path)
    assert len(full["train"]) == 16

    make_image_folder(tmp_path, "gtsrb", classes=("a", "b"), train_per_class=3, test_per_class=1, val_per_class=2)
    with_val = fewshot.load_splits("gtsrb", root=tmp_path, shots=1, min_iterations=1, batch_size=1)
    assert len(with_val["val"]) == 4 and with_val["val"] is not with_val["test"]


def test_layout_errors_name_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"few-shot data root does not exist.*train/<class>"):
        fewshot.load_splits("dtd", root=tmp_path / "nope", shots=1)
    (tmp_path / "dtd" / "train" / "a").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"split folder not found: .*dtd/test"):
        fewshot.load_splits("dtd", root=tmp_path, shots=1)
    (tmp_path / "dtd" / "test" / "a").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no image files"):
        fewshot.load_splits("dtd", root=tmp_path, shots=1)
    make_image_folder(tmp_path, "mnist", classes=("one",), train_per_class=1, test_per_class=1)
    make_image_folder(tmp_path / "extra", "mnist", classes=("two",), train_per_class=0, test_per_class=1)
    (tmp_path / "extra" / "mnist" / "test" / "two").rename(tmp_path / "mnist" / "test" / "two")
    with pytest.raises(ValueError, match=r"class folder\(s\) \['two'\] not among the training classes"):
        fewshot.load_splits("mnist", root=tmp_path)
    with pytest.raises(ValueError, match="task.root.*task.hub_id"):
        fewshot.load_splits("mnist")


def test_hub_id_fails_clearly_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(RuntimeError, match=r"hub dataset 'someone/dtd'"):
        fewshot.class_names("dtd", hub_id="someone/dtd")
    with pytest.raises(RuntimeError, match=r"could not load hub dataset 'someone/dtd'"):
        fewshot.load_splits("dtd", root=tmp_path, hub_id="someone/dtd", shots=1)  # hub_id wins over root


def _hub_split(n_per_class: int):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    names = ["tabby_cat", "dog"]
    images = [Image.new("RGB", (6, 6), (40 * c, 10, 10)) for c in range(2) for _ in range(n_per_class)]
    labels = [c for c in range(2) for _ in range(n_per_class)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)


def test_hub_path_with_in_memory_dataset(monkeypatch):
    splits_by_name = {"train": _hub_split(4), "test": _hub_split(1)}
    monkeypatch.setattr(fewshot, "load_hub_split", lambda hub_id, split: splits_by_name[split])
    backbone = ImageBackboneStandIn(size=4)
    splits = fewshot.load_splits("oxford_pets", hub_id={"oxford_pets": "local/pets"}, shots=1, sample_seed=0, min_iterations=2,
                                 batch_size=2, train_transform=backbone.train_transform,
                                 eval_transform=backbone.eval_transform)
    # 2 shots repeated 4 // 2 + 1 = 3 times (the authors' oversampling)
    assert len(splits["train"]) == 6 and sorted(set(splits["train"].labels)) == [0, 1]
    image, label = splits["test"][1]
    assert image.shape == (3, 4, 4) and label == 1
    assert splits["test"].class_names() == ["tabby_cat", "dog"]


def test_hub_id_must_belong_to_the_dataset():
    """One hub id for every dataset of a sweep is refused; a per-dataset map picks the dataset's entry."""
    with pytest.raises(ValueError, match=r"task.hub_id 'someone/cifar10' does not belong to task.dataset 'dtd'"):
        fewshot.hub_id_for("dtd", "someone/cifar10")
    assert fewshot.hub_id_for("oxford_pets", "someone/Oxford-Pets") == "someone/Oxford-Pets"  # case, - and _
    assert fewshot.hub_id_for("dtd", "tanganke/dtd") == "tanganke/dtd"
    assert fewshot.hub_id_for("dtd", {"dtd": "a/textures", "cifar10": "b/c10"}) == "a/textures"
    assert fewshot.hub_id_for("mnist", {"dtd": "a/textures"}) is None  # no entry: use task.root
    with pytest.raises(ValueError, match=r"unknown dataset\(s\) \['dtdd'\]"):
        fewshot.hub_id_for("dtd", {"dtdd": "a/textures"})
