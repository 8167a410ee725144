"""Training: a composed config in, one ``result.json`` out.

    check (config rules, names, files) -> [resume plan] -> seed -> backbone -> inject adapter -> data
             -> LightningModule -> [check checkpoint] -> fit -> test -> result.json

:func:`train` does it for a config (tests call it directly); :func:`main` is the entry point behind
``python train.py`` and the ``randlora-train`` console script. :func:`check_run` runs once, before anything is
built and before any run folder or record exists (in a single ``python train.py``, Hydra's callback
:class:`randlora.run.preflight.CheckBeforeRunFolder` runs it before Hydra makes the folder). After the check,
any exception is recorded as a failed result before it propagates
(:func:`randlora.run.task_wrapper.task_wrapper`). ``resume=true`` or
``resume=<path>`` continues an interrupted run from its last checkpoint (:mod:`randlora.run.resume`).
"""
from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, open_dict

from randlora.utils.config import CONFIGS_DIR, register_resolvers, to_plain
from randlora.run.task_wrapper import RunInfo, task_wrapper
from randlora.utils.validate import ConfigError, validate_config

if TYPE_CHECKING:  # torch and Lightning load lazily so that --help and --cfg answer at once
    from torch.utils.data import DataLoader

    from randlora.module import AdapterModule

log = logging.getLogger(__name__)
register_resolvers()
for _message in (".*does not have many workers.*", ".*is smaller than the logging interval.*",
                 ".*LeafSpec.*"):
    warnings.filterwarnings("ignore", message=_message)


def adapter_settings(adapter_cfg: Any, backbone: Any) -> dict:
    """The adapter config given to ``inject``: targets resolved against the backbone, its head trainable.

    ``targets`` null means the backbone's ``default_targets`` preset (none for ``full``); a name in
    ``backbone.target_presets`` becomes that preset's list. ``backbone.head_prefixes`` join
    ``trainable_extra`` so the fresh head trains with every adapter.
    """
    settings = dict(to_plain(adapter_cfg))
    targets = settings.get("targets")
    if targets is None:
        targets = [] if settings.get("name") == "full" else backbone.default_targets
    if isinstance(targets, str) and targets in backbone.target_presets:
        targets = list(backbone.target_presets[targets])
    settings["targets"] = targets
    extra = list(settings.get("trainable_extra") or [])
    settings["trainable_extra"] = extra + [p for p in backbone.head_prefixes if p not in extra]
    return settings


@dataclass
class Loaders:
    train: DataLoader | None
    val: DataLoader | None
    test: list[DataLoader]
    test_names: list[str]


def build_loaders(data: Any, loader: DictConfig, seed: int) -> Loaders:
    """DataLoaders of a TaskData; epoch k's training order depends only on ``seed`` and k.

    With ``loader.group_by_length``, text datasets are batched by similar length (see
    :mod:`randlora.utils.sampling`), which saves most of the padding compute. The loader's own generator
    (seeded) only draws the worker base seed.
    """
    import torch
    from torch.utils.data import DataLoader

    from randlora.utils.sampling import (EpochRandomSampler, LengthGroupedSampler, SortedByLengthSampler,
                                         text_lengths)

    def make(dataset: Any, train: bool) -> DataLoader | None:
        if dataset is None:
            return None
        batch_size = loader.batch_size if train else loader.eval_batch_size
        lengths = text_lengths(dataset) if loader.get("group_by_length", False) else None
        if lengths is not None:
            sampler = LengthGroupedSampler(lengths, batch_size, seed) if train else SortedByLengthSampler(lengths)
        else:
            sampler = EpochRandomSampler(dataset, seed) if train else None
        generator = torch.Generator().manual_seed(seed) if train and lengths is None else None
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                          collate_fn=data.collate, num_workers=loader.num_workers, pin_memory=loader.pin_memory,
                          persistent_workers=loader.num_workers > 0, generator=generator)

    tests = data.test if isinstance(data.test, dict) else ({} if data.test is None else {"test": data.test})
    return Loaders(make(data.train, True), make(data.val, False), [make(d, False) for d in tests.values()],
                   list(tests))


