"""The resolved recipe of every paper experiment, as ``python train.py <overrides> --cfg job --resolve`` prints it.

``experiments/<name>/recipe.txt`` holds one block per variant of the experiment: a header with the command, then
the resolved job config. Paths are written with the repository root as ``<repo>`` (``RANDLORA_ROOT=<repo>``) and
the precision as a bf16 GPU resolves it, so the files do not depend on the machine that wrote them. Datasets
and regimes that the experiment sweeps are fixed to one representative cell, named in the header.
``scripts/write_recipes.py`` rewrites them; ``tests/test_recipes.py`` checks that they are current.
"""
from __future__ import annotations

import os
from pathlib import Path

EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"
ROOT_PLACEHOLDER = "<repo>"
MACHINE_FREE = ("trainer.precision=bf16-mixed",)  # what ${randlora.precision:...} gives on a bf16 GPU

_CLIP_CELL = ("task.dataset=dtd", "task.shots=16")
_DINO_CELL = ("task.dataset=dtd",)
_TABLE1 = ("nola", "vera", "lora_efficient", "lora_performant", "randlora_efficient", "randlora_performant")
RECIPES: dict[str, list[tuple[str, ...]]] = {
    "fig3_clip": [(f"experiment=fig3_clip/{a}", *_CLIP_CELL) for a in ("full", "lora", "vera", "nola", "randlora")],
    "fig1_clip": [(f"experiment=fig1_clip/{a}", "task.dataset=dtd") for a in ("lora", "randlora")],
    "fig1_dinov2": [(f"experiment=fig1_dinov2/{a}", *_DINO_CELL) for a in ("lora", "randlora")],
    "table1_commonsense": [(f"experiment=table1_commonsense/{v}",) for v in _TABLE1],
    "fig1_llama": [(f"experiment=table1_commonsense/{v}",) for v in ("lora_large", "randlora_large")],
    "vtab": [("experiment=vtab", "task.dataset=cifar100", f"adapter={a}") for a in ("lora", "randlora")],
    "glue": [(f"experiment=glue/{a}", "backbone=roberta_base", "task.dataset=mrpc", "seed=1")
             for a in ("lora", "randlora", "vera")],
    "e2e": [(f"experiment=e2e/{a}", "seed=1") for a in ("lora", "randlora")],
    "sparse_bases": [("experiment=fig3_clip/randlora", *_CLIP_CELL, f"adapter.basis={b}")
                     for b in ("sparse", "very_sparse")],
}


def resolved_job(overrides: tuple[str, ...]) -> str:
    """The YAML that ``train.py <overrides> --cfg job --resolve`` prints (machine-free, see module docstring)."""
    from omegaconf import OmegaConf

    from randlora.utils.config import compose_config

    previous = os.environ.get("RANDLORA_ROOT")
    os.environ["RANDLORA_ROOT"] = ROOT_PLACEHOLDER
    try:
        cfg = compose_config([*overrides, *MACHINE_FREE, "paths.output_dir=null"])
        return OmegaConf.to_yaml(cfg, resolve=True)
    finally:
        if previous is None:
            os.environ.pop("RANDLORA_ROOT")
        else:
            os.environ["RANDLORA_ROOT"] = previous


def recipe_text(name: str) -> str:
    """The content of ``experiments/<name>/recipe.txt``."""
    blocks = [f"# The resolved recipes of {name} (written by scripts/write_recipes.py; do not edit).\n"
              f"# Each block: python train.py <overrides> {' '.join(MACHINE_FREE)} --cfg job --resolve,\n"
              f"# with RANDLORA_ROOT={ROOT_PLACEHOLDER}; the dataset/regime overrides pick one cell of the sweep.\n"]
    for overrides in RECIPES[name]:
        blocks.append(f"# === python train.py {' '.join(overrides)}\n{resolved_job(overrides)}")
    return "\n".join(blocks)


def write_recipes(names: list[str] | None = None) -> list[Path]:
    """Write ``experiments/<name>/recipe.txt`` for ``names`` (default: all); returns the paths written."""
    written = []
    for name in names or list(RECIPES):
        path = EXPERIMENTS_DIR / name / "recipe.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(recipe_text(name), encoding="utf-8")
        written.append(path)
    return written
