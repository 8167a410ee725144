"""The adapter configuration: one dataclass, validated on construction.

`AdapterConfig.from_any` accepts a dict, an OmegaConf node or an `AdapterConfig`, so the library is usable with
or without Hydra. Every field has one meaning for every method; fields a method does not use are ignored.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

METHODS = ("full", "lora", "loraplus", "vera", "nola", "randlora")
BASIS_KINDS = ("dense", "sparse", "very_sparse")
SCALINGS = ("ours", "peft", "authors_llm", "authors_clip")
CONVENTIONS = ("ours", "authors_vision")
NUM_BASES_RULES = ("ceil", "floor_plus_one")
PATHS = ("auto", "activation", "weight")

# Target presets: lists of module-name suffixes. `attn` in the CLIP presets is open_clip's
# nn.MultiheadAttention, whose bare `in_proj_weight` (q, k and v stacked) is adapted through a parametrization.
PRESETS: dict[str, list[str]] = {
    "vit": ["attn.qkv", "mlp.fc1", "mlp.fc2"],
    "vit_attn": ["attn.qkv", "attn.proj"],
    "clip_all": ["attn", "mlp.c_fc", "mlp.c_proj"],
    "clip_mlp": ["mlp.c_fc", "mlp.c_proj"],
    "llm": ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"],
    "llm_qv": ["q_proj", "v_proj"],
    "gpt2": ["attn.c_attn", "mlp.c_fc", "mlp.c_proj"],
    "bert": ["attention.self.query", "attention.self.key", "attention.self.value",
             "attention.output.dense", "intermediate.dense", "output.dense"],
}


@dataclass
class AdapterConfig:
    """What to adapt and how.

    name: full | lora | loraplus | vera | nola | randlora.
    rank: LoRA/LoRA+/VeRA rank r; NoLA rank of each random basis pair; RandLoRA rank r of each random basis
        (a smaller RandLoRA rank means more bases and more trainable parameters).
    alpha: scale numerator; None picks the method's default under `convention` (ours: LoRA 2·rank as in the
        paper's LLM runs, NoLA rank, VeRA no scale, RandLoRA see `scaling`; authors_vision: 1 for every method).
    convention: ours | authors_vision. authors_vision is the authors' vision/CLIP code for every method
        (PAPER.md §3b): α = 1, s = α/r, ×10 for RandLoRA and VeRA; VeRA and NoLA bases kaiming-uniform(a=√5)
        divided by their std; NoLA coefficients 1/K; RandLoRA `scaling=authors_clip`, n = ⌊min_dim/r⌋ + 1.
        ours: PEFT's VeRA bases (kaiming-uniform, gain √2), NoLA α = 0, β ~ N(0, 1/K), unscaled VeRA.
    targets: module-name suffixes, a preset name (see PRESETS) or a regular expression (full match).
    dropout: dropout on the adapter's input, in [0, 1).
    dropout_targets: module-name suffixes of the adapted layers that get `dropout`; the others get none. None: all
        of them. (The authors' E2E code has dropout on c_attn's adapters only, none on the MLP's.)
    basis_seed: seed of the frozen random bases (VeRA, NoLA, RandLoRA); training seed is separate.
    basis: RandLoRA basis distribution: dense | sparse (P(±1)=1/6) | very_sparse (P(±1)=1/(2√min_dim)).
    scaling: RandLoRA scale/init convention: ours | peft | authors_llm | authors_clip (see randlora.py);
        None: authors_clip under convention=authors_vision, ours otherwise.
    num_bases: NoLA's k (default 1024); RandLoRA's n override (default: enough bases for full rank).
    num_bases_rule: RandLoRA n = ⌈min_dim/r⌉ ("ceil", PEFT) or ⌊min_dim/r⌋+1 ("floor_plus_one", authors' CLIP
        code); None: floor_plus_one under convention=authors_vision, ceil otherwise.
    d_initial: VeRA's initial value of d.
    rslora: LoRA scale α/√r instead of α/r.
    lr_ratio: LoRA+ ratio lr_B / lr_A (used by `param_groups`; None = plain LoRA).
    trainable_extra: parameter-name prefixes that stay trainable (e.g. a fresh classification head).
    path: RandLoRA compute path: auto (cheaper of the two for the batch at hand) | activation | weight.
    """

    name: str = "randlora"
    rank: int = 8
    alpha: float | None = None
    targets: Any = "vit"
    dropout: float = 0.0
    dropout_targets: list[str] | None = None
    basis_seed: int = 0
    basis: str = "dense"
    convention: str = "ours"
    scaling: str | None = None
    num_bases: int | None = None
    num_bases_rule: str | None = None
    d_initial: float = 0.1
    rslora: bool = False
    lr_ratio: float | None = None
    trainable_extra: list[str] = field(default_factory=list)
    path: str = "auto"

    def __post_init__(self) -> None:
        """Check every field; the message names the key, the bad value and what is allowed (one owner of the
        adapter rules: the training configs' checks call this instead of keeping their own lists)."""
        def bad(key: str, value: Any, allowed: str) -> ValueError:
            return ValueError(f"adapter.{key}={value!r} is invalid: allowed is {allowed}")

        def is_int(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        def is_number(value: Any) -> bool:
            return (is_int(value) or isinstance(value, float)) and math.isfinite(value)

        if self.name not in METHODS:
            raise bad("name", self.name, f"one of {', '.join(METHODS)}")
        if not is_int(self.rank) or self.rank <= 0:
            raise bad("rank", self.rank, "an integer > 0")
        if self.alpha is not None and (not is_number(self.alpha) or self.alpha < 0):
            raise bad("alpha", self.alpha, "a number >= 0, or null for the method's default")
        if not is_number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise bad("dropout", self.dropout, "a number in [0, 1)")
        if isinstance(self.dropout_targets, str):
            self.dropout_targets = [self.dropout_targets]
        if self.dropout_targets is not None:
            self.dropout_targets = [str(t) for t in self.dropout_targets]
            if not self.dropout_targets:
                raise bad("dropout_targets", self.dropout_targets, "module-name suffixes, or null for every target")
        if self.basis not in BASIS_KINDS:
            raise bad("basis", self.basis, f"one of {', '.join(BASIS_KINDS)}")
        if self.convention not in CONVENTIONS:
            raise bad("convention", self.convention, f"one of {', '.join(CONVENTIONS)}")
        authors_vision = self.convention == "authors_vision"
        if self.scaling is None:
            self.scaling = "authors_clip" if authors_vision else "ours"
        if self.scaling not in SCALINGS:
            raise bad("scaling", self.scaling, f"one of {', '.join(SCALINGS)}")
        if authors_vision and self.name == "randlora" and self.scaling != "authors_clip":
            raise bad("scaling", self.scaling, "authors_clip (or null) with adapter.convention=authors_vision, "
                      "which is RandLoRA's authors_clip convention; or set adapter.convention=ours")
        if self.num_bases_rule is None:
            self.num_bases_rule = "floor_plus_one" if authors_vision else "ceil"
        if self.num_bases_rule not in NUM_BASES_RULES:
            raise bad("num_bases_rule", self.num_bases_rule, f"one of {', '.join(NUM_BASES_RULES)}")
        if self.num_bases is not None and (not is_int(self.num_bases) or self.num_bases <= 0):
            raise bad("num_bases", self.num_bases, "an integer > 0, or null")
        if self.lr_ratio is not None and (not is_number(self.lr_ratio) or self.lr_ratio <= 0):
            raise bad("lr_ratio", self.lr_ratio, "a number > 0, or null for plain LoRA")
        if self.path not in PATHS:
            raise bad("path", self.path, f"one of {', '.join(PATHS)}")
        if not is_int(self.basis_seed) or self.basis_seed < 0:
            raise bad("basis_seed", self.basis_seed, "an integer >= 0")
        if isinstance(self.trainable_extra, str):
            self.trainable_extra = [self.trainable_extra]
        self.trainable_extra = list(self.trainable_extra or [])
        if isinstance(self.targets, str):
            if self.targets not in PRESETS:
                try:
                    re.compile(self.targets)
                except re.error as err:
                    raise bad("targets", self.targets,
                              f"a preset ({', '.join(PRESETS)}) or a valid regex, and this is neither ({err})") from None
        else:
            self.targets = [str(t) for t in self.targets]
            if not self.targets and self.name != "full":
                raise bad("targets", self.targets, "module-name suffixes, a preset or a regex")

    @classmethod
    def from_any(cls, config: Any) -> "AdapterConfig":
        """Build from a dict, an OmegaConf node, an AdapterConfig, or keyword-like mapping; unknown keys fail."""
        if isinstance(config, cls):
            return config
        if not isinstance(config, Mapping):
            try:
                from omegaconf import OmegaConf

                config = OmegaConf.to_container(config, resolve=True)
            except Exception as err:  # noqa: BLE001 - report what we were given
                raise TypeError(f"adapter config must be a dict, OmegaConf node or AdapterConfig, "
                                f"got {type(config).__name__}") from err
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown adapter config key(s) {unknown}; allowed: {sorted(known)}")
        return cls(**{k: v for k, v in config.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def target_patterns(self) -> list[str] | re.Pattern:
        """Suffix list, or a compiled regex when `targets` is a non-preset string."""
        if isinstance(self.targets, str):
            return PRESETS[self.targets] if self.targets in PRESETS else re.compile(self.targets)
        return self.targets
