"""Read ``result.json`` files (schema 1, docs/ARCHITECTURE.md) into the *runs* table: one row per run.

A file that must not be used — unreadable, empty, truncated or invalid JSON, not schema 1, a field of the wrong
type — is refused by :func:`read_result` (:class:`CorruptResultError` names the file and the reason) and becomes
a ``status == "corrupt"`` row without metrics: never a 0 (the authors' scripts counted a missing file as 0 %).
A run folder ``<task>/<backbone>/<adapter>/<run-id>/`` holding no ``result.json`` becomes an ``incomplete`` row.
Smoke runs (``"debug": "fast"`` in the file, from ``debug=fast``) are left out unless asked for
(``collect(include_debug=True)``, ``aggregate.py --include-debug``); the frame's ``attrs["debug_left_out"]``
counts them.
Runs write ``ok``, ``failed`` or ``interrupted`` (stopped by a signal; ``resume=true`` continues it).

Re-runs of one configuration with the same seeds are one replicate, not several: of the runs whose stored configs
are identical (where they write aside) with the same ``seed`` and ``basis_seed``, the latest (``started``, then
the run id) keeps its status and the others become ``duplicate`` rows naming the one kept, so a ± never comes
from re-runs of one seed.

Columns: the configuration keys ``KEY_COLUMNS``, ``seed``/``basis_seed``, ``INFO_COLUMNS``, the measurements
``VALUE_COLUMNS``, then one column per metric named as in the file (``test/acc``, ``test/acc/boolq``). Metric
names always hold a ``/``; no other column does. Keys that are not top-level fields are derived, first match wins:
``dataset`` <- ``config.task.dataset``, else ``config.task.name`` where it differs from ``task``;
``regime`` <- ``config.task.shots`` (``"16"``), ``config.task.fraction`` (0.5 -> ``"50%"``), ``"100%"`` when the
task config has ``shots``/``fraction`` keys that are both null; ``train_set`` <- ``config.task.train_set``;
``basis``, ``scaling``, ``targets``, ``num_bases`` <- ``config.adapter.<name>`` (a non-null
top-level field of the same name wins over all of these).

Runs of one configuration whose stored configs differ anywhere else (seeds and paths aside) get
``config_differs`` naming those entries, e.g. ``task.target_rank``; ``collect(config_fields={"target_rank":
"task.target_rank"})`` makes such an entry a configuration column of its own.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from randlora.utils.config import flatten_config

SCHEMA_VERSION = 1
RESULT_FILE = "result.json"
RUN_STATUSES = ("ok", "failed", "interrupted")  # written by runs
STATUSES = (*RUN_STATUSES, "duplicate", "corrupt", "incomplete")  # the last three are found here
KEY_COLUMNS = ["task", "subtask", "dataset", "regime", "train_set", "backbone", "adapter", "basis", "scaling",
               "targets", "rank", "alpha", "num_bases", "budget", "lr", "lr_ratio"]
REPLICATE_COLUMNS = ["seed", "basis_seed"]
INFO_COLUMNS = ["status", "error", "run_id", "started", "path", "config_differs", "debug"]
VALUE_COLUMNS = ["trainable", "total", "peak_memory_mb", "wall_time_s", "samples_per_s"]
RUN_COLUMNS = KEY_COLUMNS + REPLICATE_COLUMNS + INFO_COLUMNS + VALUE_COLUMNS
NUMBER_COLUMNS = ["rank", "alpha", "num_bases", "lr", "lr_ratio"] + REPLICATE_COLUMNS + VALUE_COLUMNS
REQUIRED_FIELDS = ("task", "backbone", "adapter")
FIELD_KINDS = {  # kind -> the top-level fields of schema 1 that must be of that kind (or null where not required)
    "str": ["task", "backbone", "adapter", "subtask", "run_id", "started", "error", "debug"],
    "int": ["rank", "seed", "basis_seed"],
    "number": ["alpha", "lr", "lr_ratio", "peak_memory_mb", "wall_time_s", "samples_per_s"],
    "object": ["metrics", "params", "config"]}
KIND_TYPES = {"str": str, "int": int, "number": (int, float), "object": dict}
# configuration columns read from the stored config (column -> dotted path) unless the field is top-level
CONFIG_KEYS = {"dataset": "task.dataset", "train_set": "task.train_set", "basis": "adapter.basis",
               "scaling": "adapter.scaling", "targets": "adapter.targets", "num_bases": "adapter.num_bases"}
# config entries that legitimately differ between the seeds of one configuration (where a run writes,
# whether it resumed or keeps its last checkpoint)
WHERE_A_RUN_WRITES = (r"^paths\.|^hydra\.|(^|[._])(output_)?dir(path)?$|^run_id$"
                      r"|^resume$|^callbacks\.resume_checkpoint\.")  # checkpointing does not change a result
PER_RUN_CONFIG = re.compile(WHERE_A_RUN_WRITES + "|seed")
NOT_IDENTITY = re.compile(WHERE_A_RUN_WRITES)  # what may differ between two re-runs of one seed


class CorruptResultError(ValueError):
    """A result file that must not be used; ``path`` is the file, ``reason`` says why."""

    def __init__(self, path: Path | str, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


def _has_kind(value: Any, kind: str) -> bool:
    """Whether ``value`` is of ``kind`` in ``KIND_TYPES`` (booleans are no numbers, "" is no string)."""
    return isinstance(value, KIND_TYPES[kind]) and not isinstance(value, bool) and value != ""


def _schema_problem(result: Any) -> str | None:
    """Why a parsed ``result.json`` breaks schema 1 (first problem found), or None if it is fine."""
    if not isinstance(result, dict):
        return f"top level must be a JSON object, got {type(result).__name__}"
    if result.get("schema") != SCHEMA_VERSION:
        return f"schema {result.get('schema')!r} is not supported (this reader knows schema {SCHEMA_VERSION})"
    if result.get("status") not in RUN_STATUSES:
        return f"status {result.get('status')!r} is not one of {list(RUN_STATUSES)}"
    for kind, names in FIELD_KINDS.items():
        for name in names:
            if result.get(name) is None and name in REQUIRED_FIELDS:
                return f"field {name!r} is missing or null; it is required"
            if result.get(name) is not None and not _has_kind(result[name], kind):
                return f"field {name!r} must be {kind} or null, got {result[name]!r}"
    for metric, value in (result.get("metrics") or {}).items():
        if "/" not in metric:
            return f"metric name {metric!r} must look like 'split/name' (e.g. 'test/acc')"
        if value is not None and not _has_kind(value, "number"):
            return f"metric {metric!r} must be a number or null, got {value!r}"
        if result["status"] == "ok" and value is not None and not math.isfinite(value):
            return f"metric {metric!r} is {value} in a run marked ok"
    bad_params = [name for name, value in (result.get("params") or {}).items()
                  if value is not None and not _has_kind(value, "number")]
    return f"params {bad_params} must be numbers or null" if bad_params else None


def read_result(path: Path | str) -> dict[str, Any]:
    """The parsed ``result.json`` at ``path``; :class:`CorruptResultError` if it must not be used.

    Refused: unreadable or empty files, invalid or truncated JSON, and anything :func:`_schema_problem` finds:
    a schema other than 1, a status other than ok/failed/interrupted, no ``task``/``backbone``/``adapter``, a field of the
    wrong type (``FIELD_KINDS``; null is allowed), a metric name without ``/``, non-numeric metrics or params,
    NaN/Inf metrics in a run marked ok.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CorruptResultError(path, f"cannot read file ({err})") from err
    if not text.strip():
        raise CorruptResultError(path, "empty file (run killed while writing?)")
    try:
        result = json.loads(text)
    except json.JSONDecodeError as err:
        raise CorruptResultError(path, f"invalid or truncated JSON ({err.msg} at line {err.lineno} column "
                                       f"{err.colno})") from err
    if problem := _schema_problem(result):
        raise CorruptResultError(path, problem)
    return result


