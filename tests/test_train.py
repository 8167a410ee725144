"""Training pipeline: schedule math, optimizer groups, adapter wiring, result files, failure records, and
``train(cfg)`` end to end for every adapter and every backbone kind on tiny models with generated data."""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import open_dict
import torch
from torch import nn

from helpers_training import training_config, write_commonsense, write_image_folder, write_tweets_csv
from randlora.optim import build_optimizer, lr_factor
from randlora.run.results import peak_memory_mb, reset_peak_memory, write_json_atomic
from randlora.train import adapter_settings, train
from randlora.utils.validate import ConfigError

ADAPTERS = ["full", "lora", "loraplus", "vera", "nola", "randlora", "randlora_sparse"]


def test_lr_factor_warms_up_linearly_then_follows_the_schedule():
    assert [lr_factor(s, 4, 20, "cosine") for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 4, 20, "cosine") == pytest.approx(1.0)
    assert lr_factor(12, 4, 20, "cosine") == pytest.approx(0.5)  # half way through the decay
    assert lr_factor(20, 4, 20, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(20, 4, 20, "cosine", min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lr_factor(12, 4, 20, "linear") == pytest.approx(0.5)
    assert lr_factor(19, 0, 20, "constant") == 1.0
    with pytest.raises(ValueError, match="optim.schedule"):
        lr_factor(5, 0, 20, "step")


PEAK_SCRIPT = """
import torch
from randlora.run import results
from randlora.run.results import peak_memory_mb, reset_peak_memory
reset_peak_memory()
big = torch.ones(64 * 2**20)  # 256 MiB of float32, touched
big.add_(1)
with_big = peak_memory_mb()
del big
reset_peak_memory()
print(with_big, peak_memory_mb(), results._RSS_SAMPLER is not None)
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="per-run peak RSS is Linux-only")
def test_peak_memory_is_per_run_not_per_process():
    """A sweep worker runs many jobs in one process: each run's peak must not carry an earlier job's.
    Run in a fresh interpreter so the earlier tests' peaks and heap do not blur the 256 MiB signal."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT], capture_output=True, text=True, check=True).stdout
    with_big, after_reset, _ = out.split()
    assert float(after_reset) < float(with_big) - 200


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="per-run peak RSS is Linux-only")
def test_peak_memory_samples_rss_where_the_kernel_ignores_the_reset(tmp_path, monkeypatch):
    """Some kernels accept the write to clear_refs and do nothing (the CI machine did): the reset must notice
    and measure the run's peak by sampling RSS instead of reporting the process's lifetime peak."""
    import time

    from randlora.run import results

    ignored = tmp_path / "clear_refs"  # a plain file: writing 5 to it resets nothing, as on such a kernel
    monkeypatch.setattr(results, "CLEAR_REFS", ignored)
    monkeypatch.setattr(results, "_RSS_SAMPLER", None)
    monkeypatch.setattr(results, "_vm_kib", lambda field: 10**7 if field == "VmHWM" else 10**6)  # HWM >> RSS
    reset_peak_memory()
    assert ignored.read_text() == "5" and results._RSS_SAMPLER is not None
    before = peak_memory_mb()
    big = torch.ones(64 * 2**20)
    big.add_(1)
    deadline = time.monotonic() + 10  # the sampler sees the 256 MiB while it is alive (a loaded machine may
    while peak_memory_mb() <= before + 200 and time.monotonic() < deadline:  # schedule its thread late)
        time.sleep(0.05)
    del big
    assert peak_memory_mb() > before + 200  # the sampled peak kept it after it was freed
    reset_peak_memory()
    assert peak_memory_mb() < before + 100  # and the next run starts from the current RSS
    results._RSS_SAMPLER.stop()


def test_optimizer_trains_only_trainable_parameters_with_the_adapters_loraplus_ratio():
    """LoRA+'s ratio is the adapter's setting (what its file stores), not a second copy in the optimizer config."""
    from randlora.adapters import inject

    model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    inject(model, {"name": "loraplus", "rank": 2, "targets": ["0"], "trainable_extra": ["2"], "lr_ratio": 16})
    optimizer = build_optimizer(model, {"lr": 1e-3, "weight_decay": 0.1, "betas": [0.9, 0.99]})
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}
    lrs = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert lrs["lora_B"] == pytest.approx(16e-3) and lrs["decay"] == pytest.approx(1e-3)
    no_decay = next(g for g in optimizer.param_groups if g["name"] == "no_decay")
    assert no_decay["weight_decay"] == 0.0 and any(p is model[2].bias for p in no_decay["params"])


