"""``task_info`` / ``build_task_data`` dispatch for every task, with OmegaConf configs and backbone stand-ins."""
from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from helpers_data import (ImageBackboneStandIn, TextBackboneStandIn, make_commonsense_records, make_commonsense_root,
                          make_commonsense_train_file, make_image_folder, make_vtab_tree, write_commonsense_file,
                          write_tweets_csv)
from randlora.data import TASKS, TaskData, TaskInfo, build_task_data, commonsense, register_task, task_info


def test_dispatch_table_and_unknown_name():
    assert set(TASKS) >= {"tweets", "vtab", "fewshot", "commonsense", "synthetic_fullrank"}
    with pytest.raises(ValueError, match=r"unknown task.name 'squad'; allowed: tweets, vtab"):
        task_info({"name": "squad"})
    with pytest.raises(KeyError, match="task.name"):
        task_info({})


def test_tweets_task(tmp_path):
    cfg = OmegaConf.create({"name": "tweets", "train_size": 24, "val_size": 6, "test_size": 12,
                            "split_seed": 0, "path": str(write_tweets_csv(tmp_path / "t.csv", per_class=15))})
    assert task_info(cfg) == TaskInfo(3, ["negative", "neutral", "positive"])
    backbone = TextBackboneStandIn()
    data = build_task_data(cfg, backbone)
    assert isinstance(data, TaskData) and data.metric == "acc" and data.num_classes == 3
    assert [len(data.train), len(data.val), len(data.test)] == [24, 6, 12]
    assert 0 < data.extras["majority_baseline"] < 1
    texts, labels = next(iter(DataLoader(data.train, batch_size=4, collate_fn=data.collate)))
    assert len(texts) == 4 and isinstance(texts[0], str) and labels.dtype == torch.long


def test_vtab_task_with_image_transforms(tmp_path):
    make_vtab_tree(tmp_path, "svhn", n_train=6, n_val=2, n_test=4)
    cfg = OmegaConf.create({"name": "vtab", "dataset": "svhn", "root": str(tmp_path), "hub_id": None,
                            "use_val": False})
    info = task_info(cfg)
    assert info.num_classes == 10 and info.class_names[3] == "class 3"
    data = build_task_data(cfg, ImageBackboneStandIn(size=8))
    assert [len(data.train), len(data.val), len(data.test)] == [8, 2, 4]
    assert data.subtask == "svhn" and data.extras["group"] == "natural" and data.collate is None
    images, labels = next(iter(DataLoader(data.train, batch_size=8)))
    assert images.shape == (8, 3, 8, 8) and labels.shape == (8,)


def test_fewshot_task(tmp_path):
    make_image_folder(tmp_path, "oxford_pets", classes=("abyssinian", "great_pyrenees"), train_per_class=5)
    cfg = OmegaConf.create({"name": "fewshot", "dataset": "oxford_pets", "root": str(tmp_path), "hub_id": None,
                            "shots": 2, "fraction": None, "sample_seed": 0, "min_iterations": 3,
                            "batch_size": 2, "val_per_class": 0})
    assert task_info(cfg) == TaskInfo(2, ["abyssinian", "great pyrenees"], ["a photo of a {c}, a type of pet."])
    data = build_task_data(cfg, ImageBackboneStandIn(size=8))
    from randlora.data.manifest import file_list_hash

    entries = [f"{split}/{cls}/{i:04d}.png" for split, n in (("train", 5), ("test", 2))
               for cls in ("abyssinian", "great_pyrenees") for i in range(n)]
    assert len(data.train) == 8 and data.extras == {"paper_epochs": 10, "val_is_test": True,
                                                    "data_manifest": file_list_hash(entries)}
    assert data.train[0][0].shape == (3, 8, 8)
    cfg.fraction = 0.5
    with pytest.raises(ValueError, match="task.shots=2 and task.fraction=0.5 are both set"):
        build_task_data(cfg, ImageBackboneStandIn(size=8))


