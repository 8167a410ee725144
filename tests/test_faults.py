"""Nothing wrong is ever recorded as ok (in-process, on the small synthetic task): diverged and NaN runs fail with
strict-JSON results, partially-NaN outputs are never dropped from a metric, eval refuses an adapter file of another
config, runs that train nothing and unknown group keys are refused before any model is built, and re-runs of one
seed are one replicate in the aggregate tables.

The same cases through ``python train.py`` are rows of the table in ``test_reliability.py``.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers_training import training_config
from randlora.utils.validate import ConfigError

SYN = ("backbone=synthetic_mlp", "task=synthetic_fullrank", "task.train_size=64", "task.val_size=32",
       "task.test_size=32")


def strict_json(path: Path) -> dict:
    """The file parsed as strict JSON: NaN / Infinity are refused."""
    def refuse(constant: str):
        raise AssertionError(f"{path} holds {constant}: not strict JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


# ------------------------------------------------------------------------------------------------ divergence


@pytest.mark.parametrize("overrides", [
    ("optim.lr=1e6",),  # diverges: the validation outputs overflow (was: ok with Infinity in result.json)
    ("optim.lr=1e30", "optim.grad_clip=null", "optim.warmup_steps=0", "trainer.limit_train_batches=1"),  # all NaN
], ids=["diverged", "all_nan"])
def test_diverged_run_is_failed_with_one_line_and_strict_json(tmp_path, overrides):
    from randlora.train import train

    cfg = training_config(tmp_path, [*SYN, *overrides])
    with pytest.raises(FloatingPointError) as caught:
        train(cfg)
    assert "\n" not in str(caught.value) and "diverged" in str(caught.value) and "optim.lr" in str(caught.value)
    result = strict_json(tmp_path / "run" / "result.json")
    assert result["status"] == "failed" and result["metrics"] == {}
    assert not list((tmp_path / "run").rglob("*.tmp"))


class HalfNaN(nn.Module):
    """Predicts y exactly, except NaN for the first sample of each batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        out[0] = math.nan
        return out


def test_partially_nan_test_outputs_are_never_dropped_from_a_metric():
    from randlora.module import NonFiniteOutputError, RegressionModule

    module = RegressionModule(HalfNaN(), {"lr": 1e-3}, {"test": 1.0, "val": 1.0})
    module.on_test_epoch_start()
    x = torch.ones(4, 3)
    with pytest.raises(NonFiniteOutputError, match=r"^test squared errors are NaN or infinite \(1 of 4 values"):
        module.test_step((x, x), 0)
    # and if a NaN score reached the aggregation anyway, it is kept (torchmetrics would drop it) and refused
    module._record_test(0, torch.tensor([0.0, math.nan, 0.5]), None)
    with pytest.raises(NonFiniteOutputError, match=r"test/rel_error/test: 1 of 3 per-sample scores are NaN"):
        module.on_test_epoch_end()


def test_nan_logits_are_not_scored_as_a_class():
    from randlora.module import ClassificationModule, NonFiniteOutputError

    class NaNLogits(nn.Module):
        def forward(self, x):
            return torch.full((len(x), 3), math.nan)

    module = ClassificationModule(NaNLogits(), {"lr": 1e-3})
    with pytest.raises(NonFiniteOutputError, match="test logits are NaN or infinite"):
        module.test_step((torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)), 0)


def test_non_finite_weights_or_metrics_fail_the_run():
    from randlora.module import NonFiniteOutputError, check_finite_run

    model = nn.Linear(2, 2)
    check_finite_run(model, {"test/acc": 0.5}, 1e-3)
    with pytest.raises(NonFiniteOutputError, match=r"metrics \{'val/acc_best': inf\} are not finite"):
        check_finite_run(model, {"test/acc": 0.5, "val/acc_best": math.inf}, 1e-3)
    with torch.no_grad():
        model.weight[0, 0] = math.nan
    with pytest.raises(NonFiniteOutputError, match="trainable weights are NaN or infinite .* e.g. weight"):
        check_finite_run(model, {}, 1e-3)


