"""Real ``python train.py -m`` sweeps in a subprocess: one result.json per job, distinct run folders,
failed jobs recorded as failed; launchers and the Optuna sweeper (slow)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers_training import write_tweets_csv
from randlora.utils.config import REPO_ROOT


def _train_cli(tmp_path: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    csv = write_tweets_csv(tmp_path / "tweets.csv")
    flags = [a for a in args if a.startswith("-")]  # Hydra wants -m before the overrides
    command = [sys.executable, str(REPO_ROOT / "train.py"), *flags, "backbone=tiny_bert", f"task.path={csv}",
               "task.train_size=40", "task.val_size=16", "task.test_size=16", "debug=fast",
               f"paths.root_dir={tmp_path}", *(a for a in args if not a.startswith("-"))]
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env)


def _results(tmp_path: Path) -> dict[Path, dict]:
    runs = tmp_path / "results" / "runs"
    return {p.parent.relative_to(runs): json.loads(p.read_text()) for p in runs.rglob("result.json")}


def test_multirun_writes_one_result_per_job_and_records_failed_jobs(tmp_path):
    done = _train_cli(tmp_path, "-m", "adapter=lora,randlora", "adapter.rank=-1,4")
    assert done.returncode != 0  # some jobs failed; the sweep ran them all and says so
    results = _results(tmp_path)
    assert sorted(str(p.parent) for p in results) == ["tweets/tiny_bert/lora"] * 2 + ["tweets/tiny_bert/randlora"] * 2
    assert len({p.name for p in results}) == 4  # run ids unique although started in the same second
    assert sorted((r["adapter"], r["rank"], r["status"]) for r in results.values()) == [
        ("lora", -1, "failed"), ("lora", 4, "ok"), ("randlora", -1, "failed"), ("randlora", 4, "ok")]
    assert all(r["run_id"] == p.name for p, r in results.items())
    failed = [r for r in results.values() if r["status"] == "failed"]
    assert all("adapter.rank=-1 is invalid" in r["error"] and r["metrics"] == {} for r in failed)


def test_invalid_config_in_a_single_run_exits_with_one_clear_line(tmp_path):
    csv = write_tweets_csv(tmp_path / "tweets.csv")
    done = subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), "adapter.dropout=1.5", f"task.path={csv}",
                           f"paths.root_dir={tmp_path}"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"})
    assert done.returncode == 2
    assert "adapter.dropout=1.5 is invalid: allowed is a number in [0, 1)" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not list(tmp_path.glob("results/runs/*/*/*/*"))  # checked before the run folder: no failed run, no row


@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path):
    done = _train_cli(tmp_path, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "adapter=lora,vera")
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(r["adapter"] for r in _results(tmp_path).values()) == ["lora", "vera"]


@pytest.mark.slow
def test_optuna_sweep_optimises_val_acc(tmp_path):
    # The default space (rank, lr) works for an adapter without lr_ratio; a sweep override adds LoRA+'s ratio.
    for adapter, extra in (("randlora", ()), ("loraplus", ("adapter.lr_ratio=choice(1,4,16)",))):
        out = tmp_path / adapter
        out.mkdir()
        done = _train_cli(out, "sweep=optuna", f"adapter={adapter}", *extra, "hydra.sweeper.n_trials=3",
                          "hydra.sweeper.sampler.n_startup_trials=2")
        assert done.returncode == 0, done.stderr[-3000:]
        results = _results(out)
        assert len(results) == 3 and all(r["status"] == "ok" for r in results.values())
        assert {r["rank"] for r in results.values()} <= {2, 4, 8, 16, 32}
        assert "Best parameters" in done.stdout + done.stderr
        if adapter == "loraplus":
            assert {r["lr_ratio"] for r in results.values()} <= {1, 4, 16}
            assert "adapter.lr_ratio" in (done.stdout + done.stderr).split("Best parameters")[-1]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path):
    done = _train_cli(tmp_path, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2")
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = _results(tmp_path).values()
    assert result["status"] == "ok" and result["config"]["trainer"]["devices"] == 2
