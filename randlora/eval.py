"""Evaluate a saved adapter on its run's test split(s).

    python eval.py adapter_path=results/runs/<task>/<backbone>/<adapter>/<run-id>[/adapter.safetensors]

``adapter_path`` is the adapter file or the run folder holding it. The run's config is read from the
``result.json`` beside the adapter (or ``result_path``), updated with ``overrides``; the backbone is rebuilt, the adapter loaded (its random bases regenerated from
``basis_seed`` and checked against the stored checksum), and the test metrics are printed and written to
``eval.json`` (beside the adapter unless ``output_path`` is given). The adapter path and the stored config are
checked before Hydra makes the evaluation's own folder (``results/evals/<id>/``: its log and composed config),
so a mistyped path leaves nothing behind; Lightning and the training wiring load only once the work starts,
which keeps ``--help`` quick.
The backbone gets the adapter of the run's config injected before the file is loaded into it: a file whose own
adapter config (method, rank, targets, seeds, ...) or base model differs from the run's is refused, naming the
difference.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from randlora.run.results import ADAPTER_FILE, RESULT_FILE, write_json_atomic
from randlora.utils.config import CONFIGS_DIR, register_resolvers
from randlora.utils.validate import ConfigError

log = logging.getLogger(__name__)
register_resolvers()


IMPORT_FILE = "import.json"  # beside an adapter imported from PEFT by scripts/export.py import


def run_config(adapter_path: Path, result_path: Path | None, overrides: DictConfig | dict | None) -> DictConfig:
    """The training config stored in the run's result.json (of an ok run), with ``overrides`` merged in.

    An adapter imported from PEFT has import.json instead (status ``imported``, the config it was imported for).
    """
    imported = adapter_path.parent / IMPORT_FILE
    if result_path is None and not (adapter_path.parent / RESULT_FILE).is_file() and imported.is_file():
        result_path = imported
    result_path = result_path or adapter_path.parent / RESULT_FILE
    if not result_path.is_file():
        raise ConfigError(f"result_path={str(result_path)!r} does not exist: eval needs the result.json "
                          "written with the adapter (or set result_path)")
    try:
        stored = json.loads(result_path.read_text())
    except ValueError as error:
        raise ConfigError(f"{result_path} is not valid JSON ({error}); was the run killed while writing?") from None
    if not isinstance(stored, dict) or stored.get("status") not in ("ok", "imported") \
            or not isinstance(stored.get("config"), dict):
        raise ConfigError(f"{result_path} is not the result of a finished run (status ok with its config) or "
                          "of an import (status imported)")
    return OmegaConf.merge(OmegaConf.create(stored["config"]), OmegaConf.create(overrides or {}))


def adapter_file(adapter_path: str | Path) -> Path:
    """The adapter file named by ``adapter_path``: the file itself, or ``adapter.safetensors`` in a run folder."""
    path = Path(adapter_path)
    if path.is_dir():
        path = path / ADAPTER_FILE
    if not path.is_file():
        raise ConfigError(f"adapter_path={str(adapter_path)!r}: no {ADAPTER_FILE} there (give a run folder or the "
                          f"{ADAPTER_FILE} written by train.py)")
    return path


def check_eval(cfg: DictConfig) -> None:
    """The cheap checks, before Hydra makes the evaluation's folder: the adapter file and its run's config."""
    run_config(adapter_file(cfg.adapter_path), Path(cfg.result_path) if cfg.get("result_path") else None,
               cfg.get("overrides"))


def evaluate(cfg: DictConfig) -> dict:
    """Rebuild the run of ``cfg.adapter_path``, load the adapter, test it; write and return eval.json's dict."""
    import lightning.pytorch as pl

    from randlora.adapters import inject, load_adapter
    from randlora.backbones import build_backbone
    from randlora.data import build_task_data, task_info
    from randlora.train import adapter_settings, build_loaders, build_module, with_task_baseline

    adapter_path = adapter_file(cfg.adapter_path)
    result_path = Path(cfg.result_path) if cfg.get("result_path") else None
    run = run_config(adapter_path, result_path, cfg.get("overrides"))
    pl.seed_everything(run.seed, workers=True, verbose=False)
    backbone = build_backbone(run.backbone, task_info(run.task))
    inject(backbone, adapter_settings(run.adapter, backbone))  # the run's adapter: the file must hold the same
    load_adapter(backbone, adapter_path)
    data = build_task_data(run.task, backbone)
    loaders = build_loaders(data, run.loader, run.seed)
    if not loaders.test:
        raise ConfigError(f"task {run.task.name!r} has no test split to evaluate")
    module = build_module(run, backbone, data, loaders.test_names)
    trainer = hydra.utils.instantiate(cfg.trainer)
    trainer.test(module, loaders.test, verbose=False)
    metrics = with_task_baseline(dict(module.test_metrics), data)
    report = {"adapter_path": str(adapter_path), "metrics": metrics,
              "config": OmegaConf.to_container(run, resolve=True)}
    output = Path(cfg.output_path) if cfg.get("output_path") else adapter_path.parent / "eval.json"
    if trainer.is_global_zero:
        write_json_atomic(output, report)
        print("  ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
        print(f"Evaluation: {output}", flush=True)
    return report


@hydra.main(version_base="1.3", config_path=str(CONFIGS_DIR), config_name="eval")
def hydra_main(cfg: DictConfig) -> None:
    """Evaluate (:func:`check_eval` already ran in Hydra's callback, before the folder was made)."""
    from randlora.run.interrupt import exit_on_interrupt
    from randlora.utils.cli_errors import exit_on_user_error

    # bad input: one clear line and exit status 2, no traceback; SIGTERM / Ctrl-C: exit 143 / 130
    with exit_on_user_error(log), exit_on_interrupt(log, lambda: "nothing was written; run the evaluation again"):
        evaluate(cfg)


def main() -> None:
    """``python eval.py adapter_path=...``: unknown group options refused in one line, then :func:`hydra_main`."""
    from randlora.utils.cli_errors import refuse_unknown_options

    refuse_unknown_options(("paths", "local"))
    hydra_main()


if __name__ == "__main__":
    main()
