"""Expected sizes of every prepared split, from the datasets' own documentation and the authors' split rules
(fredzzhang/atlas ``src/datasets/*.py`` and ``DATASETS.md``; PAPER.md §3b). ``--check`` compares against these.

Few-shot (our layout; ``val`` only where the source has a split outside the training data):
- Caltech101/256: the whole dataset (Caltech101 without BACKGROUND_Google; Caltech256 with 257.clutter),
  split 80/20 by ``torch.utils.data.random_split`` with ``torch.Generator().manual_seed(0)`` (atlas).
- DTD: train = train1 + val1, test = test1 (atlas moves val1 into train). EuroSAT: 270 val + 270 test images
  per class, the rest train. FGVC-Aircraft: train / val / test (variant level). Flowers102: train / val / test.
  Pascal VOC 2007: one image per object box, ImageSets train / val / test. atlas keeps the "difficult"
  boxes, and VOC's published object counts (train 6,301, val 6,307, test 12,032) leave them out, so the
  crop counts are not pinned here (``UNKNOWN``): only the 20 classes are checked.
  UCF101: the CoOp split (split_zhou_UCF101.json), middle frames.
"""
from __future__ import annotations

from dataclasses import dataclass


UNKNOWN = -1
"""A split that must exist but whose size no documentation pins (its image count is not compared)."""


@dataclass(frozen=True)
class Sizes:
    classes: int
    train: int
    test: int
    val: int | None = None  # None: no val split
    per_class: dict[str, int] | None = None  # split -> images of every class, where the dataset is balanced

    def splits(self) -> dict[str, int]:
        out = {"train": self.train, "test": self.test}
        if self.val is not None:
            out["val"] = self.val
        return out


FEWSHOT: dict[str, Sizes] = {
    "cars": Sizes(196, 8144, 8041),
    "dtd": Sizes(47, 3760, 1880, per_class={"train": 80, "test": 40}),
    "eurosat": Sizes(10, 21600, 2700, val=2700, per_class={"val": 270, "test": 270}),
    "gtsrb": Sizes(43, 26640, 12630),
    "mnist": Sizes(10, 60000, 10000),
    "resisc45": Sizes(45, 18900, 6300, val=6300),
    "sun397": Sizes(397, 19850, 19850, per_class={"train": 50, "test": 50}),
    "svhn": Sizes(10, 73257, 26032),
    "cifar10": Sizes(10, 50000, 10000, per_class={"train": 5000, "test": 1000}),
    "cifar100": Sizes(100, 50000, 10000, per_class={"train": 500, "test": 100}),
    "stl10": Sizes(10, 5000, 8000, per_class={"train": 500, "test": 800}),
    "food101": Sizes(101, 75750, 25250, per_class={"train": 750, "test": 250}),
    "caltech256": Sizes(257, 24485, 6122),
    "fgvc_aircraft": Sizes(100, 3334, 3333, val=3333),
    "flowers102": Sizes(102, 1020, 6149, val=1020, per_class={"train": 10, "val": 10}),
    "oxford_pets": Sizes(37, 3680, 3669),
    "cub200": Sizes(200, 5994, 5794),
    "pascal_voc": Sizes(20, UNKNOWN, UNKNOWN, val=UNKNOWN),
    "country211": Sizes(211, 31650, 21100, val=10550,
                         per_class={"train": 150, "val": 50, "test": 100}),
    "caltech101": Sizes(101, 6941, 1736),
    "ucf101": Sizes(101, 7639, 3783, val=1898),
    "imagenet": Sizes(1000, 1281167, 50000),
}

EUROSAT_VAL_PER_CLASS = 270
EUROSAT_TEST_PER_CLASS = 270
EUROSAT_SPLIT_SEED = 0

VTAB_LISTS = {"train800.txt": 800, "val200.txt": 200, "train800val200.txt": 1000}
"""Every VTAB-1k task: 800 + 200 training images."""

VTAB_TEST: dict[str, int] = {
    "cifar100": 10000, "caltech101": 6084, "dtd": 1880, "oxford_flowers102": 6149, "oxford_iiit_pet": 3669,
    "svhn": 26032, "sun397": 21750, "patch_camelyon": 32768, "eurosat": 5400, "resisc45": 6300,
    "diabetic_retinopathy": 42670, "clevr_count": 15000, "clevr_dist": 15000, "dmlab": 22735, "kitti": 711,
    "dsprites_loc": 73728, "dsprites_ori": 73728, "smallnorb_azi": 12150, "smallnorb_ele": 12150,
}
"""Test-set sizes of the VTAB-1k tasks (the tasks' full test splits, as in VTAB and NOAH's release)."""
