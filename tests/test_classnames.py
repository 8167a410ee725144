"""Curated class names and templates of the 22 datasets: counts, label order, provenance, folder layout."""
from __future__ import annotations

import pytest

from randlora.data import classnames, fewshot

# Class counts of the datasets' documentation (PAPER.md §4 list; Caltech256 keeps 257.clutter, VOC 20 objects).
COUNTS = {"cars": 196, "dtd": 47, "eurosat": 10, "gtsrb": 43, "mnist": 10, "resisc45": 45, "sun397": 397,
          "svhn": 10, "cifar10": 10, "cifar100": 100, "stl10": 10, "food101": 101, "caltech256": 257,
          "fgvc_aircraft": 100, "flowers102": 102, "oxford_pets": 37, "cub200": 200, "pascal_voc": 20,
          "country211": 211, "caltech101": 101, "ucf101": 101, "imagenet": 1000}


def test_every_fewshot_dataset_has_a_curated_list_of_the_documented_size():
    assert sorted(classnames.curated_datasets()) == sorted(fewshot.DATASETS) == sorted(COUNTS)
    for name, count in COUNTS.items():
        names = classnames.class_names(name)
        assert len(names) == count, name
        assert all(isinstance(n, str) and n.strip() == n and n for n in names), name
        assert classnames.source(name)
        if name != "imagenet":  # atlas's ImageNet list names "crane" and "maillot" twice, as CLIP's does
            assert len(set(names)) == count, name


@pytest.mark.parametrize("dataset, label, name", [
    ("gtsrb", 0, "red and white circle 20 kph speed limit"),  # not the folder number "00000"
    ("flowers102", 0, "pink primrose"),                        # not the folder "1"
    ("country211", 0, "Andorra"),                              # not the ISO code "AD"
    ("cub200", 0, "Black footed Albatross"),                   # not "001.Black_footed_Albatross"
    ("cub200", 199, "Common Yellowthroat"),
    ("eurosat", 2, "brushland or shrubland"),                  # HerbaceousVegetation, OpenAI's name
    ("sun397", 8, "apartment building outdoor"),               # /a/apartment_building/outdoor
    ("caltech101", 0, "Faces"), ("caltech256", 256, "clutter"), ("caltech256", 14, "bonsai"),
    ("cifar100", 1, "aquarium_fish"),                          # torchvision's name, kept as atlas keeps it
    ("imagenet", 0, "tench"), ("oxford_pets", 2, "American Pit Bull Terrier"), ("mnist", 7, "7"),
])
def test_label_order_spot_checks(dataset, label, name):
    assert classnames.class_names(dataset)[label] == name


def test_templates_are_the_authors_format_strings():
    assert classnames.templates("cub200") == ["a photo of a {c}, a type of bird."]
    assert classnames.templates("mnist") == ['a photo of the number: "{c}".']
    assert len(classnames.templates("imagenet")) == 80
    for name in COUNTS:
        assert all("{c}" in t for t in classnames.templates(name)), name


def test_class_folders_sort_in_label_order_and_are_path_safe():
    for name in COUNTS:
        folders = classnames.class_folders(name)
        assert sorted(folders) == folders and len(set(folders)) == len(folders), name
        assert all("/" not in f for f in folders)
    assert classnames.class_folder("gtsrb", 0) == "000.red and white circle 20 kph speed limit"
    with pytest.raises(ValueError, match="label 43 outside"):
        classnames.class_folder("gtsrb", 43)
    with pytest.raises(ValueError, match="no curated class names for dataset 'cub'"):
        classnames.class_names("cub")


def test_fewshot_loader_takes_curated_names_from_a_prepared_layout(tmp_path):
    from helpers_data import make_image_folder

    make_image_folder(tmp_path, "gtsrb", classes=classnames.class_folders("gtsrb"), train_per_class=1,
                      test_per_class=1)
    names = fewshot.class_names("gtsrb", root=tmp_path)
    assert names == classnames.class_names("gtsrb") and names[14] == "stop"
    assert fewshot.class_names("gtsrb", root=tmp_path, source="folders")[0] == "000.red and white circle 20 kph speed limit"


def test_fewshot_loader_keeps_folder_names_elsewhere_and_curated_refuses_them(tmp_path):
    from helpers_data import make_image_folder

    make_image_folder(tmp_path, "dtd", classes=("banded", "zig_zag"), train_per_class=1, test_per_class=1)
    assert fewshot.class_names("dtd", root=tmp_path) == ["banded", "zig zag"]
    with pytest.raises(ValueError, match="task.class_names=curated: the class folders of .* are not the prepared"):
        fewshot.class_names("dtd", root=tmp_path, source="curated")
    with pytest.raises(ValueError, match="task.class_names='nice'"):
        fewshot.class_names("dtd", root=tmp_path, source="nice")
