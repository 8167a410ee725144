"""The user's own data: task=imagefolder, task=text, task=instruction (readers, and 2 training steps each)."""
from __future__ import annotations

import csv
import json

import pytest
from helpers_training import training_config
from PIL import Image

from randlora.data import build_task_data, instruction, task_info, text
from randlora.data.manifest import file_list_hash, files_hash
from randlora.train import train


def _image_tree(root, classes=("rust", "moss", "chalk"), per_class=3):
    for split, n in (("train", per_class), ("test", 2)):
        for label, name in enumerate(classes):
            for i in range(n):
                folder = root / split / name
                folder.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (32, 32), (70 * label, 30 * i, 100)).save(folder / f"{i}.png")
    return root


def test_imagefolder_names_from_classnames_txt_or_folders(tmp_path):
    root = _image_tree(tmp_path / "mine")
    cfg = {"name": "imagefolder", "root": str(root)}
    assert task_info(cfg).class_names == ["chalk", "moss", "rust"]  # sorted folders
    (root / "classnames.txt").write_text("white chalk\ngreen moss\nred rust\n")
    assert task_info(cfg).class_names == ["white chalk", "green moss", "red rust"]
    (root / "classnames.txt").write_text("only one\n")
    with pytest.raises(ValueError, match=r"classnames.txt: 1 class names for 3 class folders"):
        task_info(cfg)
    (root / "classnames.txt").unlink()
    data = build_task_data({**cfg, "shots": 1, "min_iterations": 1, "batch_size": 2})
    assert len(data.train) == 3 and data.val is data.test
    entries = [f"{s}/{c}/{i}.png" for s, n in (("train", 3), ("test", 2)) for c in ("rust", "moss", "chalk")
               for i in range(n)]
    assert data.extras["data_manifest"] == file_list_hash(entries)
    with pytest.raises(ValueError, match="task imagefolder needs task.root=DIR"):
        task_info({"name": "imagefolder"})


def test_text_csv_and_jsonl_with_named_columns(tmp_path):
    rows = [("great movie", "pos"), ("awful plot", "neg"), ("great movie", "pos"), ("fine &amp; dandy", "pos"),
            ("so so", "neg"), ("so so", "pos"), ("", "neg")]
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([("review", "stars"), *rows])
    items, names = text.read_labelled(path, "review", "stars")
    assert names == ["neg", "pos"]  # sorted distinct labels
    assert items == [("great movie", 1), ("awful plot", 0), ("fine & dandy", 1)]  # dedup, conflict dropped
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text("\n".join(json.dumps({"t": t, "y": i % 3}) for i, t in enumerate("abcdefg")) + "\n")
    items, names = text.read_labelled(jsonl, "t", "y", class_names=["x", "y", "z"])
    assert names == ["x", "y", "z"] and items[:4] == [("a", 0), ("b", 1), ("c", 2), ("d", 0)]
    with pytest.raises(ValueError, match=r"r.jsonl: line 3: y 2 not one of x, y"):
        text.read_labelled(jsonl, "t", "y", class_names=["x", "y"])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['label'\]"):
        text.read_labelled(jsonl, "t", "label")
    numeric = tmp_path / "n.csv"
    numeric.write_text("text,label\n" + "".join(f"t{i},{i}\n" for i in range(12)))
    items, names = text.read_labelled(numeric)
    assert names == [str(i) for i in range(12)] and items[10] == ("t10", 10)  # not sorted as strings
    splits, _ = text.load_splits(jsonl, "t", "y", test_size=2, val_size=1, split_seed=3)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [4, 1, 2]
    with pytest.raises(ValueError, match="task text needs a test split"):
        text.load_splits(jsonl, "t", "y")


