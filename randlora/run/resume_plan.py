"""Which checkpoint a run resumes from, and in which run folder it continues (``resume=true|auto|<path>``).

The checkpoint itself (what it holds, how it is written and checked) is :mod:`randlora.run.resume`; here a
config's identity (:func:`config_fingerprint`, stored next to the checkpoint as ``checkpoints/config.json``)
picks the run to continue.

Resolving ``resume`` (:func:`plan_resume`):

- ``true``: among the sibling run folders of this run (``results/runs/<task>/<backbone>/<adapter>/*``), the
  one whose ``checkpoints/last.ckpt`` is newest, whose stored config fingerprint equals this config's and
  whose ``result.json`` is not ``ok`` (missing after a kill, ``failed`` after an interrupt or a crash);
- ``auto``: as ``true`` when there is such a run, else a new run (for jobs that a scheduler may requeue or
  that a sweep repeats: the same command line works before and after an interruption);
- a path: that file, which must exist.

Where the resumed run lives: in the interrupted run's own folder, when the checkpoint is that folder's
``checkpoints/last.ckpt`` with the same config and no ``ok`` result. Its final ``result.json`` then
replaces the interrupted one, so the run counts once in the aggregate tables (a folder without a result is
listed there as incomplete) and its adapter, metrics.csv and train.log stay together. Hydra has already
made a new folder for this process by then; :func:`continue_in` moves the log file to the old folder and
deletes the new one, which holds nothing but Hydra's ``.hydra/`` and the log; ``metrics.csv`` is continued
(:mod:`randlora.run.loggers`: each step and epoch once). A checkpoint from elsewhere,
or from a run of another config (``resume=<path>`` only: e.g. more epochs), continues in the new folder.
Either way the result records ``resumed_from``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf, open_dict

from randlora.run.resume import CHECKPOINT_DIR, CONFIG_FILE, LAST_CHECKPOINT
from randlora.utils.config import flatten_config

if TYPE_CHECKING:
    from randlora.run.task_wrapper import RunInfo

log = logging.getLogger(__name__)

IGNORED_KEYS = ("paths", "hydra", "resume")  # not part of a run's identity


# ------------------------------------------------------------------------------------------ config identity


def config_fingerprint(cfg: DictConfig) -> tuple[str, dict]:
    """``("sha256:<hex>", config)``: the composed config without ``paths``, ``hydra`` and ``resume``.

    Interpolations are kept unresolved (``${paths.output_dir}`` differs between runs, its text does not);
    the hash is over the JSON with sorted keys. Take it before anything edits the config (``budget``).
    """
    config = OmegaConf.to_container(cfg, resolve=False)
    for key in IGNORED_KEYS:
        config.pop(key, None)
    text = json.dumps(config, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest(), config


def differing_keys(a: dict, b: dict) -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    flat_a, flat_b = flatten_config(a), flatten_config(b)
    return sorted(k for k in flat_a.keys() | flat_b.keys() if flat_a.get(k, "<absent>") != flat_b.get(k, "<absent>"))


def _stored_config(run_dir: Path) -> dict | None:
    """``{"config_hash", "config"}`` stored in a run folder, or None when absent or unreadable."""
    try:
        stored = json.loads((run_dir / CHECKPOINT_DIR / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) and "config_hash" in stored else None


def _finished(run_dir: Path) -> bool:
    """True when the folder holds a parsable ``result.json`` with ``status: ok``."""
    try:
        return json.loads((run_dir / "result.json").read_text()).get("status") == "ok"
    except (OSError, ValueError, AttributeError):
        return False


# ------------------------------------------------------------------------------------------- resolving resume


@dataclass
class ResumePlan:
    """The checkpoint to resume from and the run folder to continue in (None: this run's new folder)."""

    checkpoint: Path
    run_dir: Path | None


def _checkpoint_of(run_dir: Path) -> Path:
    return run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT


def newest_interrupted_run(search_dir: Path, fingerprint: tuple[str, dict], exclude: Path | None = None) -> Path:
    """The newest run folder under ``search_dir`` to resume (see the module docstring); else FileNotFoundError."""
    config_hash, config = fingerprint
    found, other_configs, finished = [], [], 0
    for checkpoint in sorted(search_dir.glob(f"*/{CHECKPOINT_DIR}/{LAST_CHECKPOINT}")):
        run_dir = checkpoint.parent.parent
        if exclude is not None and run_dir.resolve() == exclude.resolve():
            continue
        stored = _stored_config(run_dir)
        if stored is None or stored["config_hash"] != config_hash:
            other_configs.append((checkpoint.stat().st_mtime, stored))
        elif _finished(run_dir):
            finished += 1
        else:
            found.append((checkpoint.stat().st_mtime, run_dir))
    if found:
        return max(found, key=lambda item: item[0])[1]
    hint = ""
    newest_other = max(other_configs, key=lambda item: item[0], default=(0, None))[1]
    if newest_other is not None and isinstance(newest_other.get("config"), dict):
        keys = differing_keys(config, newest_other["config"])[:6]
        hint = f"; the newest other checkpoint's config differs in {', '.join(keys)}"
    raise FileNotFoundError(
        f"resume=true: no interrupted run of this config in {search_dir} (looked for <run>/{CHECKPOINT_DIR}/"
        f"{LAST_CHECKPOINT} with config hash {config_hash[:19]}… and no ok result.json; found "
        f"{len(other_configs)} checkpoint(s) of other configs and {finished} of finished runs{hint}); "
        "start it without resume, or give resume=<path to a .ckpt>")


def plan_resume(cfg: DictConfig, run_dir: Path, fingerprint: tuple[str, dict]) -> ResumePlan | None:
    """Resolve ``cfg.resume`` (null/false: None; true: newest interrupted run; a path: that checkpoint)."""
    value = cfg.get("resume")
    if value is None or value is False:
        return None
    if value == "auto":  # a requeued or repeated job: continue the interrupted run if there is one
        try:
            old_run = newest_interrupted_run(run_dir.parent, fingerprint, exclude=run_dir)
        except FileNotFoundError:
            log.info("resume=auto: no interrupted run of this config in %s; starting afresh", run_dir.parent)
            return None
        return ResumePlan(_checkpoint_of(old_run), old_run)
    if value is True:
        old_run = newest_interrupted_run(run_dir.parent, fingerprint, exclude=run_dir)
        return ResumePlan(_checkpoint_of(old_run), old_run)
    checkpoint = Path(str(value)).expanduser()
    if not checkpoint.is_file():
        raise FileNotFoundError(f"resume={value}: no such checkpoint file; give the path of a run's "
                                f"{CHECKPOINT_DIR}/{LAST_CHECKPOINT}, or resume=true for the newest interrupted run")
    checkpoint = checkpoint.resolve()
    old_run = checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINT_DIR else None
    stored = None if old_run is None else _stored_config(old_run)
    if stored is not None and stored["config_hash"] == fingerprint[0] and not _finished(old_run):
        return ResumePlan(checkpoint, old_run)
    if stored is not None and stored["config_hash"] != fingerprint[0]:
        log.warning("resume=%s: the config differs from that run's (%s); continuing in this run's new folder",
                    value, ", ".join(differing_keys(fingerprint[1], stored.get("config") or {})[:6]))
    return ResumePlan(checkpoint, None)


# ------------------------------------------------------------------------------------ continuing in the folder


def _move_log_files(old: Path, new: Path) -> None:
    """Point the root logger's file handlers under ``old`` at the same file names under ``new`` (appending)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if not isinstance(handler, logging.FileHandler) or Path(handler.baseFilename).resolve().parent != old.resolve():
            continue
        handler.flush()
        target = new / Path(handler.baseFilename).name
        written = Path(handler.baseFilename).read_text() if Path(handler.baseFilename).is_file() else ""
        with open(target, "a", encoding=handler.encoding) as stream:
            stream.write(written)
        moved = logging.FileHandler(target, mode="a", encoding=handler.encoding)
        moved.setFormatter(handler.formatter)
        moved.setLevel(handler.level)
        for log_filter in handler.filters:
            moved.addFilter(log_filter)
        root.addHandler(moved)
        root.removeHandler(handler)
        handler.close()


def _remove_if_only_hydra_files(folder: Path) -> None:
    """Delete ``folder`` if it holds nothing but Hydra's ``.hydra/`` and ``*.log`` files."""
    if not folder.is_dir():
        return
    entries = list(folder.iterdir())
    if all(e.name == ".hydra" or (e.is_file() and e.suffix == ".log") for e in entries):
        shutil.rmtree(folder, ignore_errors=True)
    else:
        log.warning("left %s in place: it holds more than Hydra's files (%s)", folder, sorted(e.name for e in entries))


def continue_in(cfg: DictConfig, info: RunInfo, run_dir: Path) -> None:
    """Make ``run_dir`` this run's folder: config paths, the failure record, the log file; drop the new one."""
    new_dir = info.run_dir
    if new_dir.resolve() == run_dir.resolve():
        return
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    info.run_dir = run_dir
    _move_log_files(new_dir, run_dir)
    _remove_if_only_hydra_files(new_dir)
    log.info("continuing the interrupted run in %s", run_dir)