def build_module(cfg: DictConfig, backbone: Any, data: Any, test_names: list[str]) -> AdapterModule:
    """The LightningModule for the backbone's kind."""
    from randlora.module import CausalLMModule, ClassificationModule, GlueModule, RegressionModule

    optim = to_plain(cfg.optim)
    if "glue_task" in data.extras:  # whole-set metrics (F1, Matthews, correlations), STS-B as regression
        return GlueModule(backbone, optim, data.extras["glue_task"], data.metric, test_names)
    if "nlg_generation" in data.extras:  # E2E: beam search, corpus metrics over all references of each input
        from randlora.module_nlg import NLGModule

        return NLGModule(backbone, backbone.tokenizer, optim, max_new_tokens=int(cfg.task.max_new_tokens),
                         num_beams=int(cfg.task.num_beams), generation_kwargs=data.extras["nlg_generation"],
                         label_smoothing=cfg.task.get("label_smoothing", 0.0))
    if backbone.kind == "causal_lm":
        return CausalLMModule(backbone, backbone.tokenizer, optim, test_names,
                              max_new_tokens=int(cfg.task.get("max_new_tokens", 32)),
                              num_beams=int(cfg.task.get("num_beams", 1)),
                              val_generate=bool(cfg.task.get("val_generate", True)),
                              answer_extractor=data.answer_extractor)
    if backbone.kind == "regression":
        return RegressionModule(backbone, optim, data.extras["baseline_mse"], test_names)
    return ClassificationModule(backbone, optim, test_names)


def monitor_validation(callbacks: list, module: AdapterModule) -> Any:
    """Point adapter checkpoints without a ``monitor`` at the module's metric; return a MetricHistory of it."""
    from randlora.run.callbacks import AdapterCheckpoint, MetricHistory

    monitor, mode = f"val/{module.metric}", "max" if module.higher_is_better else "min"
    for callback in callbacks:
        if isinstance(callback, AdapterCheckpoint) and callback.monitor is None:
            callback.monitor, callback.mode = monitor, mode
    return MetricHistory(monitor, mode)


def trainer_overrides(cfg: DictConfig, data: Any) -> dict:
    """``max_epochs: null`` (and no ``max_steps``) means the task's paper epochs, e.g. per few-shot dataset."""
    if cfg.trainer.get("max_epochs") is not None or cfg.trainer.get("max_steps", -1) != -1:
        return {}
    epochs = data.extras.get("paper_epochs")
    if epochs is None:
        raise ConfigError(f"trainer.max_epochs is null but task {cfg.task.name!r} has no paper epochs: "
                          "set trainer.max_epochs (an integer >= 1)")
    return {"max_epochs": int(epochs)}


def with_task_baseline(metrics: dict[str, float], data: Any) -> dict[str, float]:
    """Use the task's own majority baseline (the training set's majority class) where it has one."""
    if "majority_baseline" in data.extras and "test/majority_acc" in metrics:
        metrics["test/majority_acc"] = float(data.extras["majority_baseline"])
    return metrics


def _metrics(history: Any, module: AdapterModule) -> dict[str, float]:
    """Test metrics plus the best and final values of the validation metric (``val/acc_best``, ...)."""
    metrics = dict(module.test_metrics)
    if history.values:
        metrics[f"{history.monitor}_best"] = history.best
        metrics[f"{history.monitor}_final"] = history.values[-1]
    return metrics


@dataclass
class Run:
    """Everything one training run is made of, built from its config."""

    backbone: Any
    data: Any
    loaders: Loaders
    module: AdapterModule


def build_run(cfg: DictConfig) -> Run:
    """seed -> backbone -> inject adapter (rank matched to ``budget`` when set) -> data -> module, for a config
    that :func:`randlora.utils.validate.validate_config` accepted."""
    import lightning.pytorch as pl

    from randlora.adapters import inject, match_rank
    from randlora.backbones import build_backbone
    from randlora.data import build_task_data, task_info
    from randlora.run.sizes import check_budget_reachable, check_rank_fits

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    backbone = build_backbone(cfg.backbone, task_info(cfg.task))
    settings = adapter_settings(cfg.adapter, backbone)
    if cfg.get("budget"):
        check_budget_reachable(backbone, settings, int(cfg.budget))
        settings["rank"], _ = match_rank(backbone, settings, int(cfg.budget))
        with open_dict(cfg):
            cfg.adapter.rank = settings["rank"]
        log.info("budget %d trainable parameters: adapter.rank=%d", cfg.budget, settings["rank"])
    check_rank_fits(backbone, settings)
    inject(backbone, settings)
    data = build_task_data(cfg.task, backbone)
    if data.train is None:
        raise ConfigError(f"task {cfg.task.name!r} has no training split (check its train path settings)")
    loaders = build_loaders(data, cfg.loader, cfg.seed)
    return Run(backbone, data, loaders, build_module(cfg, backbone, data, loaders.test_names))


