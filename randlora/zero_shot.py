"""Zero-shot evaluation (``adapter=none``): the pretrained model through the training run's own evaluators.

    python train.py adapter=none backbone=llama3_8b task=commonsense      # Table 1's zero-shot column
    python train.py adapter=none backbone=clip_vitb32 task=fewshot task.dataset=dtd   # Figure 3's floor

Nothing is trained or injected: the backbone is built, frozen, and tested by the same LightningModule as a
trained run (greedy generation + answer extraction for commonsense; cosine similarity to the class-prompt
embeddings for CLIP). The result is an ordinary ``result.json`` with ``status: ok``, ``adapter: none``,
``zero_shot: true`` and ``params.trainable = 0``; there is no validation (nothing is selected), so only test
metrics are recorded. Only backbones that score a task without training qualify: ``open_clip`` (class prompts)
and ``causal_lm`` (generation). Image and text classifiers get a freshly initialised head whose zero-shot
predictions would be random, so they are refused before anything is built.
"""
from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from randlora.utils.validate import ConfigError

log = logging.getLogger(__name__)

ZERO_SHOT_ADAPTER = "none"
ZERO_SHOT_FAMILIES = {"open_clip": "CLIP scores classes by their prompts",
                      "causal_lm": "a causal LM answers by generation"}


def is_zero_shot(cfg: DictConfig) -> bool:
    """True when the config asks for zero-shot evaluation (``adapter.name == "none"``)."""
    return cfg.get("adapter") is not None and cfg.adapter.get("name") == ZERO_SHOT_ADAPTER


def check_zero_shot(cfg: DictConfig) -> None:
    """Refuse, in one line, a backbone whose predictions need a trained head."""
    family = cfg.backbone.get("family")
    if family not in ZERO_SHOT_FAMILIES:
        raise ConfigError(f"adapter=none (zero-shot) needs backbone.family open_clip or causal_lm, got "
                          f"backbone.family={family!r}: its head is freshly initialised, so zero-shot predictions "
                          "would be random; train an adapter instead")


def evaluate_zero_shot(cfg: DictConfig, info: Any) -> dict:
    """Build the frozen pretrained backbone and the task's test sets, test, write and return the result dict.

    ``info`` is the :class:`~randlora.run.task_wrapper.RunInfo` of the calling (wrapped) training entry point,
    which records a failure as a failed result.
    """
    import hydra
    import lightning.pytorch as pl

    from randlora.adapters import count_parameters
    from randlora.backbones import build_backbone
    from randlora.data import build_task_data, task_info
    from randlora.run.results import build_result, write_generations, write_result
    from randlora.train import build_loaders, build_module, with_task_baseline
    from randlora.run.summary import print_summary

    check_zero_shot(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    backbone = build_backbone(cfg.backbone, task_info(cfg.task))
    backbone.requires_grad_(False)
    data = build_task_data(cfg.task, backbone)
    loaders = build_loaders(data, cfg.loader, cfg.seed)
    if not loaders.test:
        raise ConfigError(f"task {cfg.task.name!r} has no test split: zero-shot evaluation needs one "
                          "(check the task's test paths)")
    module = build_module(cfg, backbone, data, loaders.test_names)
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[], logger=False)
    trainer.test(module, loaders.test, verbose=False)
    write_generations(info.run_dir, getattr(module, "generations", {}), trainer.global_rank, trainer.world_size)
    if not module.test_metrics:
        raise RuntimeError("zero-shot evaluation produced no test metric (empty test sets?)")

    trainable, total = count_parameters(backbone)
    result = build_result(cfg, run_id=info.run_id, started=info.started,
                          metrics=with_task_baseline(dict(module.test_metrics), data),
                          params={"trainable": trainable, "total": total}, wall_time_s=info.elapsed())
    result["subtask"] = result["subtask"] or data.subtask
    result["zero_shot"] = True
    result["rank"] = None
    if trainer.is_global_zero:
        print_summary(result, write_result(info.run_dir, result), result["metrics"].get("test/majority_acc"))
    return result
