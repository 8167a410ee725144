"""Backbones: `build_backbone(cfg.backbone, task_info) -> Backbone`, one module per family.

| family      | module         | class           | kind        | default targets |
|-------------|----------------|-----------------|-------------|-----------------|
| `timm`      | `image.py`     | TimmClassifier  | `image`     | `vit`           |
| `open_clip` | `clip.py`      | ClipClassifier  | `clip`      | `clip_all`      |
| `hf_text`   | `text.py`      | TextClassifier  | `text`      | `bert`          |
| `hf_seqcls` | `seqcls.py`    | SequenceClassifier | `text`   | `roberta`       |
| `causal_lm` | `causal_lm.py` | CausalLM        | `causal_lm` | `llm` / `phi3`  |
| `synthetic` | `synthetic.py` | SyntheticMLP    | `regression`| `all`           |

Config fields: `config.py`; tiny stand-ins: `stand_ins.py`; the named YAML backbones: `catalog.py`;
meta-device LLMs for parameter counts: `meta_model` and `meta_configs.py`.
"""
from __future__ import annotations

from typing import Any

from .base import Backbone
from .catalog import BACKBONES
from .config import BackboneConfig, ClassInfo
from .meta_configs import META_CONFIGS


def build_backbone(backbone_cfg: Any, task_info: Any = None) -> Backbone:
    """Build the backbone described by `backbone_cfg` (dict, OmegaConf node or BackboneConfig).

    `task_info` gives `num_classes` and `class_names` (attributes or keys; None is fine for causal LMs).
    """
    cfg = BackboneConfig.from_any(backbone_cfg)
    task = ClassInfo.from_any(task_info)
    if cfg.family == "timm":
        from .image import TimmClassifier

        return TimmClassifier(cfg, task)
    if cfg.family == "open_clip":
        from .clip import ClipClassifier

        return ClipClassifier(cfg, task)
    if cfg.family == "hf_text":
        from .text import TextClassifier

        return TextClassifier(cfg, task)
    if cfg.family == "hf_seqcls":
        from .seqcls import SequenceClassifier

        return SequenceClassifier(cfg, task)
    if cfg.family == "synthetic":
        from .synthetic import SyntheticMLP

        return SyntheticMLP(cfg, task)
    from .causal_lm import CausalLM  # BackboneConfig has checked the family

    return CausalLM(cfg, task)


def meta_model(spec: Any):
    """A causal LM on the `meta` device from a named public config, a config dict or a PretrainedConfig."""
    from .causal_lm import meta_model as _meta_model

    return _meta_model(spec)


__all__ = ["BACKBONES", "META_CONFIGS", "Backbone", "BackboneConfig", "ClassInfo", "build_backbone", "meta_model"]