def check_run(cfg: DictConfig) -> None:
    """Every check that needs no model and no run folder: the config rules (first broken one), then every
    problem with names, files and folders, reported together in one message."""
    from randlora.backbones.config import path_problems
    from randlora.data.checks import input_problems

    validate_config(cfg)
    problems = path_problems(cfg.backbone) + input_problems(cfg.task, cfg.backbone)
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} problems, found before loading any model: "
                          + "; ".join(f"({n}) {p}" for n, p in enumerate(problems, 1)))


def train(cfg: DictConfig) -> dict:
    """Check ``cfg`` (nothing written when it fails), then train, test and record one run (:func:`run_training`)."""
    check_run(cfg)
    return run_training(cfg)


def initial_weights_if_asked(cfg: DictConfig, backbone: Any) -> dict | None:
    """W0 of the adapted layers, copied before training, when ``save_full_weights`` asks for ΔW at the end."""
    if not cfg.get("save_full_weights", False):
        return None
    from randlora.analysis.weights import initial_weights

    return initial_weights(backbone)


@task_wrapper
def run_training(cfg: DictConfig, info: RunInfo, check: bool = False) -> dict:
    """Train and test one configuration; write and return its result (the ``result.json`` dict). ``check``:
    run :func:`check_run` first, a failure recorded like any other (a sweep job, which has its folder already)."""
    import lightning.pytorch as pl

    from randlora.adapters import basis_checksum, count_parameters, save_adapter
    from randlora.module import check_finite_run
    from randlora.run.sizes import check_validation_for_selection
    from randlora.run.callbacks import AdapterCheckpoint
    from randlora.run.results import (ADAPTER_FILE, build_result, reset_peak_memory, write_generations,
                                      write_result)
    from randlora.utils.instantiate import instantiate_callbacks, instantiate_loggers
    from randlora.run.logs import tidy_lightning_logging
    from randlora.run.lock import hold_run_lock
    from randlora.run.resume import METADATA_KEY, ResumeCheckpoint, check_checkpoint
    from randlora.run.resume_plan import config_fingerprint, continue_in, plan_resume
    from randlora.run.summary import print_summary

    tidy_lightning_logging()
    reset_peak_memory()  # this run's peak, not an earlier job's in the same sweep worker
    if check:
        check_run(cfg)
    if cfg.adapter.name == "none":  # zero-shot evaluation through the same evaluators, nothing trained
        from randlora.zero_shot import evaluate_zero_shot

        return evaluate_zero_shot(cfg, info)
    fingerprint = config_fingerprint(cfg)  # before build_run sets adapter.rank from a budget
    plan = plan_resume(cfg, info.run_dir, fingerprint)
    if plan is not None and plan.run_dir is not None:
        hold_run_lock(plan.run_dir)  # before touching the folder: a second resume of it is refused
    run = build_run(cfg)
    initial = initial_weights_if_asked(cfg, run.backbone)
    earlier = {}  # the interrupted processes' share of wall time, fit time and samples (a resumed run)
    if plan is not None:
        earlier = check_checkpoint(plan.checkpoint, run.module)[METADATA_KEY].get("progress") or {}
        if plan.run_dir is not None:
            continue_in(cfg, info, plan.run_dir)
        run.module.strict_loading = False  # frozen weights are not in the file; check_checkpoint compared the rest
        log.info("resuming from %s", plan.checkpoint)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    check_validation_for_selection(run.data, any(isinstance(c, AdapterCheckpoint) for c in callbacks), cfg.task.name)
    history = monitor_validation(callbacks, run.module)
    savers = [c for c in callbacks if isinstance(c, ResumeCheckpoint)]
    for saver in savers:
        saver.config_hash, saver.config = fingerprint
        saver.track_progress(info.elapsed, earlier)
    callbacks = [*(c for c in callbacks if c not in savers), history, *savers]  # save after the others updated
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks,
                                                  logger=instantiate_loggers(cfg.get("logger")) or False,
                                                  **trainer_overrides(cfg, run.data))
    hold_run_lock(info.run_dir)  # one process trains a folder (a resume=true elsewhere must not pick it up)
    fit_start = time.perf_counter()
    trainer.fit(run.module, run.loaders.train, run.loaders.val,
                ckpt_path=None if plan is None else str(plan.checkpoint), weights_only=True)
    fit_seconds = time.perf_counter() - fit_start
    if plan is None and run.module.samples_seen == 0:
        raise ConfigError(f"the run trained on no sample (trainer.max_epochs={cfg.trainer.get('max_epochs')}, "
                          f"trainer.limit_train_batches={cfg.trainer.get('limit_train_batches')}): nothing to record "
                          "as a trained result; allowed is at least one training batch")

    # Test the best-validation adapter, unless validation *is* the test set (few-shot without a val split):
    # then the final one, so that the test set never selects the model. The tested adapter is the saved one.
    checkpoint = next((c for c in callbacks if isinstance(c, AdapterCheckpoint)), None)
    use_best = checkpoint is not None and not run.data.extras.get("val_is_test", False)
    if not (use_best and checkpoint.restore_best(run.module)) and trainer.is_global_zero:
        save_adapter(run.backbone, checkpoint.path if checkpoint else info.run_dir / ADAPTER_FILE)
    if initial is not None and trainer.is_global_zero:  # the tested (best-validation) model's updates
        from randlora.analysis.weights import DELTA_FILE, delta_weights, save_delta_weights

        save_delta_weights(delta_weights(run.backbone, initial), info.run_dir / DELTA_FILE)
    if cfg.get("test", True) and run.loaders.test:
        trainer.test(run.module, run.loaders.test, verbose=False)
        write_generations(info.run_dir, getattr(run.module, "generations", {}), trainer.global_rank,
                          trainer.world_size)

    metrics = with_task_baseline(_metrics(history, run.module), run.data)
    check_finite_run(run.backbone, metrics, cfg.optim.lr)
    trainable, total = count_parameters(run.backbone)
    result = build_result(
        cfg, run_id=info.run_id, started=info.started, metrics=metrics,
        params={"trainable": trainable, "total": total}, wall_time_s=info.elapsed() + earlier.get("wall_time_s", 0),
        samples_per_s=(run.module.samples_seen * trainer.world_size + earlier.get("samples", 0))
        / max(fit_seconds + earlier.get("fit_time_s", 0), 1e-9),
        basis_checksum=basis_checksum(run.backbone))
    result["subtask"] = result["subtask"] or run.data.subtask
    result["data_manifest"] = run.data.extras.get("data_manifest")  # hash of the file list the run read
    if plan is not None:
        result["resumed_from"] = str(plan.checkpoint)
    if trainer.is_global_zero:
        print_summary(result, write_result(info.run_dir, result), metrics.get("test/majority_acc"))
        for saver in savers:
            saver.discard()
    return result


