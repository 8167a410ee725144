"""Seeds, heads, schedule and fractions of the paper's vision experiments (docs/FIDELITY.md)."""
from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch import nn

from randlora.data import fewshot
from randlora.optim import build_optimizer, build_scheduler
from randlora.utils.config import compose_config


def test_sample_seed_follows_the_run_seed_unless_set():
    assert compose_config(["task=fewshot", "task.dataset=dtd", "seed=3"]).task.sample_seed == 3
    assert compose_config(["task=fewshot", "task.dataset=dtd", "seed=3", "task.sample_seed=0"]).task.sample_seed == 0


def test_random_split_fraction_is_torch_random_split_of_the_whole_set():
    labels = [0] * 90 + [1] * 10
    chosen = fewshot.select_training_indices(labels, None, 0.5, seed=7, fraction_sampling="random_split")
    expected, _ = torch.utils.data.random_split(range(100), [50, 50], torch.Generator().manual_seed(7))
    assert chosen == sorted(expected.indices)
    per_class = fewshot.select_training_indices(labels, None, 0.5, seed=7)
    assert Counter(labels[i] for i in per_class) == {0: 45, 1: 5}
    with pytest.raises(ValueError, match="task.fraction_sampling='stratified'"):
        fewshot.select_training_indices(labels, None, 0.5, seed=7, fraction_sampling="stratified")


def test_few_shot_oversampling_repeats_like_the_authors():
    """finetune.py: r = n / batch; if r < 10 the subset is repeated int(10 / r) + 1 times."""
    from randlora.data.common import oversample

    for n, batch in [(2, 1), (3, 4), (40, 4), (37, 128)]:
        r = n / batch
        expected = int(10 / r) + 1 if r < 10 else 1
        assert len(oversample(list(range(n)), 10 * batch)) == n * expected


class Headed(nn.Module):
    head_prefixes = ["head"]

    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Linear(4, 4), nn.Linear(4, 2)


def test_head_lr_is_a_group_of_its_own_and_the_schedule_ends_at_one_percent():
    optim = {"lr": 1e-2, "weight_decay": 0.1, "betas": [0.9, 0.999], "head_lr": 1e-3, "warmup_steps": 0,
             "schedule": "cosine", "min_lr_ratio": 0.01}
    model = Headed()
    optimizer = build_optimizer(model, optim)
    head = next(g for g in optimizer.param_groups if g.get("name") == "head")
    assert head["lr"] == 1e-3 and {id(p) for p in head["params"]} == {id(p) for p in model.head.parameters()}
    assert all(g["lr"] == 1e-2 for g in optimizer.param_groups if g.get("name") != "head")
    scheduler = build_scheduler(optimizer, optim, total_steps=10)
    assert head["lr"] == pytest.approx(1e-3)  # no warm-up: the first step runs at the full lr
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert head["lr"] == pytest.approx(1e-5)  # cosine to min_lr_ratio · lr


@pytest.mark.parametrize("experiment", ["fig3_clip/randlora", "fig1_clip/lora", "fig1_dinov2/randlora"])
def test_paper_vision_configs_use_the_authors_schedule_and_sampling(experiment):
    cfg = compose_config([f"experiment={experiment}"])
    assert (cfg.optim.warmup_steps, cfg.optim.min_lr_ratio, cfg.optim.schedule) == (0, 0.01, "cosine")
    assert cfg.task.fraction_sampling == "random_split" and cfg.adapter.convention == "authors_vision"
    if "dinov2" in experiment:
        assert cfg.optim.head_lr == 1e-3
    assert compose_config(["experiment=vtab", "task.dataset=dtd"]).optim.head_lr == 1e-3
