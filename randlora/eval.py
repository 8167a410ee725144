"""Evaluate a saved adapter on its run's test split(s).

    python eval.py adapter_path=results/runs/<task>/<backbone>/<adapter>/<run-id>/adapter.safetensors

The run's config is read from the ``result.json`` beside the adapter (or ``result_path``), updated with
``overrides``; the backbone is rebuilt, the adapter loaded (its random bases regenerated from
``basis_seed`` and checked against the stored checksum), and the test metrics are printed and written to
``eval.json`` (beside the adapter unless ``output_path`` is given).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import lightning.pytorch as pl
from omegaconf import DictConfig, OmegaConf

from randlora.run.results import RESULT_FILE, write_json_atomic
from randlora.train import build_loaders, build_module, with_task_baseline
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


def evaluate(cfg: DictConfig) -> dict:
    """Rebuild the run of ``cfg.adapter_path``, load the adapter, test it; write and return eval.json's dict."""
    from randlora.adapters import load_adapter
    from randlora.backbones import build_backbone
    from randlora.data import build_task_data, task_info

    adapter_path = Path(cfg.adapter_path)
    if not adapter_path.is_file():
        raise ConfigError(f"adapter_path={str(adapter_path)!r} does not exist (an adapter.safetensors "
                          "written by train.py)")
    result_path = Path(cfg.result_path) if cfg.get("result_path") else None
    run = run_config(adapter_path, result_path, cfg.get("overrides"))
    pl.seed_everything(run.seed, workers=True, verbose=False)
    backbone = build_backbone(run.backbone, task_info(run.task))
    load_adapter(backbone, adapter_path)
    data = build_task_data(run.task, backbone)
    loaders = build_loaders(data, run.loader, run.seed)
    if not loaders.test:
        raise ConfigError(f"task {run.task.name!r} has no test split to evaluate")
    module = build_module(run, backbone, data, loaders.test_names)
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer)
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
def main(cfg: DictConfig) -> None:
    """``python eval.py adapter_path=...``."""
    from randlora.utils.cli_errors import exit_on_user_error

    with exit_on_user_error(log):  # bad input: one clear line and exit status 2, no traceback
        evaluate(cfg)


if __name__ == "__main__":
    main()
