"""LightningModules: classification (image, CLIP, text), causal-LM instruction tuning, and regression
(the synthetic full-rank experiment).

All three train only what the adapter left trainable: :func:`randlora.optim.build_optimizer` groups the trainable
parameters (no decay on norms/biases, LoRA+ ratio), and the warm-up + cosine schedule steps once per
optimizer step (so it respects gradient accumulation). Metrics are fractions in [0, 1].

Test metrics (``metric`` is ``acc``, or ``rel_error`` for regression), for a single test set or a dict of
subtask -> test set:
    test/<metric>/<name> = mean over the subtask's samples of the per-sample score
                           ([prediction == label] for acc)
    test/<metric>        = the subtask's value, or the unweighted mean over subtasks (the paper's average)
    test/majority_acc    = accuracy of always predicting the most frequent test label, averaged the
                           same way; classification only (the training wiring replaces it with the
                           task's own baseline, the training set's majority class, where the task has one).
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable, Mapping, Sequence

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.aggregation import CatMetric

from randlora.optim import build_optimizer, build_scheduler


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class NonFiniteOutputError(FloatingPointError):
    """The model's outputs (logits, predictions, the validation loss) became NaN or infinite."""


class EmptyTestSetError(ValueError):
    """A test set (or one subtask's) held no sample."""


def count_non_finite(values: torch.Tensor) -> int:
    """How many entries of ``values`` are NaN or infinite."""
    return int((~torch.isfinite(values.detach().float())).sum())


def check_finite_run(model: nn.Module, metrics: Mapping[str, float], lr: Any) -> None:
    """Raise :class:`NonFiniteOutputError` if a trainable weight or a metric is NaN or infinite (a diverged run)."""
    bad_weights = [name for name, p in model.named_parameters() if p.requires_grad and count_non_finite(p)]
    if bad_weights:
        raise NonFiniteOutputError(f"trainable weights are NaN or infinite after training ({len(bad_weights)} tensors, "
                                   f"e.g. {bad_weights[0]}; optim.lr={lr}): the run diverged; lower optim.lr")
    bad_metrics = {name: value for name, value in metrics.items() if not math.isfinite(value)}
    if bad_metrics:
        raise NonFiniteOutputError(f"metrics {bad_metrics} are not finite (optim.lr={lr}): the run diverged; "
                                   "lower optim.lr")


def _metric_key(name: str) -> str:
    return re.sub(r"\W", "_", name)


