"""Commonsense reasoning in the LLM-Adapters instruction format (BoolQ, PIQA, SIQA, HellaSwag, WinoGrande,
ARC-e, ARC-c, OBQA), as used by the RandLoRA paper's Table 1.

File format: a JSON list of records
    {"instruction": "...", "input": "", "output": "the correct answer is answer3", "answer": "answer3"}
The training sets (commonsense_15k.json, commonsense_170k.json) and the 8 test sets share it; the ``output``
is the training target, ``answer`` the gold label compared with the word extracted from a generation.

Prompts, byte for byte as the authors used them (PAPER.md §3b): training strings from their
``commonsense_reasoning/finetune.py`` ``generate_prompt`` (``prompt(record, with_answer=True)``), evaluation strings
from ``commonsense_evaluate.py`` (= LLM-Adapters', ``prompt(record, with_answer=False)``). Both are triple-quoted
f-strings indented inside a function, so every line after the first starts with 16 spaces; they differ in
whitespace: training ends the first line with "request.  " (two spaces) without input and "request. " (one)
with input, and its blank lines after the first are 16 spaces; evaluation ends it with "request. " without
input and "request." with input, and its blank lines are empty. The "### Input:" block appears only when
``input`` is non-empty. The masked prompt of ``train_on_inputs=false`` is the training string with an empty
output, as in their ``finetune.py``.

Evaluation: generation from the evaluation prompt (``task.num_beams``: 4 in Table 1, the authors'; 1 = greedy,
the cheap option); the predicted answer is the FIRST occurrence in the generated response of any of the
task's answer words (``re.search`` over ``word1|word2|...``, case sensitive, as LLM-Adapters'
``extract_answer``); accuracy = mean(prediction == record["answer"]).
"""
from __future__ import annotations

import functools

import json
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

_INDENT = " " * 16
TRAIN_PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.  \n"
    "\n" + _INDENT + "### Instruction:\n" + _INDENT + "{instruction}\n" + _INDENT + "\n"
    + _INDENT + "### Response:\n" + _INDENT + "{output}"
)
TRAIN_PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request. \n"
    "\n" + _INDENT + "### Instruction:\n" + _INDENT + "{instruction}\n" + _INDENT + "\n"
    + _INDENT + "### Input:\n" + _INDENT + "{input}\n" + _INDENT + "\n"
    + _INDENT + "### Response:\n" + _INDENT + "{output}"
)
EVAL_PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request. \n"
    "\n" + _INDENT + "### Instruction:\n" + _INDENT + "{instruction}\n"
    "\n" + _INDENT + "### Response:\n" + _INDENT
)
EVAL_PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n"
    "\n" + _INDENT + "### Instruction:\n" + _INDENT + "{instruction}\n"
    "\n" + _INDENT + "### Input:\n" + _INDENT + "{input}\n"
    "\n" + _INDENT + "### Response:\n" + _INDENT
)
RESPONSE_MARKER = "### Response:"
IGNORE_INDEX = -100


@dataclass(frozen=True)
class CommonsenseTask:
    """One evaluation task: its LLM-Adapters name and the answer words its regex looks for."""

    name: str
    answer_words: tuple[str, ...]

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("|".join(re.escape(word) for word in self.answer_words))


_FIVE_ANSWERS = tuple(f"answer{i}" for i in range(1, 6))
TASKS: dict[str, CommonsenseTask] = {
    task.name: task
    for task in (
        CommonsenseTask("boolq", ("true", "false")),
        CommonsenseTask("piqa", ("solution1", "solution2")),
        CommonsenseTask("social_i_qa", _FIVE_ANSWERS),
        CommonsenseTask("hellaswag", ("ending1", "ending2", "ending3", "ending4")),
        CommonsenseTask("winogrande", ("option1", "option2")),
        CommonsenseTask("ARC-Easy", _FIVE_ANSWERS),
        CommonsenseTask("ARC-Challenge", _FIVE_ANSWERS),
        CommonsenseTask("openbookqa", _FIVE_ANSWERS),
    )
}
"""The 8 tasks, spelled as LLM-Adapters spells them. SIQA, ARC and OBQA share LLM-Adapters' answer1-5 regex."""

_ALL_WORDS_PATTERN = re.compile(
    "|".join(re.escape(w) for w in sorted({w for t in TASKS.values() for w in t.answer_words}, key=len, reverse=True))
)


def _check_task(task: str) -> CommonsenseTask:
    if task not in TASKS:
        raise ValueError(f"unknown commonsense task '{task}'; allowed: {', '.join(TASKS)}")
    return TASKS[task]


# --------------------------------------------------------------------------------------------- loading


