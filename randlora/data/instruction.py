"""Your own instruction data for a causal LM: train and test files in the LLM-Adapters format, given by path.

Records (a JSON list, or JSON lines): ``{"instruction", "input" (optional), "output", "answer" (optional)}``;
``response`` is accepted for ``output`` (instruction/response pairs). Prompts, the collator and generation-based
evaluation are commonsense's (``randlora.data.commonsense``): greedy generation, then an answer is extracted
from the response and compared with the record's gold answer.

Answer extraction (``task.answer``):
- ``words``: the first of ``task.answer_words`` found in the response (LLM-Adapters' rule; null = the distinct
  gold answers of the test file);
- ``regex``: the first match of ``task.answer_regex`` (its first group when it has one);
- ``exact``: the whole stripped response.
The gold answer is the record's ``answer``, or, when it has none, the same extraction applied to its ``output``.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .commonsense import _validated, response_part

EXTRACTORS = ("words", "regex", "exact")


class AnswerExtractor:
    """Pulls the answer out of a generated (or gold) response; ``None`` when there is none. (A plain class, not
    a dataclass: it travels in batches, and Lightning's batch traversal rebuilds dataclasses.)"""

    def __init__(self, kind: str, pattern: str | None = None):
        self.kind, self.pattern = kind, pattern
        if self.kind not in EXTRACTORS:
            raise ValueError(f"task.answer={self.kind!r}; allowed: {', '.join(EXTRACTORS)}")
        if self.kind != "exact" and not self.pattern:
            raise ValueError(f"task.answer={self.kind} needs task.answer_{'words' if self.kind == 'words' else 'regex'}")
        if self.pattern:
            try:
                re.compile(self.pattern)
            except re.error as err:
                raise ValueError(f"task.answer_regex={self.pattern!r} is not a regular expression: {err}") from None

    @classmethod
    def from_words(cls, words: Sequence[str]) -> AnswerExtractor:
        ordered = sorted(set(words), key=len, reverse=True)  # "answer10" before "answer1"
        return cls("words", "|".join(re.escape(w) for w in ordered))

    def __call__(self, text: str) -> str | None:
        response = response_part(text)
        if self.kind == "exact":
            return response.strip() or None
        match = re.search(self.pattern, response)
        if match is None:
            return None
        return match.group(1) if match.groups() else match.group(0)


def load_records(path: str | os.PathLike) -> list[dict[str, str]]:
    """Validated records of a JSON-list or JSON-lines file (``response`` renamed to ``output``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"instruction file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text) if text.lstrip().startswith("[") else \
            [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    records = []
    for index, record in enumerate(raw):
        if isinstance(record, dict) and "output" not in record and "response" in record:
            record = {**record, "output": record["response"]}
        records.append(_validated(record, index, path, ("instruction", "output")))
    return records


def with_gold_answers(records: list[dict[str, str]], extract: AnswerExtractor, path: Any) -> list[dict[str, str]]:
    """Records whose empty ``answer`` is filled by ``extract(output)``; one without either raises."""
    out = []
    for index, record in enumerate(records):
        answer = record["answer"] or extract(record["output"])
        if not answer:
            raise ValueError(f"{path}: record {index}: no 'answer' and task.answer={extract.kind} finds none in "
                             f"its output {record['output'][:60]!r}")
        out.append({**record, "answer": answer})
    return out


def build_extractor(kind: str, words: Sequence[str] | None, regex: str | None,
                    test_records: Sequence[dict[str, str]] | None) -> AnswerExtractor:
    if kind == "words":
        if not words:
            words = sorted({r["answer"] for r in test_records or [] if r["answer"]})
        if not words:
            raise ValueError("task.answer=words needs task.answer_words (or a test file with 'answer' fields)")
        return AnswerExtractor.from_words(words)
    return AnswerExtractor(kind, regex)
