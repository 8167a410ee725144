"""--check: passes on a good prepared root, names each problem on bad ones; VTAB-1k unpacking and checking."""
from __future__ import annotations

import json
import shutil
import zipfile

import pytest
from helpers_data import make_vtab_tree
from PIL import Image

from randlora.data.prepare import command, expected
from randlora.data.prepare.layout import DatasetWriter


@pytest.fixture
def good_root(tmp_path, monkeypatch):
    """A prepared 'dtd' of 3 classes: 4 train + 2 test images each, with manifest and classnames."""
    monkeypatch.setitem(expected.FEWSHOT, "dtd", expected.Sizes(3, 12, 6, per_class={"test": 2}))
    writer = DatasetWriter(tmp_path, "dtd", ["banded", "braided", "zigzagged"])
    for label in range(3):
        for split, n in (("train", 4), ("test", 2)):
            for i in range(n):
                writer.add_image(split, label, Image.new("RGB", (4, 4), (50 * label, 0, 0)), f"{i}.png")
    writer.finish()
    return tmp_path


def _check(root, capsys, *extra):
    code = command.main(["fewshot", "--root", str(root), "--datasets", "dtd", "--check", *extra])
    return code, capsys.readouterr().err.strip().splitlines()


def test_good_root_passes(good_root, capsys):
    assert _check(good_root, capsys) == (0, [])


def test_missing_class_is_named(good_root, capsys):
    shutil.rmtree(good_root / "dtd" / "train" / "001_braided")
    code, lines = _check(good_root, capsys)
    assert code == 1
    assert "dtd/train: 2 classes, expected 3" in lines
    assert "dtd/train: class 1 missing (no folder 001*)" in lines
    assert "dtd/train: 8 images, expected 12" in lines
    assert "dtd: classnames.txt has 3 names for 2 class folders" in lines


def test_wrong_count_is_named(good_root, capsys):
    (good_root / "dtd" / "test" / "002_zigzagged" / "0.png").unlink()
    assert _check(good_root, capsys) == (1, ["dtd/test: class 002_zigzagged has 1 images, expected 2",
                                             "dtd/test: 5 images, expected 6"])


def test_corrupt_image_is_named_unless_images_are_skipped(good_root, capsys):
    bad = good_root / "dtd" / "train" / "000_banded" / "2.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, lines = _check(good_root, capsys)
    assert code == 1 and len(lines) == 1 and lines[0].startswith(f"dtd/train: unreadable image {bad}: ")
    assert _check(good_root, capsys, "--skip-images") == (0, [])


def test_unprepared_dataset_says_which_command_prepares_it(tmp_path, capsys):
    code, lines = _check(tmp_path, capsys)
    assert code == 1 and lines == [f"dtd: not prepared ({tmp_path / 'dtd'} missing; python scripts/prepare_data.py "
                                   f"fewshot --root {tmp_path} --datasets dtd)"]


def test_vtab_archive_is_unpacked_and_checked(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(expected, "VTAB_LISTS", {"train800.txt": 8, "val200.txt": 2, "train800val200.txt": 10})
    monkeypatch.setitem(expected.VTAB_TEST, "dtd", 6)
    make_vtab_tree(tmp_path / "src" / "vtab-1k", "dtd", n_train=8, n_val=2, n_test=6)
    archive = tmp_path / "vtab-1k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in (tmp_path / "src").rglob("*"):
            zf.write(path, path.relative_to(tmp_path / "src"))
    root = tmp_path / "vtab"
    args = ["vtab", "--root", str(root), "--datasets", "dtd"]
    assert command.main([*args, "--archive", str(archive)]) == 0
    assert (root / "dtd" / "train800val200.txt").is_file() and not (root / ".vtab-unpacking").exists()
    assert json.loads((root / "dtd" / "manifest.json").read_text())["lists"]["test.txt"]["lines"] == 6
    (root / "dtd" / "test.txt").write_text("images/test/00000.png 0\nimages/test/00001.png 99\n")
    capsys.readouterr()
    assert command.main([*args, "--check"]) == 1
    assert "label 99 outside [0, 47)" in capsys.readouterr().err


def test_unknown_dataset_is_bad_input(tmp_path, capsys):
    assert command.main(["fewshot", "--root", str(tmp_path), "--datasets", "dtdd", "--check"]) == 2
    assert "unknown few-shot dataset 'dtdd'" in capsys.readouterr().err


def test_vtab_and_commonsense_runs_record_what_they_read(tmp_path):
    from helpers_data import make_commonsense_root

    from randlora.data import build_task_data

    make_vtab_tree(tmp_path / "vtab", "dtd", n_train=4, n_val=2, n_test=3)
    cfg = {"name": "vtab", "dataset": "dtd", "root": str(tmp_path / "vtab")}
    first = build_task_data(cfg).extras["data_manifest"]
    assert first == build_task_data(cfg).extras["data_manifest"] and len(first) == 64
    test_list = tmp_path / "vtab" / "dtd" / "test.txt"
    line = test_list.read_text().splitlines()[0]
    test_list.write_text(test_list.read_text().replace(line, f"{line.rsplit(' ', 1)[0]} 46", 1))
    assert build_task_data(cfg).extras["data_manifest"] != first  # one label changed

    root = make_commonsense_root(tmp_path / "cs", tasks=("boolq",))
    cs = {"name": "commonsense", "train_path": None, "test_root": str(root), "tasks": ["boolq"]}
    hashed = build_task_data(cs).extras["data_manifest"]
    (root / "boolq" / "test.json").write_text((root / "boolq" / "test.json").read_text() + " ")
    assert build_task_data(cs).extras["data_manifest"] != hashed


def test_expected_table_is_consistent():
    """Per-class counts times classes give the split totals; every dataset of the benchmark has an entry."""
    from randlora.data.fewshot import DATASETS
    from randlora.data.vtab import TASKS

    assert set(expected.FEWSHOT) == set(DATASETS) and set(expected.VTAB_TEST) == set(TASKS)
    for name, sizes in expected.FEWSHOT.items():
        for split, each in (sizes.per_class or {}).items():
            assert each * sizes.classes == sizes.splits()[split], (name, split)