def test_adapter_settings_resolve_presets_and_keep_the_head_trainable():
    backbone = SimpleNamespace(target_presets={"bert": ["query", "value"], "all": ["dense"]},
                               default_targets="bert", head_prefixes=["head"])
    settings = adapter_settings({"name": "lora", "targets": None, "trainable_extra": []}, backbone)
    assert settings["targets"] == ["query", "value"] and settings["trainable_extra"] == ["head"]
    assert adapter_settings({"name": "lora", "targets": "all"}, backbone)["targets"] == ["dense"]
    assert adapter_settings({"name": "lora", "targets": "attn.*"}, backbone)["targets"] == "attn.*"
    assert adapter_settings({"name": "full", "targets": None}, backbone)["targets"] == []


def test_atomic_json_write_leaves_no_partial_file(tmp_path):
    path = write_json_atomic(tmp_path / "result.json", {"status": "ok", "value": 1})
    assert json.loads(path.read_text()) == {"status": "ok", "value": 1}

    class Unserialisable:
        def __str__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_json_atomic(path, {"status": "ok", "value": Unserialisable()})
    assert json.loads(path.read_text())["value"] == 1  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary left behind


def _result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


@pytest.fixture(scope="module")
def tweets_csv(tmp_path_factory) -> Path:
    return write_tweets_csv(tmp_path_factory.mktemp("tweets") / "tweets.csv")


def _tweets(csv: Path) -> list[str]:
    return ["backbone=tiny_bert", "task=tweets", f"task.path={csv}", "task.train_size=40", "task.val_size=16",
            "task.test_size=16"]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_train_runs_two_steps_and_writes_an_ok_result(adapter, tmp_path, tweets_csv):
    cfg = training_config(tmp_path, [f"adapter={adapter}", *_tweets(tweets_csv), "adapter.rank=4"
                                     if adapter not in ("full", "nola") else "seed=0"])
    result = train(cfg)
    saved = _result(tmp_path / "run")
    assert saved == json.loads(json.dumps(result))
    assert saved["status"] == "ok" and saved["error"] is None and saved["adapter"] == cfg.adapter.name
    assert 0.0 <= saved["metrics"]["test/acc"] <= 1.0 and 0.0 <= saved["metrics"]["val/acc_best"] <= 1.0
    assert saved["metrics"]["val/acc_best"] == saved["metrics"]["val/acc_final"]  # one validation
    assert 0 < saved["params"]["trainable"] <= saved["params"]["total"]
    assert saved["config"]["adapter"]["name"] == cfg.adapter.name and saved["wall_time_s"] > 0
    assert (saved["basis_checksum"] is not None) == (cfg.adapter.name in ("vera", "nola", "randlora"))
    assert (tmp_path / "run" / "adapter.safetensors").is_file()
    assert (tmp_path / "run" / "csv" / "metrics.csv").is_file()
    if adapter == "full":
        assert saved["params"]["trainable"] == saved["params"]["total"]


def test_same_seed_gives_identical_metrics(tmp_path, tweets_csv):
    runs = [train(training_config(tmp_path, _tweets(tweets_csv), run=f"run{i}")) for i in range(2)]
    assert runs[0]["metrics"] == runs[1]["metrics"]


