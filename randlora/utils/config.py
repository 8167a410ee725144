"""Where the configs live, the OmegaConf resolvers they use, and config composition for tests and tools.

Resolvers (registered once, on import of :mod:`randlora.train` / :mod:`randlora.eval`):

- ``${randlora.repo_root:}``  the repository root (parent of the ``randlora`` package).
- ``${randlora.uid:}``        a short random token fixed for the life of this process; with the time and
  Hydra's job number it makes run ids unique even for jobs started in the same second.
- ``${randlora.precision:ACCELERATOR}``  ``bf16-mixed`` when that accelerator is a CUDA GPU that supports
  bf16, else ``32``.
- ``${randlora.paper_lr:ADAPTER,BASE_LR}``  the paper's learning rate for an adapter: its entry in
  :data:`ADAPTER_PAPER_LR` (VeRA 1e-2), else the task's ``BASE_LR``. ``optim.lr`` uses it as its default.
- ``${randlora.task_folder:TASK,DATASET}``  the task part of a run folder: ``fewshot-eurosat`` for a task with a
  dataset, else the task (``tweets``), so the runs of 22 datasets do not share one folder.
- ``${randlora.authors_basis_seed:SEED}``  the random-basis seed the authors derive from a run seed in their GLUE
  and NLG code, ``int(exp(SEED) · 3.1415)`` in float32 (run seeds 1-5 give 8, 23, 63, 171, 466): see
  :func:`authors_basis_seed`.
- ``${randlora.wandb_offline:}``  false only when the user configured W&B (``WANDB_MODE=online`` or
  ``WANDB_API_KEY`` set), so runs never try to reach the network by accident.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS_DIR = REPO_ROOT / "configs"
_PROCESS_TOKEN = secrets.token_hex(3)
# Adapters whose paper lr does not follow the task's domain lr (the paper: VeRA 1e-2, vision and LLMs alike).
ADAPTER_PAPER_LR: dict[str, float] = {"vera": 1e-2}


def paper_lr(adapter: str, base_lr: float) -> float:
    """The default ``optim.lr``: the adapter's own paper lr where it has one, else the task's ``base_lr``."""
    return ADAPTER_PAPER_LR.get(str(adapter), float(base_lr))


AUTHORS_BASIS_SEED_MAX_RUN_SEED = 42  # exp(43)·3.1415 ≈ 1.5e19 no longer fits a signed 64-bit integer


def authors_basis_seed(seed: int) -> int:
    """The basis seed of the authors' GLUE and NLG runs for run seed ``seed``.

    ``GLUE/run_glue.py`` (``projection_prng_key``) and ``NLG/src/gpt2_ft.py`` (``config.seed``) at c7a6515 both
    compute ``int(torch.exp(torch.tensor(seed)) * 3.1415)``: float32 arithmetic, truncated. So each run seed
    trains on its own random bases, while the global seed (init, data order) is the run seed itself.
    """
    import torch

    if isinstance(seed, bool) or not isinstance(seed, int) or seed > AUTHORS_BASIS_SEED_MAX_RUN_SEED:
        raise ValueError(f"seed={seed!r}: the authors' basis seed int(exp(seed)·3.1415) needs an integer seed <= "
                         f"{AUTHORS_BASIS_SEED_MAX_RUN_SEED} (larger ones overflow 64 bits); set adapter.basis_seed "
                         "explicitly instead")
    return int(torch.exp(torch.tensor(seed)) * 3.1415)


def _precision(accelerator: str = "auto") -> str:
    import torch

    gpu_requested = str(accelerator) in ("gpu", "cuda", "auto")
    if gpu_requested and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32"


def _wandb_offline() -> bool:
    return not (os.environ.get("WANDB_MODE") == "online" or os.environ.get("WANDB_API_KEY"))


def task_folder(task: str, dataset: Any = None) -> str:
    """``<task>-<dataset>`` when the task names a dataset, else ``<task>`` (see the module docstring)."""
    return f"{task}-{dataset}" if dataset not in (None, "", "None") else str(task)


def register_resolvers() -> None:
    """Register this project's resolvers (idempotent)."""
    resolvers = {
        "randlora.repo_root": lambda: str(REPO_ROOT),
        "randlora.uid": lambda: _PROCESS_TOKEN,
        "randlora.precision": _precision,
        "randlora.wandb_offline": _wandb_offline,
        "randlora.paper_lr": paper_lr,
        "randlora.task_folder": task_folder,
        "randlora.authors_basis_seed": authors_basis_seed,
    }
    for name, function in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


def compose_config(
    overrides: Sequence[str] = (), config_name: str = "train", return_hydra_config: bool = False
) -> DictConfig:
    """Compose ``configs/<config_name>.yaml`` with command-line style overrides, outside a Hydra app."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS_DIR), version_base="1.3"):
        return compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)


def to_plain(node: Any) -> Any:
    """A resolved plain-Python copy of a config node (dicts/lists/scalars); other values pass through."""
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def choice(cfg: DictConfig, group: str) -> str | None:
    """The option chosen for a config group (``adapter`` -> ``randlora_sparse``), when Hydra recorded it."""
    choices = OmegaConf.select(cfg, "hydra.runtime.choices", default=None)
    if choices is None:
        try:
            from hydra.core.hydra_config import HydraConfig

            choices = HydraConfig.get().runtime.choices
        except ValueError:  # not inside a Hydra app
            return None
    return choices.get(group)


def flatten_config(config: Any, prefix: str = "") -> dict[str, str]:
    """Leaves of a nested config dict as ``{"task.shots": "16"}``, each value JSON-encoded for comparison."""
    if isinstance(config, Mapping):
        return {k: v for name, value in config.items() for k, v in flatten_config(value, f"{prefix}{name}.").items()}
    return {prefix[:-1]: json.dumps(config, sort_keys=True, default=str)} if prefix else {}
