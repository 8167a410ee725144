"""LLM-Adapters commonsense format: loading, validation errors, prompts, answer extraction, scoring, collate."""
from __future__ import annotations

import json

import pytest
import torch

from helpers_data import (GOLD_WORDS, CharTokenizer, make_commonsense_records, make_commonsense_root,
                          write_commonsense_file)
from randlora.data import commonsense as cs

HEADER = "Below is an instruction that describes a task. Write a response that appropriately completes the request."


def test_tasks_are_the_eight_llm_adapters_names():
    assert list(cs.TASKS) == ["boolq", "piqa", "social_i_qa", "hellaswag", "winogrande", "ARC-Easy",
                              "ARC-Challenge", "openbookqa"]


def test_load_round_trip_and_missing_input_defaults_to_empty(tmp_path):
    records = make_commonsense_records("piqa", 5)
    del records[0]["input"]
    path = write_commonsense_file(tmp_path / "piqa.test.json", records)
    loaded = cs.load(path)
    assert len(loaded) == 5
    assert loaded[0]["input"] == ""
    assert loaded[3] == records[3]


@pytest.mark.parametrize(
    "bad_record, key",
    [
        ({"instruction": "q", "input": ""}, "output"),
        ({"input": "", "output": "o", "answer": "true"}, "instruction"),
        ({"instruction": "q", "input": "", "output": "o"}, "answer"),
        ({"instruction": "q", "input": "", "output": 3, "answer": "true"}, "output"),
        ({"instruction": "q", "input": ["x"], "output": "o", "answer": "true"}, "input"),
    ],
)
def test_malformed_record_names_file_index_and_key(tmp_path, bad_record, key):
    records = make_commonsense_records("boolq", 4)
    records.insert(2, bad_record)
    path = write_commonsense_file(tmp_path / "boolq" / "test.json", records)
    with pytest.raises(ValueError) as info:
        cs.load(path)
    message = str(info.value)
    assert str(path) in message and "record 2" in message and f"'{key}'" in message


def test_non_object_record_and_non_list_file(tmp_path):
    path = write_commonsense_file(tmp_path / "a.json", [make_commonsense_records("boolq", 1)[0], "oops"])
    with pytest.raises(ValueError, match=r"record 1: expected an object"):
        cs.load(path)
    path.write_text(json.dumps({"instruction": "q"}))
    with pytest.raises(ValueError, match="expected a JSON list"):
        cs.load(path)


def test_invalid_json_names_file_and_position(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"instruction": "q", "output": "o", "answer": "true"},\n  {"instruction": \n]')
    with pytest.raises(ValueError) as info:
        cs.load(path)
    assert str(path) in str(info.value) and "line 4" in str(info.value) and "char" in str(info.value)


def test_answer_outside_task_vocabulary_is_rejected(tmp_path):
    records = make_commonsense_records("winogrande", 3)
    records[1]["answer"] = "option3"
    write_commonsense_file(tmp_path / "winogrande.test.json", records)
    with pytest.raises(ValueError, match=r"record 1: key 'answer' is 'option3'.*option1/option2"):
        cs.load_test_set(tmp_path, "winogrande")


def test_find_test_file_both_layouts_and_missing(tmp_path):
    make_commonsense_root(tmp_path / "nested", ["boolq"], layout="nested")
    make_commonsense_root(tmp_path / "flat", ["boolq"], layout="flat")
    assert cs.find_test_file(tmp_path / "nested", "boolq") == tmp_path / "nested" / "boolq" / "test.json"
    assert cs.find_test_file(tmp_path / "flat", "boolq") == tmp_path / "flat" / "boolq.test.json"
    with pytest.raises(FileNotFoundError, match=r"hellaswag.*hellaswag/test.json.*hellaswag.test.json"):
        cs.find_test_file(tmp_path / "flat", "hellaswag")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cs.find_test_file(tmp_path / "nowhere", "boolq")
    with pytest.raises(ValueError, match="unknown commonsense task 'arc_easy'"):
        cs.find_test_file(tmp_path / "flat", "arc_easy")


def test_prompt_templates():
    """Exact strings: tests/test_fidelity_commonsense.py; here the two uses and the input block."""
    record = {"instruction": "Say hi.", "input": "", "output": "hi", "answer": "hi"}
    assert cs.prompt(record, with_answer=False).startswith(HEADER)
    assert cs.prompt(record, with_answer=True) == cs.train_prompt(record, "hi")
    assert cs.prompt(record, with_answer=True).endswith("### Response:\n" + " " * 16 + "hi")
    with_input = dict(record, input="to Bob")
    text = cs.prompt(with_input, with_answer=False)
    assert text.startswith("Below is an instruction that describes a task, paired with an input that provides "
                           "further context. Write a response that appropriately completes the request.")
    assert "### Input:\n" + " " * 16 + "to Bob\n" in text and "### Input:" not in cs.prompt(record, False)