def _lookup(config: Any, dotted: str) -> Any:
    """``config["a"]["b"]`` for ``"a.b"``; None where any level is absent."""
    for part in dotted.split("."):
        if not isinstance(config, Mapping) or part not in config:
            return None
        config = config[part]
    return config


def as_key(value: Any) -> str | None:
    """A configuration value as text: lists and mappings as JSON (``["q", "v"]``), 28000000.0 as "28000000"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _regime(task_config: Any) -> str | None:
    """The Figure 3 regime of a task config: shots per class ``"16"``, a data fraction ``"50%"`` or ``"100%"``."""
    if not isinstance(task_config, Mapping) or not {"shots", "fraction"} & set(task_config):
        return None
    if task_config.get("shots") is not None:
        return str(int(task_config["shots"]))
    fraction = task_config.get("fraction")
    return f"{float(fraction) * 100:g}%" if fraction is not None else "100%"


def _run_row(result: Mapping[str, Any], path: Path, config_fields: Mapping[str, str]) -> dict[str, Any]:
    """One runs-table row from a validated result; ``config_fields`` maps column -> dotted config path."""
    config, params = result.get("config") or {}, result.get("params") or {}
    row = {name: result.get(name) for name in RUN_COLUMNS}
    for column, dotted in {**CONFIG_KEYS, **config_fields}.items():
        row[column] = as_key(row.get(column) if row.get(column) is not None else _lookup(config, dotted))
    if row["dataset"] is None and _lookup(config, "task.name") not in (None, result["task"]):
        row["dataset"] = as_key(config["task"]["name"])
    row.update(regime=as_key(row["regime"]) or _regime(config.get("task")), budget=as_key(row["budget"]),
               trainable=params.get("trainable"), total=params.get("total"), path=str(path))
    return {**row, **(result.get("metrics") or {})}


def _mark_config_differences(rows: list[dict[str, Any]], configs: dict[int, dict[str, str]],
                             keys: list[str]) -> None:
    """Set ``config_differs`` on the rows of each configuration whose stored configs differ (seeds aside)."""
    groups: dict[tuple, list[int]] = {}
    for index in configs:
        groups.setdefault(tuple(rows[index].get(k) for k in keys), []).append(index)
    for members in groups.values():
        flats = [configs[i] for i in members]
        names = sorted(set().union(*flats))
        differing = [n for n in names if not PER_RUN_CONFIG.search(n) and len({f.get(n) for f in flats}) > 1]
        for index in members:
            rows[index]["config_differs"] = ",".join(differing) or None


def _mark_duplicates(rows: list[dict[str, Any]], configs: dict[int, dict[str, str]], keys: list[str]) -> None:
    """Turn all but the latest run of each (configuration, seed, basis_seed, stored config) into ``duplicate``."""
    groups: dict[tuple, list[int]] = {}
    for index, flat in configs.items():
        identity = tuple(as_key(rows[index].get(k)) for k in keys + REPLICATE_COLUMNS)
        stored = tuple(sorted((name, value) for name, value in flat.items() if not NOT_IDENTITY.search(name)))
        groups.setdefault((identity, stored), []).append(index)
    for members in groups.values():
        if len(members) < 2:
            continue
        ordered = sorted(members, key=lambda i: (str(rows[i].get("started") or ""), str(rows[i].get("run_id") or ""),
                                                 rows[i]["path"]))
        kept = rows[ordered[-1]]
        for index in ordered[:-1]:
            row = rows[index]
            row["error"] = (f"duplicate of {kept['path']} (same config and seed, started later; the {row['status']} "
                            "result here is not counted)")
            row["status"] = "duplicate"


def _keys_from_path(run_dir: Path, runs_dir: Path) -> dict[str, str]:
    """task[/dataset]/backbone/adapter/run_id from the ``<task>[-<dataset>]/<backbone>/<adapter>/<run-id>/`` layout,
    where it holds."""
    parts = run_dir.relative_to(runs_dir).parts
    if len(parts) < 4:
        return {}
    keys = dict(zip(["task", "backbone", "adapter", "run_id"], parts))
    task, _, dataset = keys["task"].partition("-")
    return {**keys, "task": task, **({"dataset": dataset} if dataset else {})}


def collect(runs_dir: Path | str, config_fields: Mapping[str, str] | None = None,
            include_debug: bool = False) -> pd.DataFrame:
    """The runs table of every ``result.json`` below ``runs_dir``, plus incomplete run folders, sorted by path.

    Runs marked ``debug`` (smoke runs) are left out unless ``include_debug``; ``attrs["debug_left_out"]`` says
    how many were.

    ``config_fields`` maps extra configuration columns to dotted config paths, e.g. ``{"targets":
    "adapter.targets"}``; :func:`~randlora.reporting.summary.summarise` groups by them too.
    """
    runs_dir, config_fields = Path(runs_dir), dict(config_fields or {})
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"results directory {runs_dir} does not exist (expected "
                                f"<task>/<backbone>/<adapter>/<run-id>/{RESULT_FILE} below it)")
    for column in config_fields:
        if "/" in column or column in RUN_COLUMNS:
            raise ValueError(f"config field column {column!r} must not contain '/' nor reuse a standard column "
                             f"({', '.join(RUN_COLUMNS)})")
    rows: list[dict[str, Any]] = []
    configs: dict[int, dict[str, str]] = {}  # row index -> flattened stored config
    debug_left_out = 0
    for path in sorted(runs_dir.rglob(RESULT_FILE)):
        try:
            result = read_result(path)
        except CorruptResultError as err:
            rows.append({**_keys_from_path(path.parent, runs_dir), "status": "corrupt", "error": err.reason,
                         "path": str(path)})
            continue
        if result.get("debug") and not include_debug:
            debug_left_out += 1
            continue
        configs[len(rows)] = flatten_config(result.get("config") or {})
        rows.append(_run_row(result, path, config_fields))
    _mark_config_differences(rows, configs, KEY_COLUMNS + list(config_fields))
    _mark_duplicates(rows, configs, KEY_COLUMNS + list(config_fields))
    for run_dir in sorted(runs_dir.glob("*/*/*/*")):
        if run_dir.is_dir() and not any(run_dir.rglob(RESULT_FILE)):
            rows.append({**_keys_from_path(run_dir, runs_dir), "status": "incomplete", "path": str(run_dir),
                         "error": f"no {RESULT_FILE} (run killed, or still running)"})
    frame = pd.DataFrame(rows)
    metrics = sorted(c for c in frame.columns if "/" in c)
    frame = frame.reindex(columns=RUN_COLUMNS + list(config_fields) + metrics)
    frame = typed(frame.sort_values("path", kind="stable", ignore_index=True))
    frame.attrs["debug_left_out"] = debug_left_out
    return frame


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers (``NUMBER_COLUMNS`` and metrics) as float with NaN; all else as text or None, as after a CSV read."""
    frame = frame.copy()
    for column in frame.columns:
        if column in NUMBER_COLUMNS or "/" in column:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        else:
            frame[column] = pd.Series([as_key(v) if not pd.isna(v) else None for v in frame[column]],
                                      index=frame.index, dtype=object)
    return frame


