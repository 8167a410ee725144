"""Transformers sequence classifiers (RoBERTa-base/-large for GLUE) with their own classification head.

The authors' GLUE runs (`GLUE/run_glue.py`) fine-tune `AutoModelForSequenceClassification`: RoBERTa's head is
`classifier.dense` + tanh + `classifier.out_proj` on the first token, trained in full; one output and an MSE loss
for STS-B (regression), else one logit per class. Inputs are one sentence or a sentence pair, tokenised together
(`<s> A </s></s> B </s>` for RoBERTa) and truncated to `max_length` (their 128).

Target presets (exact module names inside the encoder, so the head's own `dense` is never adapted twice):
`roberta` (default): attention query, key, value, attention output dense, intermediate dense, output dense — the
authors' `["query", "key", "value", "dense"]`; `roberta_qv`: query and value.
"""
from __future__ import annotations

import inspect
from typing import Any, Mapping, Sequence

import torch

from . import hf
from .base import Backbone, cast_floating, exact_names
from .config import BackboneConfig, ClassInfo
from .stand_ins import TINY_BERT_CONFIG, char_wordpiece_tokenizer

DEFAULT_MAX_LENGTH = 128
ALL_SUFFIXES = ["query", "key", "value", "dense"]


class PairCollator:
    """`(text or (text_a, text_b), label)` items -> (tokenizer outputs, labels); float labels for regression."""

    def __init__(self, tokenizer, max_length: int, regression: bool) -> None:
        self.tokenizer, self.max_length, self.regression = tokenizer, max_length, regression

    def __call__(self, items: Sequence[tuple[Any, float]]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        texts = [text if isinstance(text, (tuple, list)) else (text,) for text, _ in items]
        first = [str(t[0]) for t in texts]
        second = [str(t[1]) for t in texts] if len(texts[0]) > 1 else None
        encoded = self.tokenizer(first, second, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
        labels = torch.tensor([label for _, label in items],
                              dtype=torch.float32 if self.regression else torch.long)
        return dict(encoded), labels


def tiny_roberta(num_labels: int, model_kwargs: Mapping[str, Any]):
    """(RobertaForSequenceClassification, tokenizer), random init: BERT-sized like `tiny_bert`, char tokenizer."""
    from transformers import RobertaConfig, RobertaForSequenceClassification

    tokenizer = char_wordpiece_tokenizer()
    config = RobertaConfig(**{**TINY_BERT_CONFIG, "vocab_size": len(tokenizer), "pad_token_id": 0,
                              "max_position_embeddings": 514, "num_labels": num_labels, **model_kwargs})
    return RobertaForSequenceClassification(config), tokenizer


class SequenceClassifier(Backbone):
    """`model` (AutoModelForSequenceClassification) -> logits (batch, classes), or (batch,) for regression.

    kind = `text`; `regression` is true when the task has one output (STS-B).
    """

    kind = "text"

    def __init__(self, cfg: BackboneConfig, task: ClassInfo) -> None:
        super().__init__()
        num_labels = task.require_num_classes("hf_seqcls")
        self.regression = num_labels == 1
        source = hf.resolve_source(cfg, stand_in="tiny_roberta")
        if source is None:
            self.model, self.tokenizer = tiny_roberta(num_labels, cfg.model_kwargs)
        else:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            self.model = hf.load(AutoModelForSequenceClassification.from_pretrained, source, num_labels=num_labels,
                                 **hf.dtype_kwarg(cfg.torch_dtype), **cfg.model_kwargs)
            self.tokenizer = hf.load(AutoTokenizer.from_pretrained, source)
        if cfg.gradient_checkpointing:
            hf.enable_checkpointing(self.model)
        cast_floating(self, cfg.torch_dtype)
        self.max_length = cfg.max_length or DEFAULT_MAX_LENGTH
        self.collate = PairCollator(self.tokenizer, self.max_length, self.regression)
        self._input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids")
                             if n in inspect.signature(self.model.forward).parameters]
        head = next(name for name in ("classifier", "score") if hasattr(self.model, name))
        self.head_prefixes = [f"model.{head}"]
        self.target_presets = {
            "roberta": [n for n in exact_names(self, "model.", ALL_SUFFIXES) if not n.startswith(f"model.{head}")],
            "roberta_qv": [n for n in exact_names(self, "model.", ["query", "value"])
                           if not n.startswith(f"model.{head}")],
        }
        self.default_targets = "roberta"

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        logits = self.model(**{k: inputs[k] for k in self._input_names if k in inputs}).logits
        return logits.squeeze(-1) if self.regression else logits