@pytest.mark.parametrize("task", list(cs.TASKS))
def test_extract_every_answer_word_of_every_task(task):
    for word in cs.TASKS[task].answer_words:
        assert cs.extract_answer(task, f"the correct answer is {word}") == word
        assert cs.extract_answer(task, f"{word}. Because {cs.TASKS[task].answer_words[0]} is wrong") == word
    assert cs.extract_answer(task, "I do not know") is None
    assert cs.extract_answer(task, "") is None


def test_extract_first_match_only_after_response_marker_and_case_sensitive():
    generation = cs.prompt(make_commonsense_records("ARC-Easy", 1)[0], with_answer=False) + "answer4 then answer1"
    assert cs.extract_answer("ARC-Easy", generation) == "answer4"  # the prompt lists answer1..4; ignored
    assert cs.extract_answer("boolq", "False, not true") == "true"  # LLM-Adapters' regex is case sensitive
    assert cs.extract_answer("piqa", "the correct answer is answer1") is None  # other task's words
    assert cs.extract_answer(None, "maybe ending3") == "ending3"  # union vocabulary for mixed records
    with pytest.raises(ValueError, match="unknown commonsense task"):
        cs.extract_answer("siqa", "answer1")


@pytest.mark.parametrize("task", list(cs.TASKS))
def test_score_gold_outputs_is_one_and_wrong_words_lower_it(task):
    records = make_commonsense_records(task, 8)
    assert cs.score(task, records, [r["output"] for r in records]) == 1.0
    assert cs.score(task, records, [cs.prompt(r, with_answer=True) for r in records]) == 1.0
    words = GOLD_WORDS[task]
    shifted = [f"the correct answer is {words[(words.index(r['answer']) + 1) % len(words)]}" for r in records]
    assert cs.score(task, records, shifted) == 0.0
    half = [r["output"] if i % 2 == 0 else "no idea" for i, r in enumerate(records)]
    assert cs.score(task, records, half) == 0.5


def test_score_length_mismatch():
    records = make_commonsense_records("boolq", 2)
    with pytest.raises(ValueError, match="2 records but 1 generations"):
        cs.score("boolq", records, ["true"])


def test_evaluate_generations_batches_prompts():
    records = make_commonsense_records("openbookqa", 5)
    seen: list[str] = []

    def generate(prompts: list[str]) -> list[str]:
        seen.extend(prompts)
        return ["the correct answer is answer1"] * len(prompts)

    acc = cs.evaluate_generations("openbookqa", records, generate, batch_size=2)
    assert seen == [cs.prompt(r, with_answer=False) for r in records]
    assert acc == pytest.approx(sum(r["answer"] == "answer1" for r in records) / 5)


def test_split_train_val_is_seeded_and_disjoint():
    records = [r for t in ("boolq", "piqa") for r in make_commonsense_records(t, 10)]
    train, val = cs.split_train_val(records, 5, seed=42)
    again_train, again_val = cs.split_train_val(records, 5, seed=42)
    assert (train, val) == (again_train, again_val)
    assert len(val) == 5 and len(train) == 15
    assert {r["instruction"] for r in train}.isdisjoint(r["instruction"] for r in val)
    assert cs.split_train_val(records, 5, seed=1)[1] != val
    with pytest.raises(ValueError, match="task.val_size=20"):
        cs.split_train_val(records, 20, seed=0)


@pytest.mark.parametrize("train_on_inputs", [True, False])
def test_collator_labels_padding_and_prompt_masking(train_on_inputs):
    records = make_commonsense_records("boolq", 2)
    records[1]["instruction"] = "short?"
    tokenizer = CharTokenizer()
    batch = cs.CausalLMCollator(tokenizer, cutoff_len=512, train_on_inputs=train_on_inputs)(records)
    full = [tokenizer(cs.prompt(r, True))["input_ids"] + [tokenizer.eos_token_id] for r in records]
    width = max(map(len, full))
    assert batch["input_ids"].shape == (2, width)
    for row, ids in enumerate(full):
        assert batch["input_ids"][row, : len(ids)].tolist() == ids
        assert batch["attention_mask"][row].sum().item() == len(ids)
        assert (batch["labels"][row, len(ids):] == -100).all()
        n_prompt = len(tokenizer(cs.train_prompt(records[row], ""))["input_ids"])
        target = batch["labels"][row, : len(ids)]
        if train_on_inputs:
            assert target.tolist() == ids
        else:
            assert (target[:n_prompt] == -100).all() and target[n_prompt:].tolist() == ids[n_prompt:]
    assert batch["prompts"] == [cs.prompt(r, False) for r in records]
    assert batch["answers"] == ["true", "false"]
    assert batch["input_ids"].dtype == torch.long


def test_collator_truncates_to_cutoff_without_eos():
    record = make_commonsense_records("piqa", 1)[0]
    batch = cs.CausalLMCollator(CharTokenizer(), cutoff_len=32)([record])
    assert batch["input_ids"].shape == (1, 32)
    assert batch["input_ids"][0, -1].item() != CharTokenizer.eos_token_id
    with pytest.raises(ValueError, match="cutoff_len"):
        cs.CausalLMCollator(CharTokenizer(), cutoff_len=0)