class AdapterModule(pl.LightningModule):
    """What the modules share: optimizer/schedule, sample counting, per-subtask test bookkeeping.

    ``metric`` names the validation/test metric (``val/<metric>``, ``test/<metric>``); ``higher_is_better``
    says which way it improves; a test score is ``mean(per-sample values) * test_scale``.
    """

    metric = "acc"
    higher_is_better = True
    test_scale = 1.0

    def __init__(self, model: nn.Module, optim: Mapping[str, Any], test_names: Sequence[str] | None = None):
        super().__init__()
        self.model = model
        self.optim = dict(optim)
        self.test_names = list(test_names) if test_names else ["test"]
        # nan_strategy "disable": a NaN is kept (torchmetrics' default drops it with a warning), so that it can
        # never vanish from a mean; _check_outputs refuses it first anyway.
        self.test_values = nn.ModuleDict({_metric_key(n): CatMetric(nan_strategy="disable") for n in self.test_names})
        self.test_labels = nn.ModuleDict({_metric_key(n): CatMetric(nan_strategy="disable") for n in self.test_names})
        self.test_metrics: dict[str, float] = {}
        self.samples_seen = 0

    def on_fit_start(self) -> None:
        self.model.train()  # pretrained models load in eval mode; train with their dropout, as usual

    def configure_optimizers(self) -> dict:
        optimizer = build_optimizer(self.model, self.optim)
        scheduler = build_scheduler(optimizer, self.optim, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _check_finite(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"training loss is {loss.item()} at step {self.global_step} "
                                     f"(lr {self.optim['lr']}); lower optim.lr or check the data")

    def _check_outputs(self, split: str, outputs: torch.Tensor, what: str = "outputs") -> None:
        """Raise :class:`NonFiniteOutputError` when any of ``outputs`` (a validation or test batch's) is not finite.

        A NaN prediction would otherwise be scored as some class (``argmax`` of NaN logits) or be dropped from
        a mean: the run diverged, and is recorded as failed rather than as a number."""
        bad = count_non_finite(outputs)
        if bad:
            where = f"epoch {self.current_epoch}" if split == "val" else "the tested adapter"
            raise NonFiniteOutputError(f"{split} {what} are NaN or infinite ({bad} of {outputs.numel()} values, "
                                       f"{where}, optim.lr={self.optim['lr']}): the run diverged; lower optim.lr")

    def _record_test(self, dataloader_idx: int, values: torch.Tensor, labels: torch.Tensor | None) -> None:
        key = _metric_key(self.test_names[dataloader_idx])
        self.test_values[key].update(values.float())
        if labels is not None:
            self.test_labels[key].update(labels.float())

    def on_test_epoch_start(self) -> None:
        for metric in [*self.test_values.values(), *self.test_labels.values()]:
            metric.reset()
        self.test_metrics = {}

    def on_test_epoch_end(self) -> None:
        scores, majorities = {}, {}
        for name in self.test_names:
            key = _metric_key(name)
            if not self.test_values[key].update_called:  # an empty test set must not vanish from the average
                raise EmptyTestSetError(f"test set {name!r} has no sample: test/{self.metric} would be missing or "
                                        "averaged over fewer sets; check the task's test files (or task.tasks)")
            values = torch.as_tensor(self.test_values[key].compute()).float()  # a list when nothing was kept
            if values.numel() == 0 or count_non_finite(values):
                raise NonFiniteOutputError(f"test/{self.metric}/{name}: {count_non_finite(values)} of {values.numel()} "
                                           "per-sample scores are NaN or infinite; the run diverged")
            scores[name] = values.mean().item() * self.test_scale
            if self.test_labels[key].update_called:
                labels = torch.as_tensor(self.test_labels[key].compute()).long().flatten()
                majorities[name] = (torch.bincount(labels).max() / labels.numel()).item()
        if not scores:
            return
        metrics = {f"test/{self.metric}": sum(scores.values()) / len(scores)}
        if self.test_names != ["test"]:
            metrics.update({f"test/{self.metric}/{name}": score for name, score in scores.items()})
        if majorities:
            metrics["test/majority_acc"] = sum(majorities.values()) / len(majorities)
        self.test_metrics = metrics
        for name, value in metrics.items():  # already gathered from every process: identical on all ranks
            self.log(name, value, sync_dist=True)


class ClassificationModule(AdapterModule):
    """Cross-entropy classification; ``model(inputs) -> logits`` (image tensors or tokenizer outputs).

    Batches are ``(inputs, labels)``. Logs ``train/loss``, ``train/acc`` per step, ``val/loss``, ``val/acc``
    per epoch, and the test metrics of the module docstring.
    """

    def forward(self, inputs: Any) -> torch.Tensor:
        return self.model(inputs)

    def _step(self, batch: tuple[Any, torch.Tensor], split: str = "train") -> tuple[torch.Tensor, torch.Tensor,
                                                                                    torch.Tensor]:
        inputs, labels = batch
        if self.training and getattr(self.model, "uses_batch_prompts", False):  # CLIP clip_loss=batch_prompts
            loss, predicted = self.model.batch_prompt_loss(inputs, labels)
            return loss, predicted == labels, labels
        logits = self(inputs)
        if split != "train":
            self._check_outputs(split, logits, "logits")
        loss = F.cross_entropy(logits.float(), labels)
        return loss, logits.argmax(dim=-1) == labels, labels

    def training_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, correct, labels = self._step(batch)
        self._check_finite(loss)
        self.samples_seen += labels.numel()
        self.log("train/loss", loss, prog_bar=True, batch_size=labels.numel())
        self.log("train/acc", correct.float().mean(), batch_size=labels.numel())
        return loss

    def validation_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int) -> None:
        loss, correct, labels = self._step(batch, "val")
        self.log("val/loss", loss, on_epoch=True, sync_dist=True, batch_size=labels.numel())
        self.log("val/acc", correct.float().mean(), on_epoch=True, prog_bar=True, sync_dist=True,
                 batch_size=labels.numel())

    def test_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        _, correct, labels = self._step(batch, "test")
        self._record_test(dataloader_idx, correct, labels)


