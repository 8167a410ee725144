"""Check a composed training config once, before anything is built or trained.

Each rule names a dotted key, a predicate and what is allowed; the first broken rule raises one
:class:`ConfigError` whose message names the key, the bad value and the allowed values, e.g.
``optim.lr=0 is invalid: allowed is a number > 0``. :data:`EXCLUSIVE` lists keys that must not be set
together (``task.shots`` and ``task.fraction``). Rules have one owner each: the ``adapter`` node is checked by
the adapter library (:class:`randlora.adapters.AdapterConfig`), the ``backbone`` node by the backbone library,
and the schedules are :data:`randlora.optim.SCHEDULES`; :func:`validate_config` calls them and keeps no lists
of its own.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from randlora.optim import SCHEDULES

_ABSENT = object()


class ConfigError(ValueError):
    """A config value is invalid; the message names the key, the bad value and what is allowed."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def int_at_least(low: int) -> Callable[[Any], bool]:
    return lambda v: _is_int(v) and v >= low


def number_at_least(low: float) -> Callable[[Any], bool]:
    return lambda v: _is_number(v) and v >= low


def number_above(low: float) -> Callable[[Any], bool]:
    return lambda v: _is_number(v) and v > low


def one_of(options: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda v: v in options


def optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


# (dotted key, required, predicate, what is allowed)
RULES: list[tuple[str, bool, Callable[[Any], bool], str]] = [
    ("seed", True, int_at_least(0), "an integer >= 0"),
    ("optim.lr", True, number_above(0), "a number > 0"),
    ("optim.weight_decay", True, number_at_least(0), "a number >= 0"),
    ("optim.betas", True, lambda v: isinstance(v, (list, tuple)) and len(v) == 2
     and all(_is_number(b) and 0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    ("optim.warmup_steps", True, int_at_least(0), "an integer >= 0"),
    ("optim.warmup_ratio", False, optional(lambda v: _is_number(v) and 0 <= v < 1),
     "a number in [0, 1) (the fraction of steps that warm up) or null"),
    ("optim.schedule", True, one_of(SCHEDULES), f"one of {', '.join(SCHEDULES)}"),
    ("optim.grad_clip", False, optional(number_above(0)), "a number > 0 or null"),
    ("optim.accumulate_grad_batches", True, int_at_least(1), "an integer >= 1"),
    ("optim.eps", False, number_above(0), "a number > 0 (e.g. 1e-8)"),
    ("optim.min_lr_ratio", False, lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    ("loader.batch_size", True, int_at_least(1), "an integer >= 1"),
    ("loader.eval_batch_size", True, int_at_least(1), "an integer >= 1"),
    ("loader.num_workers", True, int_at_least(0), "an integer >= 0"),
    # a run that trains nothing is refused: it would be recorded as a trained result
    ("trainer.max_epochs", False, optional(int_at_least(1)), "an integer >= 1, or null for the task's paper epochs"),
    ("trainer.max_steps", False, lambda v: v == -1 or int_at_least(1)(v), "-1 (no step limit) or an integer >= 1"),
    ("trainer.limit_train_batches", False, optional(lambda v: int_at_least(1)(v) or (
        isinstance(v, float) and 0 < v <= 1)), "an integer >= 1 (batches), a fraction in (0, 1] or null"),
    ("budget", False, optional(int_at_least(1)), "a trainable-parameter count >= 1 or null"),
    ("save_full_weights", False, lambda v: isinstance(v, bool), "true or false"),
    ("resume", False, lambda v: v is None or isinstance(v, bool) or (isinstance(v, str) and v.strip() != ""),
     "null, true (the newest interrupted run of this config), auto (that run if there is one, else a new "
     "run) or the path of a .ckpt file"),
]

# (key, other key, what to do): at most one of the two may be set (not null).
EXCLUSIVE: list[tuple[str, str, str]] = [
    ("task.shots", "task.fraction", "set one of them (shots: images per class, fraction: of each class's "
                                    "training images) and the other to null"),
]


def _select(cfg: DictConfig, key: str) -> Any:
    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
    except OmegaConfBaseException as error:  # a missing value (???) or a broken interpolation
        raise ConfigError(f"{key} could not be read: {error}") from None
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def check_libraries(cfg: DictConfig) -> None:
    """Let the adapter and backbone libraries check their own nodes (their rules, their messages)."""
    from randlora.adapters import AdapterConfig
    from randlora.backbones.config import BackboneConfig

    adapter = _select(cfg, "adapter")
    if not isinstance(adapter, dict):
        raise ConfigError(f"adapter={adapter!r} is invalid: allowed is an adapter config (adapter=<name>)")
    if adapter.get("name") == "none":  # zero-shot evaluation: no adapter, a backbone that needs no training
        from randlora.zero_shot import check_zero_shot

        check_zero_shot(cfg)
    else:
        if adapter.get("targets") is None:  # the backbone's default preset, resolved once the backbone is built
            adapter["targets"] = [] if adapter.get("name") == "full" else ["backbone_default"]
        try:
            AdapterConfig.from_any(adapter)
        except (ValueError, TypeError) as error:
            raise ConfigError(str(error)) from None
    if _select(cfg, "backbone") is not _ABSENT:
        try:
            BackboneConfig.from_any(_select(cfg, "backbone"))
        except (ValueError, TypeError) as error:
            raise ConfigError(f"backbone config: {error}") from None


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for an unknown key of a closed group (:mod:`randlora.utils.schema`), then for
    the first rule in :data:`RULES` or :data:`EXCLUSIVE` that ``cfg`` breaks, then for the first problem the
    adapter and backbone libraries find in their nodes."""
    from randlora.utils.schema import check_closed_groups

    if problem := check_closed_groups(cfg):
        raise ConfigError(problem)
    for key, required, check, allowed in RULES:
        value = _select(cfg, key)
        if value is _ABSENT:
            if required:
                raise ConfigError(f"{key} is missing: allowed is {allowed}")
            continue
        if not check(value):
            raise ConfigError(f"{key}={value!r} is invalid: allowed is {allowed}")
    for key, other, advice in EXCLUSIVE:
        value, other_value = _select(cfg, key), _select(cfg, other)
        if value not in (None, _ABSENT) and other_value not in (None, _ABSENT):
            raise ConfigError(f"{key}={value!r} and {other}={other_value!r} are both set: {advice}")
    check_libraries(cfg)