def load(path: str | os.PathLike, require_answer: bool = True) -> list[dict[str, str]]:
    """Read an LLM-Adapters JSON file and validate every record.

    Each record must be an object with string ``instruction`` and ``output`` (and ``answer`` unless
    ``require_answer=False``); ``input`` is optional (missing or null becomes ""). Returns records with exactly
    the keys ``instruction``, ``input``, ``output``, ``answer`` ("" when absent and not required).
    Errors are ``FileNotFoundError`` / ``ValueError`` naming the file, and for a bad record its index and key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"commonsense file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}: invalid JSON at line {err.lineno} column {err.colno} (char {err.pos}): {err.msg}"
        ) from None
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(raw).__name__}")
    required = ("instruction", "output", "answer") if require_answer else ("instruction", "output")
    records = []
    for index, record in enumerate(raw):
        records.append(_validated(record, index, path, required))
    return records


def _validated(record: Any, index: int, path: Path, required: Sequence[str]) -> dict[str, str]:
    where = f"{path}: record {index}"
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected an object with keys {list(required)}, got {type(record).__name__}")
    for key in required:
        if key not in record:
            raise ValueError(f"{where}: missing key '{key}' (required: {', '.join(required)}; optional: input)")
    clean = {}
    for key in ("instruction", "input", "output", "answer"):
        value = record.get(key)
        if value is None and key not in required:
            value = ""
        if not isinstance(value, str):
            raise ValueError(f"{where}: key '{key}' must be a string, got {type(value).__name__} ({value!r:.60})")
        clean[key] = value
    if not clean["instruction"].strip():
        raise ValueError(f"{where}: key 'instruction' is empty")
    return clean


def find_test_file(root: str | os.PathLike, task: str) -> Path:
    """The test file of ``task`` under ``root``: ``<root>/<task>/test.json`` (LLM-Adapters' layout) or
    ``<root>/<task>.test.json`` (flat layout). Raises ``FileNotFoundError`` naming both candidates."""
    _check_task(task)
    root = Path(root)
    candidates = [root / task / "test.json", root / f"{task}.test.json"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if not root.is_dir():
        raise FileNotFoundError(f"commonsense test root does not exist: {root}")
    raise FileNotFoundError(
        f"no test file for task '{task}' under {root}: expected {candidates[0]} or {candidates[1]} "
        f"(set task.tasks to the tasks you have)"
    )


def load_test_set(root: str | os.PathLike, task: str) -> list[dict[str, str]]:
    """Load the test records of ``task`` and check that every gold ``answer`` is one of the task's words."""
    spec = _check_task(task)
    path = find_test_file(root, task)
    records = load(path)
    if not records:
        raise ValueError(f"{path}: the test file of task '{task}' holds no records; an empty test set has no "
                         "accuracy (give the task's test records, or leave it out of task.tasks)")
    for index, record in enumerate(records):
        if record["answer"] not in spec.answer_words:
            raise ValueError(
                f"{path}: record {index}: key 'answer' is '{record['answer']}', not an answer word of task "
                f"'{task}' ({'/'.join(spec.answer_words)})"
            )
    return records


# ------------------------------------------------------------------------------------ prompt and answers


def prompt(record: dict[str, str], with_answer: bool) -> str:
    """The authors' training string with the target ``output`` (``with_answer``), or their evaluation string."""
    has_input = bool(record.get("input"))
    if with_answer:
        return train_prompt(record, record["output"])
    template = EVAL_PROMPT_WITH_INPUT if has_input else EVAL_PROMPT_NO_INPUT
    return template.format(instruction=record["instruction"], input=record.get("input", ""))


def train_prompt(record: dict[str, str], output: str) -> str:
    """The authors' training string of ``record`` ending in ``output`` ("" gives the masked user prompt)."""
    template = TRAIN_PROMPT_WITH_INPUT if record.get("input") else TRAIN_PROMPT_NO_INPUT
    return template.format(instruction=record["instruction"], input=record.get("input", ""), output=output)


def response_part(text: str) -> str:
    """The part of a decoded generation after the first "### Response:" (all of it when there is none), as
    LLM-Adapters' ``output.split("### Response:")[1]`` when the decoded text still holds the prompt."""
    before, marker, after = text.partition(RESPONSE_MARKER)
    return (after if marker else before).strip()


def extract_answer(task: str | None, text: str) -> str | None:
    """The first answer word of ``task`` found in the generated ``text``, or ``None``.

    If ``text`` still contains the prompt, only what follows its "### Response:" is searched (the
    instruction itself lists every answer word). ``task=None`` searches the union of all tasks' words (for the
    mixed commonsense_15k/170k validation split, whose records carry no task name).
    """
    pattern = _ALL_WORDS_PATTERN if task is None else _check_task(task).pattern
    match = pattern.search(response_part(text))
    return match.group(0) if match else None


def answer_extractor(task: str | None) -> Callable[[str], str | None]:
    """The answer extractor of ``task``'s test set (None: the mixed validation split, all tasks' words)."""
    return functools.partial(extract_answer, task)


def score(task: str | None, records: Sequence[dict[str, str]], generations: Sequence[str]) -> float:
    """Accuracy in [0, 1]: fraction of records whose extracted answer equals the gold ``answer``."""
    if len(records) != len(generations):
        raise ValueError(f"score: {len(records)} records but {len(generations)} generations")
    if not records:
        raise ValueError("score: no records to score")
    correct = sum(extract_answer(task, gen) == rec["answer"] for rec, gen in zip(records, generations))
    return correct / len(records)


# ------------------------------------------------------------------------------------------- datasets


class CommonsenseDataset(Dataset):
    """Records of an LLM-Adapters file (training: the ``output`` is the target). Items are record dicts."""

    def __init__(self, records: Sequence[dict[str, str]], task: str | None = None):
        self.records = list(records)
        self.task = task  # the evaluation task these records belong to; None for the mixed training set

    @classmethod
    def from_file(cls, path: str | os.PathLike, task: str | None = None) -> "CommonsenseDataset":
        return cls(load(path), task=task)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, str]:
        return self.records[index]


