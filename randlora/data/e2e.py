"""The E2E NLG Challenge (the authors' ``NLG/``, after LoRA's GPT-2 E2E setup): restaurant meaning representations
(MRs) turned into text by a causal LM trained on ``"<MR> || <reference>"``.

Data, either
- a local folder in the challenge's release layout: ``trainset.csv``, ``devset.csv``, ``testset_w_refs.csv``
  with columns ``mr``, ``ref`` (one row per reference; an MR repeats once per reference), or
- a hub dataset through ``datasets`` (``e2e_nlg``: ``meaning_representation``/``human_reference``; ``GEM/e2e_nlg``:
  ``meaning_representation``/``target``) with splits train/validation/test.

The MR ``name[The Vaults], eatType[pub]`` becomes the prompt ``name : The Vaults | Type : pub ||`` (LoRA's
``data/e2e`` linearisation: slot and value joined by " : ", slots by " | ", ``eatType`` shown as ``Type``,
``priceRange`` as ``price``, ``familyFriendly`` as ``family friendly``) and the target is `` <reference>`` + EOS.
Training sees one sequence per (MR, reference) pair, the loss on the reference tokens only (LoRA masks the
context). Evaluation sees one record per distinct MR with all of its references, scored together.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

IGNORE_INDEX = -100
RELEASE_FILES = {"train": "trainset.csv", "validation": "devset.csv", "test": "testset_w_refs.csv"}
COLUMN_PAIRS = [("mr", "ref"), ("meaning_representation", "human_reference"), ("meaning_representation", "target")]
SLOT_NAMES = {"eatType": "Type", "priceRange": "price", "familyFriendly": "family friendly"}
_SLOT = re.compile(r"\s*([^\[\],]+?)\s*\[([^\]]*)\]\s*,?")


def linearize_mr(mr: str) -> str:
    """``name[X], eatType[pub]`` -> ``name : X | Type : pub`` (see the module docstring)."""
    slots = _SLOT.findall(mr)
    if not slots:
        raise ValueError(f"meaning representation {mr!r} has no slot[value] pairs (expected e.g. 'name[The Vaults]')")
    return " | ".join(f"{SLOT_NAMES.get(slot, slot)} : {value.strip()}" for slot, value in slots)


def prompt(mr: str) -> str:
    return f"{linearize_mr(mr)} ||"


def _pairs(table: Any, where: str) -> list[tuple[str, str]]:
    columns = list(table.column_names if hasattr(table, "column_names") else table.columns)
    for mr_col, ref_col in COLUMN_PAIRS:
        if mr_col in columns and ref_col in columns:
            return [(str(m), str(r)) for m, r in zip(table[mr_col], table[ref_col])]
    raise ValueError(f"{where}: columns {columns} hold no (mr, reference) pair; expected one of "
                     f"{', '.join('/'.join(p) for p in COLUMN_PAIRS)}")


def load_split(split: str, root: str | None = None, hub_id: str = "e2e_nlg") -> list[tuple[str, str]]:
    """(MR, reference) pairs of ``split`` (train, validation, test), from the release CSVs under ``root`` or the hub."""
    if split not in RELEASE_FILES:
        raise ValueError(f"E2E split {split!r} unknown; allowed: {', '.join(RELEASE_FILES)}")
    if root is not None:
        import pandas as pd

        path = Path(root).expanduser() / RELEASE_FILES[split]
        if not path.is_file():
            raise FileNotFoundError(f"task.root={root!r}: {path.name} is missing (the E2E release layout: "
                                    f"{', '.join(RELEASE_FILES.values())} with columns mr, ref)")
        return _pairs(pd.read_csv(path, keep_default_na=False), str(path))
    from datasets import load_dataset

    return _pairs(load_dataset(hub_id, split=split), f"task.hub_id={hub_id!r} split {split}")


def group_references(pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """One record per distinct MR (first-seen order) with every reference of it: ``{"mr", "references"}``."""
    grouped: dict[str, list[str]] = {}
    for mr, ref in pairs:
        grouped.setdefault(mr, []).append(ref)
    return [{"mr": mr, "references": refs} for mr, refs in grouped.items()]


class E2EDataset(Dataset):
    """Records ``{"mr", "references"}``; training uses one reference per record (``references == [ref]``)."""

    def __init__(self, records: list[dict[str, Any]]):
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.records[index]


def train_records(pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"mr": mr, "references": [ref]} for mr, ref in pairs]


class E2ECollator:
    """Records -> a causal-LM batch: ``prompt(mr) + " " + references[0] + EOS`` (truncated to ``max_length``),
    labels -100 on the prompt and padding; ``prompts`` and ``answers`` (all references) for generation."""

    def __init__(self, tokenizer: Any, max_length: int = 512):
        if max_length <= 0:
            raise ValueError(f"task.max_length must be positive, got {max_length}")
        self.tokenizer, self.max_length = tokenizer, max_length

    def encode(self, record: dict[str, Any]) -> tuple[list[int], list[int]]:
        context = list(self.tokenizer(prompt(record["mr"]), add_special_tokens=True)["input_ids"])
        target = list(self.tokenizer(" " + record["references"][0], add_special_tokens=False)["input_ids"])
        eos = self.tokenizer.eos_token_id
        ids = (context + target + ([eos] if eos is not None else []))[: self.max_length]
        labels = ([IGNORE_INDEX] * len(context) + ids[len(context):])[: len(ids)]
        return ids, labels

    def __call__(self, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        encoded = [self.encode(r) for r in records]
        width = max(len(ids) for ids, _ in encoded)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
        labels = torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long)
        for row, (ids, labs) in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
            labels[row, : len(labs)] = torch.tensor(labs)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
                "prompts": [prompt(r["mr"]) for r in records], "answers": [list(r["references"]) for r in records]}