def test_instruction_extractors_and_gold_answers():
    words = instruction.AnswerExtractor.from_words(["answer1", "answer10"])
    assert words("### Response:\nthe correct answer is answer10") == "answer10"
    regex = instruction.AnswerExtractor("regex", r"answer is (\w+)")
    assert regex("prompt ### Response: the answer is blue.") == "blue" and regex("no") is None
    exact = instruction.AnswerExtractor("exact")
    assert exact(" 42 ") == "42"
    records = [{"instruction": "q", "input": "", "output": "the answer is red", "answer": ""}]
    assert instruction.with_gold_answers(records, regex, "f")[0]["answer"] == "red"
    with pytest.raises(ValueError, match="record 0: no 'answer'"):
        instruction.with_gold_answers([{**records[0], "output": "dunno"}], regex, "f")
    with pytest.raises(ValueError, match="task.answer=regex needs task.answer_regex"):
        instruction.AnswerExtractor("regex")


def _instruction_files(root):
    root.mkdir(parents=True, exist_ok=True)
    pairs = [{"instruction": f"Colour of item {i}? Say 'the answer is <colour>'.",
              "response": f"the answer is {'red' if i % 2 else 'blue'}"} for i in range(12)]
    (root / "train.jsonl").write_text("\n".join(json.dumps(p) for p in pairs) + "\n")
    (root / "test.json").write_text(json.dumps(pairs[:4]))
    return root / "train.jsonl", root / "test.json"


def test_three_own_data_tasks_train_two_steps(tmp_path):
    images = _image_tree(tmp_path / "images")
    result = train(training_config(tmp_path, ["backbone=tiny_vit", "task=imagefolder", f"task.root={images}",
                                              "adapter=randlora", "adapter.rank=4"], run="img"))
    assert result["status"] == "ok" and result["data_manifest"] and 0 <= result["metrics"]["test/acc"] <= 1

    csv_path = tmp_path / "notes.csv"
    with open(csv_path, "w", newline="") as handle:
        csv.writer(handle).writerows([("note", "mood")] + [(f"{w} day {i}", w) for i in range(12)
                                                           for w in ("happy", "sad")])
    result = train(training_config(tmp_path, ["backbone=tiny_bert", "task=text", f"task.path={csv_path}",
                                              "task.text_column=note", "task.label_column=mood",
                                              "task.test_size=6", "adapter=lora", "adapter.rank=2"], run="txt"))
    assert result["status"] == "ok" and result["task"] == "text" and "test/acc" in result["metrics"]
    assert result["data_manifest"] == files_hash([csv_path])

    train_path, test_path = _instruction_files(tmp_path / "instr")
    result = train(training_config(tmp_path, ["backbone=tiny_llama", "task=instruction",
                                              f"task.train_path={train_path}", f"task.test_path={test_path}",
                                              "task.answer=regex", "task.answer_regex='answer is (\\w+)'",
                                              "task.val_size=2", "task.max_new_tokens=4", "optim=adamw_llm",
                                              "adapter=lora", "adapter.rank=2"], run="ins"))
    assert result["status"] == "ok" and 0 <= result["metrics"]["test/acc"] <= 1
    assert result["data_manifest"] == files_hash([train_path, test_path])


def test_text_from_a_hub_dataset_without_validation_split(monkeypatch):
    datasets = pytest.importorskip("datasets")
    from randlora.data import own_tasks

    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    splits = {s: datasets.Dataset.from_dict({"sentence": [f"{s} a", f"{s} b"], "label": [0, 1]}, features=features)
              for s in ("train", "test")}

    def load(hub_id, split, name=None):
        if split not in splits:
            raise RuntimeError(f"could not load hub dataset '{hub_id}' split '{split}'")
        return splits[split]

    monkeypatch.setattr(own_tasks, "load_hub_split", load)
    cfg = {"name": "text", "path": None, "hub_id": "someone/reviews", "text_column": "sentence"}
    assert task_info(cfg).class_names == ["neg", "pos"]
    data = build_task_data(cfg)
    assert data.train[1] == ("train b", 1) and data.val is data.test and data.extras["data_manifest"] is None