class CausalLMModule(AdapterModule):
    """Instruction tuning of a causal LM, evaluated by generation (greedy, or beam search with ``num_beams``).

    Training batches come from :class:`randlora.data.commonsense.CausalLMCollator`: ``input_ids``,
    ``attention_mask`` and ``labels`` in which prompt and padding tokens are -100, so the loss is the mean
    token cross-entropy over response tokens only. Evaluation generates up to ``max_new_tokens`` tokens from
    ``prompts`` (left-padded; ``num_beams`` > 1: beam search without sampling, the authors' 4), extracts the
    answer with the task's own ``answer_extractor`` (:attr:`randlora.data.TaskData.answer_extractor`; for
    commonsense the first answer word) and compares it with ``answers``. ``val/acc`` uses the extractor of the
    mixed validation split (subtask None; commonsense: all tasks' words); each test set uses its own.
    With ``val_generate=False`` validation logs ``val/loss`` only (the authors' Trainer evaluates the loss).
    After ``test``, ``generations`` maps each test set to its records (prompt, generation, extracted, answer,
    correct) and ``test/extracted[/<task>]`` is the share of generations holding an answer word at all.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, optim: Mapping[str, Any],
                 test_names: Sequence[str] | None = None, max_new_tokens: int = 32, num_beams: int = 1,
                 val_generate: bool = True,
                 answer_extractor: Callable[[str | None], Callable[[str], str | None]] | None = None,
                 generation_kwargs: Mapping[str, Any] | None = None):
        super().__init__(model, optim, test_names)
        if answer_extractor is None:
            raise ValueError("a generation task must give its answer_extractor (TaskData.answer_extractor)")
        self.answer_extractor = answer_extractor
        if not isinstance(num_beams, int) or num_beams < 1:
            raise ValueError(f"task.num_beams={num_beams!r} must be an integer >= 1 (1 = greedy)")
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.val_generate = val_generate
        self.generation_kwargs = dict(generation_kwargs or {})  # e.g. length_penalty, no_repeat_ngram_size (E2E)
        self.test_extracted = nn.ModuleDict({_metric_key(n): CatMetric() for n in self.test_names})
        self.generations: dict[str, list[dict[str, Any]]] = {}  # test set -> its records, filled by test()

    def forward(self, batch: Mapping[str, Any]) -> Any:
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          labels=batch["labels"])

    def training_loss(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The loss ``training_step`` minimises: the model's mean token cross-entropy over the response tokens."""
        return self(batch).loss

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch)
        self._check_finite(loss)
        size = len(batch["answers"])
        self.samples_seen += size
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss

    @torch.no_grad()
    def generate(self, prompts: Sequence[str]) -> list[str]:
        """Continuations (decoded, special tokens removed) of ``prompts``: greedy, or ``num_beams`` beams."""
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            encoded = self.tokenizer(list(prompts), return_tensors="pt", padding=True).to(self.device)
        finally:
            self.tokenizer.padding_side = side
        generator = self.model if hasattr(self.model, "generate") else self.model.model
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        output = generator.generate(**encoded, max_new_tokens=self.max_new_tokens, do_sample=False,
                                    num_beams=self.num_beams, pad_token_id=pad_id, **self.generation_kwargs)
        new_tokens = output[:, encoded["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    def _answers(self, batch: Mapping[str, Any], task: str | None) -> list[dict[str, Any]]:
        """One record per prompt: the generation, the answer extracted from it (None: none found) and gold."""
        extract = self.answer_extractor(task)
        answers = []
        for prompt, text, gold in zip(batch["prompts"], self.generate(batch["prompts"]), batch["answers"]):
            extracted = extract(text)
            answers.append({"prompt": prompt, "generation": text, "extracted": extracted, "answer": gold,
                            "correct": extracted == gold})
        return answers

    def _flags(self, answers: Sequence[Mapping[str, Any]], key: str) -> torch.Tensor:
        values = [bool(a[key]) if key == "correct" else a[key] is not None for a in answers]
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        size = len(batch["answers"])
        loss = self(batch).loss
        self._check_outputs("val", loss, "loss")
        self.log("val/loss", loss, on_epoch=True, sync_dist=True, batch_size=size)
        if not self.val_generate:
            return
        self.log("val/acc", self._flags(self._answers(batch, None), "correct").mean(), on_epoch=True,
                 prog_bar=True, sync_dist=True, batch_size=size)

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self.generations = {name: [] for name in self.test_names}
        for metric in self.test_extracted.values():
            metric.reset()

    def test_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.test_names[dataloader_idx]
        answers = self._answers(batch, None if name == "test" else name)
        self.generations[name].extend(answers)
        self._record_test(dataloader_idx, self._flags(answers, "correct"), None)
        self.test_extracted[_metric_key(name)].update(self._flags(answers, "extracted"))

    def on_test_epoch_end(self) -> None:
        """The accuracies of the base class, plus ``test/extracted[/<task>]``: the share of generations from
        which an answer word could be extracted (a wrong format scores 0 in both; only this one tells)."""
        super().on_test_epoch_end()
        shares = {name: self.test_extracted[_metric_key(name)].compute().mean().item()
                  for name in self.test_names if self.test_extracted[_metric_key(name)].update_called}
        if not shares:
            return
        extra = {"test/extracted": sum(shares.values()) / len(shares)}
        if self.test_names != ["test"]:
            extra.update({f"test/extracted/{name}": share for name, share in shares.items()})
        self.test_metrics.update(extra)
        for name, value in extra.items():
            self.log(name, value, sync_dist=True)



class RegressionModule(AdapterModule):
    """Mean-squared-error regression, scored by the relative error (the synthetic full-rank experiment)::

        rel_error = mean_i ||f(x_i) - y_i||^2 / baseline_mse[split]

    where ``baseline_mse`` is the frozen network's value on that split: 1 at the start, 0 when the known
    weight perturbation is recovered. Batches are ``(x, y)``; the training loss is ``mse_loss(f(x), y)``.
    """

    metric = "rel_error"
    higher_is_better = False

    def __init__(self, model: nn.Module, optim: Mapping[str, Any], baseline_mse: Mapping[str, float],
                 test_names: Sequence[str] | None = None):
        super().__init__(model, optim, test_names)
        self.baseline_mse = dict(baseline_mse)
        self.test_scale = 1.0 / self.baseline_mse["test"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self._check_finite(loss)
        self.samples_seen += len(x)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(x))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        squared = (self(x) - y).pow(2).sum(-1)
        self._check_outputs("val", squared, "squared errors")
        self.log("val/loss", squared.mean() / y.shape[-1], on_epoch=True, sync_dist=True, batch_size=len(x))
        self.log("val/rel_error", squared.mean() / self.baseline_mse["val"], on_epoch=True, prog_bar=True,
                 sync_dist=True, batch_size=len(x))

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        x, y = batch
        squared = (self(x) - y).pow(2).sum(-1)
        self._check_outputs("test", squared, "squared errors")
        self._record_test(dataloader_idx, squared, None)


class GlueModule(ClassificationModule):
    """GLUE: cross-entropy classification, or MSE regression for STS-B (``backbone.regression``), scored over
    the whole validation / test set by :func:`randlora.data.glue.glue_metrics` (Matthews and correlations are not
    means of per-sample values). Logs ``val/<metric>`` for every metric of the task; the test metrics are
    ``test/<metric>`` (e.g. ``test/acc``, ``test/f1``, ``test/matthews``, ``test/pearson``), and ``metric`` is the
    one the authors report (``acc``, ``matthews`` for CoLA, ``combined`` for STS-B).
    """

    def __init__(self, model: nn.Module, optim: Mapping[str, Any], task: str, metric: str,
                 test_names: Sequence[str] | None = None):
        super().__init__(model, optim, test_names)
        self.task, self.metric = task, metric
        self.regression = bool(getattr(model, "regression", False))
        self._outputs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"val": [], "test": []}

    def _step(self, batch: tuple[Any, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs, labels = batch
        outputs = self(inputs).float()
        if self.regression:
            return F.mse_loss(outputs, labels.float()), outputs, labels
        return F.cross_entropy(outputs, labels), outputs.argmax(dim=-1), labels

    def training_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _, labels = self._step(batch)
        self._check_finite(loss)
        self.samples_seen += labels.numel()
        self.log("train/loss", loss, prog_bar=True, batch_size=labels.numel())
        return loss

    def _collect(self, split: str, batch: tuple[Any, torch.Tensor]) -> torch.Tensor:
        loss, predictions, labels = self._step(batch)
        self._outputs[split].append((predictions.detach().cpu(), labels.detach().cpu()))
        return loss

    def _scores(self, split: str) -> dict[str, float]:
        from randlora.data.glue import glue_metrics

        outputs, self._outputs[split] = self._outputs[split], []
        if not outputs:
            return {}
        predictions, labels = (torch.cat(parts).numpy() for parts in zip(*outputs))
        return glue_metrics(self.task, predictions, labels)

    def validation_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int) -> None:
        self.log("val/loss", self._collect("val", batch), on_epoch=True, batch_size=len(batch[1]))

    def on_validation_epoch_end(self) -> None:
        for name, value in self._scores("val").items():
            self.log(f"val/{name}", value, prog_bar=name == self.metric)

    def test_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._collect("test", batch)

    def on_test_epoch_start(self) -> None:
        self._outputs["test"], self.test_metrics = [], {}

    def on_test_epoch_end(self) -> None:
        self.test_metrics = {f"test/{name}": value for name, value in self._scores("test").items()}
        for name, value in self.test_metrics.items():
            self.log(name, value)