def _objective(cfg: DictConfig, result: dict) -> float | None:
    """The value a sweeper optimises: ``<optimized_metric>_best`` when recorded, else the metric itself."""
    metric = cfg.get("optimized_metric")
    if not metric:
        return None
    metrics = result["metrics"]
    return metrics.get(f"{metric}_best", metrics.get(metric))


@hydra.main(version_base="1.3", config_path=str(CONFIGS_DIR), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """Train one config (or each job of a ``-m`` sweep). A single run was checked by Hydra's callback
    (configs/train.yaml: ``hydra.callbacks.check_run``) before its folder was made; a sweep job checks here."""
    from randlora.run.interrupt import exit_on_interrupt
    from randlora.utils.cli_errors import exit_on_user_error, in_single_run

    # bad input: one clear line and exit status 2, no traceback; SIGTERM / Ctrl-C: exit 143 / 130, how to resume
    with exit_on_user_error(log), exit_on_interrupt(log, lambda: how_to_continue(cfg)):
        result = run_training(cfg, check=not in_single_run())
    return _objective(cfg, result)


def main() -> float | None:
    """``python train.py [overrides]``: unknown group options (``adapter=nonexistent``, ``local=nothere``) are
    refused in one line before Hydra composes anything; then :func:`hydra_main`."""
    from randlora.utils.cli_errors import refuse_unknown_options

    refuse_unknown_options(TRAIN_GROUPS)
    return hydra_main()


TRAIN_GROUPS = ("backbone", "adapter", "task", "optim", "trainer", "logger", "callbacks", "paths", "experiment",
                "sweep", "debug", "local")


def how_to_continue(cfg: DictConfig) -> str:
    """Where an interrupted run is recorded and the command that continues it (``resume=true``)."""
    from randlora.run.interrupt import resume_command
    from randlora.run.resume import CHECKPOINT_DIR, LAST_CHECKPOINT
    from randlora.utils.cli_errors import in_single_run

    run_dir = Path(str(cfg.paths.output_dir))
    checkpoint = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    command = resume_command()
    if not in_single_run():  # a sweep: jobs that finished have nothing to resume, new ones start afresh
        command = command.replace("resume=true", "resume=auto")
    if not checkpoint.is_file():
        return f"{run_dir} had no checkpoint yet (interrupted in its first epoch); run the command again without resume"
    return f"recorded in {run_dir / 'result.json'}; continue from {checkpoint} with: {command}"


if __name__ == "__main__":
    main()