def split_train_val(
    records: Sequence[dict[str, str]], val_size: int, seed: int
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Seeded hold-out of ``val_size`` records (LLM-Adapters holds out 120) from the training file."""
    if not 0 <= val_size < len(records):
        raise ValueError(f"task.val_size={val_size} must be in [0, {len(records)}) for a {len(records)}-record file")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    val = [records[i] for i in sorted(order[:val_size])]
    train = [records[i] for i in sorted(order[val_size:])]
    return train, val


def seeded_subset(records: Sequence[dict[str, str]], size: int | None, seed: int,
                  key: str = "size") -> list[dict[str, str]]:
    """``size`` records drawn without replacement by ``seed``, kept in their original order (all when ``size``
    is None or not smaller than ``len(records)``). ``key`` names the setting in the error for a size below 1."""
    if size is None:
        return list(records)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"{key}={size!r} must be a positive integer or null (all records)")
    if size >= len(records):
        return list(records)
    chosen = sorted(random.Random(seed).sample(range(len(records)), size))
    return [records[i] for i in chosen]


class CausalLMCollator:
    """Turn a list of records into a causal-LM batch, LLM-Adapters style.

    Each sequence is ``prompt(record, with_answer=True)`` tokenized with truncation to ``cutoff_len`` tokens,
    plus EOS when it fits. ``labels`` equal ``input_ids`` (padding = -100); with ``train_on_inputs=False`` the
    prompt tokens are masked to -100 too, so the loss covers the response only. Sequences are right-padded.
    The batch also carries ``prompts`` (generation prompts, no answer) and ``answers`` (gold words) for
    generation-based evaluation, and ``extract`` when the collator was given an answer extractor.

    ``tokenizer`` needs ``__call__(text, truncation=, max_length=, add_special_tokens=)`` returning a mapping with
    ``input_ids``, and ``eos_token_id`` / ``pad_token_id`` attributes (a Hugging Face tokenizer fits).
    """

    def __init__(self, tokenizer: Any, cutoff_len: int = 256, train_on_inputs: bool = True,
                 extract: Callable[[str], str | None] | None = None):
        if cutoff_len <= 0:
            raise ValueError(f"task.cutoff_len must be positive, got {cutoff_len}")
        self.tokenizer = tokenizer
        self.cutoff_len = cutoff_len
        self.train_on_inputs = train_on_inputs
        self.extract = extract  # the task's own answer extractor (instruction task); None: commonsense's words

    def _ids(self, text: str) -> list[int]:
        out = self.tokenizer(text, truncation=True, max_length=self.cutoff_len, add_special_tokens=True)
        return list(out["input_ids"])

    def encode(self, record: dict[str, str]) -> tuple[list[int], list[int]]:
        ids = self._ids(prompt(record, with_answer=True))
        eos = getattr(self.tokenizer, "eos_token_id", None)
        if eos is not None and (not ids or ids[-1] != eos) and len(ids) < self.cutoff_len:
            ids.append(eos)
        labels = list(ids)
        if not self.train_on_inputs:
            n_prompt = min(len(self._ids(train_prompt(record, ""))), len(labels))
            labels[:n_prompt] = [IGNORE_INDEX] * n_prompt
        return ids, labels

    def __call__(self, records: Sequence[dict[str, str]]) -> dict[str, Any]:
        encoded = [self.encode(r) for r in records]
        width = max(len(ids) for ids, _ in encoded)
        pad = getattr(self.tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(self.tokenizer, "eos_token_id", None) or 0
        input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
        labels = torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long)
        for row, (ids, labs) in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
            labels[row, : len(labs)] = torch.tensor(labs, dtype=torch.long)
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "prompts": [prompt(r, with_answer=False) for r in records],
            "answers": [r["answer"] for r in records],
        }
        if self.extract is not None:
            batch["extract"] = self.extract
        return batch


def evaluate_generations(
    task: str, records: Sequence[dict[str, str]], generate: Callable[[list[str]], list[str]], batch_size: int = 8
) -> float:
    """Accuracy of ``generate`` (a function from prompts to decoded responses) on ``records`` of ``task``."""
    generations: list[str] = []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        generations.extend(generate([prompt(r, with_answer=False) for r in chunk]))
    return score(task, records, generations)