def test_config_error_is_raised_before_anything_is_written(tmp_path):
    """A config the checks refuse leaves no run folder and no record (it would read as a failed run)."""
    cfg = training_config(tmp_path, ["adapter.rank=-3"])
    with pytest.raises(ConfigError, match="adapter.rank"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_failed_run_is_recorded_and_reraised(tmp_path):
    """A run that passed the checks and then failed is recorded (here: a sweep job checking its own config)."""
    from randlora.train import run_training

    cfg = training_config(tmp_path, ["adapter.rank=-3"])
    with pytest.raises(ConfigError, match="adapter.rank"):
        run_training(cfg, check=True)
    saved = _result(tmp_path / "run")
    assert saved["status"] == "failed" and "adapter.rank=-3" in saved["error"] and saved["metrics"] == {}
    assert saved["task"] == "tweets" and saved["adapter"] == "randlora"


def test_error_inside_training_is_recorded(tmp_path, tweets_csv):
    broken = tmp_path / "broken.csv"
    broken.write_text("mood,text\nhappy,a tweet\n", encoding="latin-1")  # exists, but not the tweet CSV format
    cfg = training_config(tmp_path, [*_tweets(tweets_csv), f"task.path={broken}"])
    with pytest.raises(ValueError):
        train(cfg)
    assert "broken.csv" in _result(tmp_path / "run")["error"]


def test_image_classification_with_a_generated_image_folder(tmp_path):
    root = write_image_folder(tmp_path / "data")
    cfg = training_config(tmp_path, ["backbone=tiny_vit", "task=fewshot", "task.dataset=eurosat",
                                     f"task.root={root}", "task.shots=2", "adapter=randlora", "adapter.rank=4"])
    result = train(cfg)
    assert result["status"] == "ok" and result["subtask"] == "eurosat"
    assert 0.0 <= result["metrics"]["test/acc"] <= 1.0


def test_clip_backbone_trains(tmp_path):
    root = write_image_folder(tmp_path / "data")
    cfg = training_config(tmp_path, ["backbone=tiny_clip", "task=fewshot", "task.dataset=eurosat",
                                     f"task.root={root}", "task.shots=1", "adapter=lora", "adapter.rank=2"])
    assert train(cfg)["status"] == "ok"


def test_causal_lm_instruction_tuning_with_generation_eval(tmp_path):
    train_path, test_root = write_commonsense(tmp_path / "commonsense")
    cfg = training_config(tmp_path, ["backbone=tiny_llama", "task=commonsense", f"task.train_path={train_path}",
                                     f"task.test_root={test_root}", "task.tasks=[boolq]", "task.val_size=4",
                                     "task.max_new_tokens=4", "optim=adamw_llm", "adapter=lora", "adapter.rank=2"])
    result = train(cfg)
    assert result["status"] == "ok"
    assert set(result["metrics"]) >= {"test/acc", "test/acc/boolq", "val/acc_best", "test/extracted/boolq"}
    assert result["metrics"]["test/acc"] == result["metrics"]["test/acc/boolq"]
    generations = json.loads((Path(cfg.paths.output_dir) / "generations" / "boolq.json").read_text())
    assert result["metrics"]["test/acc"] == pytest.approx(sum(g["correct"] for g in generations) / len(generations))


def test_synthetic_regression_reports_relative_error(tmp_path):
    cfg = training_config(tmp_path, ["backbone=synthetic_mlp", "task=synthetic_fullrank", "adapter=randlora",
                                     "adapter.rank=8", "task.train_size=64", "task.val_size=16",
                                     "task.test_size=16"])
    metrics = train(cfg)["metrics"]
    assert set(metrics) >= {"test/rel_error", "val/rel_error_best", "val/rel_error_final"}
    assert 0.0 < metrics["test/rel_error"] < 2.0


def test_budget_matches_the_rank_and_records_it(tmp_path, tweets_csv):
    cfg = training_config(tmp_path, [*_tweets(tweets_csv), "adapter=lora", "budget=5000"])
    result = train(cfg)
    assert result["budget"] == 5000 and result["rank"] != 32
    assert abs(result["params"]["trainable"] - 5000) < result["params"]["trainable"]


def test_unknown_training_split_errors_clearly(tmp_path):
    _, test_root = write_commonsense(tmp_path / "commonsense")
    cfg = training_config(tmp_path, ["backbone=tiny_llama", "task=commonsense", "task.train_path=null",
                                     f"task.test_root={test_root}", "task.tasks=[boolq]"])
    with pytest.raises(ConfigError, match="no training split"):
        train(cfg)


def test_paper_epochs_are_used_when_max_epochs_is_null(tmp_path):
    from randlora.train import trainer_overrides

    cfg = training_config(tmp_path, ["trainer.max_epochs=null"])
    assert trainer_overrides(cfg, SimpleNamespace(extras={"paper_epochs": 13})) == {"max_epochs": 13}
    with pytest.raises(ConfigError, match="trainer.max_epochs"):
        trainer_overrides(cfg, SimpleNamespace(extras={}))
    with open_dict(cfg):
        cfg.trainer.max_epochs = 2
    assert trainer_overrides(cfg, SimpleNamespace(extras={"paper_epochs": 13})) == {}


def test_nan_loss_stops_the_run(tmp_path, tweets_csv):
    cfg = training_config(tmp_path, [*_tweets(tweets_csv), "adapter=lora", "optim.lr=1e30", "optim.grad_clip=null",
                                     "trainer.limit_train_batches=6"])
    with pytest.raises(FloatingPointError, match="training loss is"):
        train(cfg)
    assert _result(tmp_path / "run")["status"] == "failed"
    assert math.isfinite(_result(tmp_path / "run")["wall_time_s"])