def test_result_files_are_strict_json(tmp_path):
    from randlora.run.results import write_json_atomic

    path = write_json_atomic(tmp_path / "r.json", {"metrics": {"val/x": math.inf, "ok": 1.0}, "l": [math.nan]})
    assert strict_json(path) == {"metrics": {"val/x": None, "ok": 1.0}, "l": [None]}


# ----------------------------------------------------------------------------------- refused before building


@pytest.mark.parametrize("override, expected", [
    ("trainer.max_epochs=0", "trainer.max_epochs=0 is invalid: allowed is an integer >= 1"),
    ("trainer.max_epochs=-1", "trainer.max_epochs=-1 is invalid"),
    ("trainer.limit_train_batches=0", "trainer.limit_train_batches=0 is invalid: allowed is an integer >= 1"),
    ("trainer.max_steps=0", "trainer.max_steps=0 is invalid: allowed is -1 (no step limit)"),
    ("optim.eps=abc", "optim.eps='abc' is invalid: allowed is a number > 0"),
    ("optim.min_lr_ratio=abc", "optim.min_lr_ratio='abc' is invalid: allowed is a number in [0, 1]"),
    ("+optim.learning_rate=0.5", "optim.learning_rate is not a key of optim: did you mean optim.lr?"),
    ("+task.trian_size=8", "task.trian_size is not a key of task: did you mean task.train_size?"),
    ("+loader.batchsize=2", "loader.batchsize is not a key of loader: did you mean loader.batch_size?"),
])
def test_nonsense_config_is_refused_before_any_model_is_built(tmp_path, monkeypatch, override, expected):
    import randlora.backbones
    from randlora.train import train

    monkeypatch.setattr(randlora.backbones, "build_backbone", lambda *a, **k: pytest.fail("a model was built"))
    with pytest.raises(ConfigError) as caught:
        train(training_config(tmp_path, [*SYN, override]))
    assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)
    assert not (tmp_path / "run").exists()  # refused before the run folder is made: nothing to mistake for a run


def test_every_shipped_config_passes_the_closed_schemas():
    from randlora.utils.config import CONFIGS_DIR, compose_config
    from randlora.utils.schema import check_closed_groups

    experiments = sorted(p.stem for p in (CONFIGS_DIR / "experiment").glob("*.yaml"))
    tasks = sorted(p.stem for p in (CONFIGS_DIR / "task").glob("*.yaml"))
    for overrides in [[f"experiment={e}"] for e in experiments] + [[f"task={t}"] for t in tasks] + [["optim=adamw_llm"]]:
        assert check_closed_groups(compose_config(overrides)) is None, overrides


@pytest.mark.parametrize("overrides, expected", [
    (("adapter=lora", "adapter.rank=1000"), "adapter.rank=1000 is invalid for lora: the adapted layer"),
    (("adapter=randlora", "budget=10"), "budget=10 is unreachable with randlora on this backbone: its ranks 1..64"),
    (("adapter=lora", "budget=1000000000"), "budget=1000000000 is unreachable with lora"),
    (("task.val_size=0",), "task 'synthetic_fullrank' has no validation sample (task.val_size=0?)"),
])
def test_nonsense_sizes_are_refused_before_training(tmp_path, overrides, expected):
    from randlora.train import train

    with pytest.raises(ConfigError) as caught:
        train(training_config(tmp_path, [*SYN, *overrides]))
    assert str(caught.value).startswith(expected) and "\n" not in str(caught.value)
    assert [p.name for p in (tmp_path / "run").iterdir() if p.suffix in (".safetensors", ".json")] == ["result.json"]
    assert strict_json(tmp_path / "run" / "result.json")["status"] == "failed"


def test_val_size_zero_is_fine_when_the_final_adapter_is_tested(tmp_path):
    from randlora.train import train

    result = train(training_config(tmp_path, [*SYN, "task.val_size=0", "callbacks.adapter_checkpoint=null"]))
    assert result["status"] == "ok" and "test/rel_error" in result["metrics"]


