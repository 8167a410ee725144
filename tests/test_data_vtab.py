"""VTAB-1k: the 19 tasks, the NOAH/VPT folder layout, protocol splits, group means and clear errors."""
from __future__ import annotations

import math

import pytest
import torch

from helpers_data import ImageBackboneStandIn, make_vtab_tree
from randlora.data import vtab


def test_nineteen_tasks_in_three_groups():
    groups = {g: [t.name for t in vtab.TASKS.values() if t.group == g] for g in vtab.GROUPS}
    assert len(vtab.TASKS) == 19
    assert [len(groups[g]) for g in vtab.GROUPS] == [7, 4, 8]
    assert vtab.get_task("cifar100").folder == "cifar" and vtab.get_task("cifar").name == "cifar100"
    assert vtab.get_task("sun397").num_classes == 397 and vtab.get_task("smallnorb_ele").num_classes == 9
    with pytest.raises(ValueError, match="unknown VTAB-1k task 'imagenet'.*allowed: cifar100"):
        vtab.get_task("imagenet")


def test_protocol_splits_from_release_layout(tmp_path):
    make_vtab_tree(tmp_path, "cifar100", n_train=8, n_val=4, n_test=6, num_classes=5)
    backbone = ImageBackboneStandIn(size=12)
    splits = vtab.load_splits("cifar100", root=tmp_path, train_transform=backbone.train_transform,
                              eval_transform=backbone.eval_transform)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [12, 4, 6]  # train800val200, val200, test
    image, label = splits["test"][0]
    assert isinstance(image, torch.Tensor) and image.shape == (3, 12, 12) and 0 <= label < 5
    lines = (tmp_path / "cifar" / "test.txt").read_text().split()
    assert splits["test"].labels[0] == int(lines[1])

    with_val = vtab.load_splits("cifar", root=tmp_path, use_val=True)
    assert [len(with_val[s]) for s in ("train", "val", "test")] == [8, 4, 6]
    train_paths = {p for p, _ in with_val["train"].samples}
    assert train_paths.isdisjoint(p for p, _ in with_val["val"].samples)


def test_paths_with_spaces_and_blank_lines(tmp_path):
    folder = make_vtab_tree(tmp_path, "eurosat", n_train=2, n_val=1, n_test=1)
    (folder / "my images").mkdir()
    (folder / "images" / "test" / "00000.png").rename(folder / "my images" / "a b.png")
    (folder / "test.txt").write_text("my images/a b.png 3\n\n")
    samples = vtab.load_split(tmp_path, "eurosat", "test").samples
    assert samples == [(folder / "my images" / "a b.png", 3)]


def test_missing_root_and_folder_name_path_and_expected_files(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        vtab.load_splits("dtd", root=tmp_path / "vtab-1k")
    message = str(info.value)
    assert "vtab-1k" in message and "train800val200.txt" in message and "test.txt" in message
    with pytest.raises(FileNotFoundError, match=r"task folder not found: .*dtd"):
        vtab.load_splits("dtd", root=tmp_path)


def test_missing_list_file_lists_what_was_found(tmp_path):
    folder = make_vtab_tree(tmp_path, "kitti", n_train=2, n_val=1, n_test=1)
    (folder / "train800val200.txt").unlink()
    with pytest.raises(FileNotFoundError) as info:
        vtab.load_split(tmp_path, "kitti", "train")
    message = str(info.value)
    assert str(folder / "train800val200.txt") in message
    assert "found ['test.txt', 'train800.txt', 'val200.txt']" in message
    assert len(vtab.load_split(tmp_path, "kitti", "train", use_val=True)) == 2


def test_malformed_line_bad_label_and_missing_image(tmp_path):
    folder = make_vtab_tree(tmp_path, "kitti", n_train=2, n_val=1, n_test=2, num_classes=4)
    test_file = folder / "test.txt"
    good = test_file.read_text().splitlines()
    test_file.write_text(good[0] + "\nimages/test/00001.png\n")
    with pytest.raises(ValueError, match=r"test.txt:2: expected 'relative/path label'"):
        vtab.load_split(tmp_path, "kitti", "test")
    test_file.write_text(good[0] + "\nimages/test/00001.png 4\n")
    with pytest.raises(ValueError, match=r"test.txt:2: label 4 outside \[0, 4\)"):
        vtab.load_split(tmp_path, "kitti", "test")
    test_file.write_text(good[0] + "\nimages/test/missing.png 1\n")
    with pytest.raises(FileNotFoundError, match=r"1 listed image\(s\) not found.*missing.png"):
        vtab.load_split(tmp_path, "kitti", "test")


def test_group_means():
    accs = {t: 0.5 for t in vtab.TASKS}
    accs.update({"cifar100": 0.9, "eurosat": 0.1, "dmlab": 0.3})
    means = vtab.group_means(accs)
    assert means["natural"] == pytest.approx((0.9 + 6 * 0.5) / 7)
    assert means["specialized"] == pytest.approx((0.1 + 3 * 0.5) / 4)
    assert means["structured"] == pytest.approx((0.3 + 7 * 0.5) / 8)
    assert means["overall"] == pytest.approx(sum(accs.values()) / 19)
    assert means["group_average"] == pytest.approx((means["natural"] + means["specialized"] + means["structured"]) / 3)


def test_group_means_partial_and_errors():
    means = vtab.group_means({"cifar": 0.8, "svhn": 0.6})
    assert means == pytest.approx({"natural": 0.7, "overall": 0.7})  # missing groups are absent, not 0
    with pytest.raises(ValueError, match="unknown VTAB-1k task 'mnist'"):
        vtab.group_means({"mnist": 0.9})
    with pytest.raises(ValueError, match="'dtd' is NaN"):
        vtab.group_means({"dtd": math.nan})
    with pytest.raises(ValueError, match="no task accuracies"):
        vtab.group_means({})


def test_hub_mirror_fails_clearly_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(RuntimeError, match=r"could not load hub dataset 'someone/vtab-1k'.*task.root"):
        vtab.load_splits("dtd", root=tmp_path, hub_id="someone/vtab-1k")  # hub_id wins over root
    with pytest.raises(ValueError, match="task.root.*task.hub_id"):
        vtab.load_splits("dtd")


def test_hub_id_map_per_task():
    assert vtab.hub_id_for("cifar100", {"cifar": "a/c100", "dtd": "b/dtd"}) == "a/c100"
    assert vtab.hub_id_for("kitti", {"dtd": "b/dtd"}) is None
    assert vtab.hub_id_for("kitti", "someone/vtab-1k") == "someone/vtab-1k"  # one multi-config mirror
    with pytest.raises(ValueError, match="unknown VTAB-1k task 'kitty'"):
        vtab.hub_id_for("kitti", {"kitty": "x/y"})
