"""Loss and task metric of a (plain) model on a fixed set of examples, batched once and reused.

Classification: loss = mean cross-entropy, metric `acc`. Regression (the synthetic task): loss = mean squared
error per output element (the training loss), metric `rel_error` = mean_i ||f(x_i) − y_i||² / the frozen
network's value on the split (as `randlora.module.RegressionModule` reports it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Subset

SPLITS = ("train", "val", "test")


@dataclass
class Examples:
    """Collated batches of `n` examples of one split (a fixed random subset), and how to score them."""

    batches: list[tuple[Any, torch.Tensor]]
    n: int
    split: str
    metric: str                      # "acc" or "rel_error"
    total: int                       # examples in the whole split
    baseline_mse: float | None = None


def task_examples(run: Any, split: str, max_samples: int | None, batch_size: int = 128) -> Examples:
    """`max_samples` examples (all when None; a fixed random subset) of `split` of the run's task, collated once."""
    from randlora.data import build_task_data

    if getattr(run.model, "kind", None) == "causal_lm":
        raise ValueError(f"{run.path}: the analyses score classification and regression tasks; a causal LM's "
                         "generation-scored task is not supported")
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is invalid: allowed is one of {', '.join(SPLITS)}")
    data = build_task_data(run.cfg.task, run.model)
    dataset = getattr(data, split)
    if isinstance(dataset, dict):  # several test subtasks: the first one
        dataset = next(iter(dataset.values()))
    if dataset is None:
        raise ValueError(f"task {run.cfg.task.name!r} has no {split} split; choose another split")
    n = len(dataset) if max_samples is None else min(int(max_samples), len(dataset))
    # a fixed random subset (seed 0), in dataset order: a split stored sorted by class still gives all classes
    chosen = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:n].sort().values.tolist()
    loader = DataLoader(Subset(dataset, chosen), batch_size=batch_size, shuffle=False, collate_fn=data.collate)
    baseline = data.extras.get("baseline_mse", {}).get(split) if data.metric == "rel_error" else None
    return Examples(list(loader), n, split, data.metric, len(dataset), baseline)


@torch.no_grad()
def evaluate(model: torch.nn.Module, examples: Examples) -> dict[str, float]:
    """{"loss": ..., <metric>: ...} of `model` (eval mode) on `examples`."""
    model.eval()
    loss_sum = metric_sum = 0.0
    for inputs, targets in examples.batches:
        outputs = model(inputs).float()
        if examples.metric == "rel_error":
            squared = (outputs - targets).pow(2)
            loss_sum += squared.mean(-1).sum().item()
            metric_sum += squared.sum(-1).sum().item()
        else:
            loss_sum += F.cross_entropy(outputs, targets, reduction="sum").item()
            metric_sum += (outputs.argmax(-1) == targets).sum().item()
    loss, metric = loss_sum / examples.n, metric_sum / examples.n
    if examples.metric == "rel_error":
        metric = metric / examples.baseline_mse
    return {"loss": loss, examples.metric: metric}


def check_record(run: Any, examples: Examples, scores: dict[str, float]) -> None:
    """Refuse a rebuilt run whose scores on its *whole* test split differ from the test metric it recorded.

    A rebuilt model that scores differently is not the model that was trained (e.g. an adapter file written by
    another version of the code, whose stored settings now mean something else): analysing it would describe
    some other model. Tolerance: 0.01 accuracy, or 5 % of the recorded relative error. Other example sets
    (a subset, another split) are not checked.
    """
    recorded = run.result.get("metrics", {}).get(f"test/{examples.metric}")
    if recorded is None or examples.split != "test" or examples.n != examples.total:
        return
    tolerance = 0.01 if examples.metric == "acc" else 0.05 * abs(recorded) + 1e-6
    if abs(scores[examples.metric] - recorded) > tolerance:
        raise ValueError(f"{run.path}: rebuilt from its files it scores test/{examples.metric} "
                         f"{scores[examples.metric]:.4f}, but the run recorded {recorded:.4f}; its adapter file is "
                         f"not read as it was trained (written by code at commit {run.result.get('git_commit')}?)")


def verify_against_record(run: Any) -> dict[str, float]:
    """Score the rebuilt run on its whole test split and `check_record` it; return the scores."""
    examples = task_examples(run, "test", None)
    scores = evaluate(run.model, examples)
    check_record(run, examples, scores)
    return scores