def test_an_empty_test_set_is_an_error_not_a_missing_metric(tmp_path):
    from helpers_training import write_commonsense
    from randlora.data.commonsense import load_test_set
    from randlora.module import EmptyTestSetError, RegressionModule

    _, test_root = write_commonsense(tmp_path)
    (test_root / "boolq" / "test.json").write_text("[]")
    with pytest.raises(ValueError, match=r"boolq/test.json: the test file of task 'boolq' holds no records"):
        load_test_set(test_root, "boolq")
    module = RegressionModule(nn.Identity(), {"lr": 1e-3}, {"test": 1.0, "val": 1.0}, test_names=["a", "b"])
    module.on_test_epoch_start()
    module._record_test(0, torch.tensor([0.5]), None)  # subtask b saw no sample
    with pytest.raises(EmptyTestSetError, match="test set 'b' has no sample"):
        module.on_test_epoch_end()


def test_disk_full_while_checkpointing_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    """torch reports a full disk as a RuntimeError ("file write failed") after writing part of the file."""
    from types import SimpleNamespace

    import lightning.pytorch as pl

    from randlora.run import resume
    from randlora.train import train
    from randlora.utils.cli_errors import one_line_message

    def full_disk(self, filepath, weights_only=False):
        Path(filepath).write_bytes(b"part of a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(pl.Trainer, "save_checkpoint", full_disk)
    monkeypatch.setattr(resume.shutil, "disk_usage", lambda path: SimpleNamespace(free=0))
    with pytest.raises(OSError) as caught:
        train(training_config(tmp_path, list(SYN)))
    assert one_line_message(caught.value) == f"Disk full: no space left on {tmp_path / 'run' / 'checkpoints'}"
    assert not list((tmp_path / "run").rglob("*.tmp"))
    assert strict_json(tmp_path / "run" / "result.json")["status"] == "failed"


def test_os_errors_read_as_one_line_naming_the_file():
    import errno

    from randlora.utils.cli_errors import USER_ERRORS, one_line_message

    assert all(issubclass(kind, USER_ERRORS) for kind in (OSError, PermissionError))
    assert one_line_message(PermissionError(errno.EACCES, "Permission denied", "/r/x")) == \
        "Cannot write: Permission denied: /r/x"
    assert one_line_message(OSError("could not load 'm' (line one\nline two)")) == \
        "Error: could not load 'm' (line one line two)"
    worker = ValueError("Caught BadImageError in DataLoader worker process 0.\nOriginal Traceback (most recent "
                        "call last):\n  File ...\nrandlora.data.images.BadImageError: /d/a.png (0 bytes) cannot be read")
    assert one_line_message(worker) == "Error: /d/a.png (0 bytes) cannot be read"


def test_a_zero_byte_image_is_named(tmp_path):
    from helpers_training import write_image_folder
    from randlora.data.images import BadImageError, ImageListDataset

    root = write_image_folder(tmp_path)
    image = root / "eurosat" / "train" / "forest" / "0.png"
    image.write_bytes(b"")
    with pytest.raises(BadImageError, match=rf"^{image} \(0 bytes\) cannot be read as an image"):
        ImageListDataset([(image, 0)])[0]


# --------------------------------------------------------------------------------------------------- eval


def test_eval_refuses_an_adapter_file_of_another_config(tmp_path):
    from randlora.eval import evaluate
    from randlora.train import train
    from randlora.utils.config import compose_config

    runs = {}
    for adapter in ("randlora", "lora"):
        cfg = training_config(tmp_path, [*SYN, f"adapter={adapter}", "adapter.rank=6"], run=adapter)
        assert train(cfg)["status"] == "ok"
        runs[adapter] = tmp_path / adapter
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    shutil.copy(runs["randlora"] / "result.json", swapped / "result.json")
    shutil.copy(runs["lora"] / "adapter.safetensors", swapped / "adapter.safetensors")
    for path, ok in ((runs["randlora"] / "adapter.safetensors", True), (swapped / "adapter.safetensors", False)):
        cfg = compose_config([f"adapter_path={path}", f"paths.root_dir={tmp_path}", "trainer.accelerator=cpu",
                              f"paths.output_dir={tmp_path / 'eval'}"], config_name="eval")
        if ok:
            assert evaluate(cfg)["metrics"]["test/rel_error"] >= 0
            continue
        with pytest.raises(ValueError, match=r"holds a different adapter than the model's: .*'name': \('lora', "
                                             r"'randlora'\)"):
            evaluate(cfg)
        assert not (swapped / "eval.json").exists()  # nothing labelled RandLoRA from a LoRA file


# ------------------------------------------------------------------------------------------------ aggregation


def _write_run(root: Path, run_id: str, seed: int, started: str, status: str = "ok", acc: float = 0.5,
               rank: int = 4) -> None:
    from datetime import datetime

    from omegaconf import OmegaConf

    from randlora.run.results import build_result, write_result

    cfg = OmegaConf.create({"seed": seed, "task": {"name": "tweets", "train_size": 64},
                            "backbone": {"name": "minilm"}, "optim": {"lr": 1e-3},
                            "adapter": {"name": "lora", "rank": rank, "basis_seed": 0},
                            "paths": {"output_dir": str(root / run_id)}})
    result = build_result(cfg, run_id=run_id, started=datetime.fromisoformat(started), status=status,
                          metrics={"test/acc": acc} if status == "ok" else {})
    write_result(root / "tweets" / "minilm" / "lora" / run_id, result)


def test_reruns_of_one_seed_are_one_replicate_keeping_the_latest(tmp_path):
    from randlora import reporting

    _write_run(tmp_path, "a-seed0", 0, "2025-01-01T10:00:00", acc=0.50)
    _write_run(tmp_path, "b-seed0-again", 0, "2025-01-02T10:00:00", acc=0.60)  # the latest of seed 0: kept
    _write_run(tmp_path, "c-seed0-failed", 0, "2025-01-01T12:00:00", status="failed")
    _write_run(tmp_path, "d-seed1", 1, "2025-01-01T11:00:00", acc=0.70)
    _write_run(tmp_path, "e-seed1-interrupted", 1, "2025-01-01T09:00:00", status="interrupted")
    _write_run(tmp_path, "f-seed0-rank8", 0, "2025-01-01T10:00:00", acc=0.90, rank=8)  # another config
    runs = reporting.collect(tmp_path)
    status = dict(zip(runs["run_id"], runs["status"]))
    assert status == {"a-seed0": "duplicate", "b-seed0-again": "ok", "c-seed0-failed": "duplicate",
                      "d-seed1": "ok", "e-seed1-interrupted": "duplicate", "f-seed0-rank8": "ok"}
    duplicate = runs[runs["run_id"] == "c-seed0-failed"].iloc[0]
    assert duplicate["error"].startswith(f"duplicate of {tmp_path / 'tweets/minilm/lora/b-seed0-again/result.json'}")
    summary = reporting.summarise(runs)
    rank4 = summary[summary["rank"] == 4].iloc[0]
    assert (rank4["n"], rank4["n_failed"], rank4["seeds"]) == (2, 0, "0,1")
    assert rank4["test/acc:mean"] == pytest.approx(0.65)
    assert sorted(reporting.failures(runs)["status"]) == ["duplicate"] * 3
    assert reporting.status_counts(runs)["duplicate"] == 3


def test_results_folder_check_leaves_nothing_and_names_an_unwritable_root(tmp_path, capsys):
    from randlora.run.writable import ensure_writable

    ensure_writable(tmp_path / "results" / "runs" / "task")
    assert list(tmp_path.iterdir()) == []  # probed, nothing made: a config refused next leaves no folder
    with pytest.raises(SystemExit) as caught:
        ensure_writable("/sys/randlora_results/runs")  # sysfs refuses new entries, even to root
    assert caught.value.code == 2
    assert capsys.readouterr().err.startswith("Error: cannot write the results folder /sys/randlora_results/runs (/sys)")
