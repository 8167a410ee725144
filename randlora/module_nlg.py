"""Data-to-text generation (E2E NLG): a causal LM trained on MR -> reference, scored on whole-corpus metrics.

Training is :class:`randlora.module.CausalLMModule`'s, with ``label_smoothing`` ε (the authors' ``--label_smooth
0.1``; see :func:`smoothed_lm_loss`); ``val/loss`` is the plain cross-entropy, as their ``evaluate`` computes it
(the authors select nothing on validation: LoRA's ``gpt2_ft.py`` keeps the last checkpoint). At test, each distinct MR is decoded once by beam
search (``num_beams``, ``generation_kwargs`` such as ``length_penalty``, ``no_repeat_ngram_size``) and the corpus of
outputs is scored against all references of each MR by :func:`randlora.data.nlg_metrics.nlg_metrics`:
``test/bleu``, ``test/nist``, ``test/rouge_l``, ``test/cider`` and ``test/meteor`` when nltk's WordNet is installed
(otherwise absent, listed in ``missing_metrics``). ``metric`` (the headline) is BLEU.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from randlora.module import CausalLMModule


def smoothed_lm_loss(logits: torch.Tensor, labels: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Causal-LM loss with label smoothing ε, averaged over the target tokens of the whole batch.

    Position t predicts token t + 1; targets of -100 (prompt, padding) are left out. Per target token the loss is
    (1 - ε) · (-log p(target)) + ε · mean over the vocabulary of (-log p(v)), which is what the authors' NLG
    ``GPT2LMModel.forward`` computes for ``label_smooth`` > 0 (and ``F.cross_entropy(label_smoothing=ε)`` too);
    ε = 0 is the plain cross-entropy. Computed in float32.
    """
    shifted_logits = logits[..., :-1, :].float().reshape(-1, logits.shape[-1])
    targets = labels[..., 1:].reshape(-1).to(logits.device)
    return F.cross_entropy(shifted_logits, targets, ignore_index=-100, label_smoothing=float(epsilon))


def _keep_generation(_task: str | None):
    return lambda text: text.strip()


class NLGModule(CausalLMModule):
    metric = "bleu"

    def __init__(self, model: Any, tokenizer: Any, optim: Mapping[str, Any], max_new_tokens: int = 64,
                 num_beams: int = 10, generation_kwargs: Mapping[str, Any] | None = None,
                 label_smoothing: float = 0.0):
        super().__init__(model, tokenizer, optim, ["test"], max_new_tokens=max_new_tokens, num_beams=num_beams,
                         val_generate=False, answer_extractor=_keep_generation, generation_kwargs=generation_kwargs)
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
                or not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"task.label_smoothing={label_smoothing!r} must be a number in [0, 1) (the authors: 0.1)")
        self.label_smoothing = float(label_smoothing)
        self.missing_metrics: list[str] = []

    def training_loss(self, batch: Mapping[str, Any]) -> torch.Tensor:
        if self.label_smoothing == 0.0:
            return super().training_loss(batch)
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return smoothed_lm_loss(logits, batch["labels"], self.label_smoothing)

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        size = len(batch["answers"])
        loss = self(batch).loss
        self._check_outputs("val", loss, "loss")
        self.log("val/loss", loss, on_epoch=True, sync_dist=True, batch_size=size)

    def on_test_epoch_start(self) -> None:
        self.generations, self.test_metrics, self.missing_metrics = {"test": []}, {}, []

    def test_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        for prompt, text, refs in zip(batch["prompts"], self.generate(batch["prompts"]), batch["answers"]):
            self.generations["test"].append({"prompt": prompt, "generation": text.strip(), "references": refs})

    def on_test_epoch_end(self) -> None:
        from randlora.data.nlg_metrics import nlg_metrics

        records = self.generations["test"]
        scores = nlg_metrics([r["generation"] for r in records], [r["references"] for r in records])
        self.missing_metrics = [name for name, value in scores.items() if value is None]
        if self.missing_metrics:
            warnings.warn(f"E2E metrics not computed: {', '.join(self.missing_metrics)} (METEOR needs nltk's wordnet: "
                          "python -c \"import nltk; nltk.download('wordnet')\")", stacklevel=1)
        self.test_metrics = {f"test/{name}": float(value) for name, value in scores.items() if value is not None}
        for name, value in self.test_metrics.items():
            self.log(name, value)