def test_commonsense_task(tmp_path):
    make_commonsense_root(tmp_path / "tests", ["boolq", "piqa", "winogrande"], n=5)
    train_path = make_commonsense_train_file(tmp_path / "commonsense_15k.json", per_task=4)
    cfg = OmegaConf.create({"name": "commonsense", "train_path": str(train_path), "test_root": str(tmp_path / "tests"),
                            "tasks": ["boolq", "piqa", "winogrande"], "cutoff_len": 64, "max_eval_samples": 3,
                            "val_size": 4, "split_seed": 42, "train_on_inputs": False})
    assert task_info(cfg) == TaskInfo(None, None)
    data = build_task_data(cfg, TextBackboneStandIn())
    assert len(data.train) == 28 and len(data.val) == 4 and data.val.task is None
    assert set(data.test) == {"boolq", "piqa", "winogrande"}
    assert len(data.test["piqa"]) == 3 and data.test["piqa"].task == "piqa"
    assert set(data.test["boolq"][0]) == {"instruction", "input", "output", "answer"}
    batch = next(iter(DataLoader(data.train, batch_size=2, collate_fn=data.collate)))
    assert batch["input_ids"].shape[1] <= 64 and (batch["labels"] == -100).any()

    cfg.tasks = None  # all 8: hellaswag etc. are missing from the fixture root
    with pytest.raises(FileNotFoundError, match="no test file for task 'social_i_qa'"):
        build_task_data(cfg, None)
    cfg.tasks = ["boolq", "BoolQ"]
    with pytest.raises(ValueError, match="task.tasks: unknown task 'BoolQ'"):
        build_task_data(cfg, None)


def test_commonsense_mixes_training_files_and_draws_seeded_subsets(tmp_path):
    files = [write_commonsense_file(tmp_path / f"{task}.train.json", make_commonsense_records(task, 10))
             for task in ("boolq", "ARC-Easy")]
    make_commonsense_root(tmp_path / "tests", ["boolq", "piqa"], n=12)
    cfg = OmegaConf.create({"name": "commonsense", "train_path": [str(f) for f in files], "train_size": 8,
                            "val_size": 2, "split_seed": 3, "test_root": str(tmp_path / "tests"),
                            "tasks": ["boolq", "piqa"], "max_eval_samples": 5, "eval_sample_seed": 0})
    data = build_task_data(cfg, None)
    pool = json.loads(files[0].read_text()) + json.loads(files[1].read_text())
    drawn = list(data.train.records) + list(data.val.records)
    assert len(data.train) == 6 and len(data.val) == 2 and all(r in pool for r in drawn)
    assert len({json.dumps(r, sort_keys=True) for r in drawn}) == 8  # without replacement
    assert build_task_data(cfg, None).train.records == data.train.records  # seeded
    cfg.split_seed = 4
    assert build_task_data(cfg, None).train.records != data.train.records
    test_records = json.loads((tmp_path / "tests" / "piqa" / "test.json").read_text())
    sample = data.test["piqa"].records
    assert len(sample) == 5 and sample != test_records[:5]  # a seeded sample, not the first 5 ...
    assert sample == sorted(sample, key=test_records.index)  # ... kept in file order
    cfg.eval_sample_seed = None
    assert build_task_data(cfg, None).test["piqa"].records == test_records[:5]
    cfg.train_size = 0
    with pytest.raises(ValueError, match=r"task.train_size=0 must be a positive integer or null"):
        build_task_data(cfg, None)


def test_commonsense_malformed_training_record_is_reported(tmp_path):
    path = make_commonsense_train_file(tmp_path / "train.json", per_task=1)
    text = path.read_text().replace('"answer"', '"answr"', 1)
    path.write_text(text)
    with pytest.raises(ValueError, match=r"train.json: record 0: missing key 'answer'"):
        build_task_data({"name": "commonsense", "train_path": str(path)}, None)


def test_synthetic_hook_and_register_task(monkeypatch):
    info = task_info({"name": "synthetic_fullrank"})  # served by randlora.data.synthetic through the hook
    assert info.num_classes is None and info.class_names is None
    with pytest.raises(ValueError, match="needs backbone=synthetic_mlp"):
        build_task_data({"name": "synthetic_fullrank"}, object())
    monkeypatch.setitem(TASKS, "toy", TASKS["tweets"])  # restored after the test
    register_task("toy", lambda cfg: TaskInfo(2, ["a", "b"]),
                  lambda cfg, backbone: TaskData([1], [2], [3], 2, ["a", "b"]))
    assert task_info({"name": "toy"}).num_classes == 2
    assert build_task_data({"name": "toy"}).test == [3]
    assert commonsense.TASKS  # module re-exported