def status_counts(runs: pd.DataFrame) -> dict[str, int]:
    """How many runs have each status, all of ``STATUSES`` listed (zeros included)."""
    return {status: int((runs["status"] == status).sum()) for status in STATUSES}


def failures(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that are not ok (failed, interrupted, duplicate, corrupt, incomplete): configuration, error, path."""
    columns = ["status", "task", "backbone", "adapter", "rank", "lr", "lr_ratio", "seed", "error", "path"]
    return runs.loc[runs["status"] != "ok", columns].reset_index(drop=True)


def write_csv(frame: pd.DataFrame, path: Path | str) -> Path:
    """Write ``frame`` to ``path`` through a temporary file and a rename, so no reader sees half a table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def read_csv(path: Path | str) -> pd.DataFrame:
    """A CSV of runs-table columns (``summary.csv``, an expected grid), typed as :func:`collect` types them."""
    return typed(pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]))


def read_runs_csv(path: Path | str) -> pd.DataFrame:
    """The runs table from the ``summary.csv`` that ``scripts/aggregate.py`` writes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `python scripts/aggregate.py` first")
    runs = read_csv(path)
    missing = [c for c in ("task", "backbone", "adapter", "status", "path") if c not in runs.columns]
    if missing:
        raise ValueError(f"{path} is not a runs table written by aggregate.py: columns {missing} are absent")
    return runs
