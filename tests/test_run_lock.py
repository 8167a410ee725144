"""One process per run folder (a lock with the holder's PID), and a resumed run's wall time and samples/s cover
all of its processes, not only the last one."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers_resume import NO_LIMITS, SYNTHETIC, InterruptedTraining, StopAtEpoch, one_thread  # noqa: F401
from helpers_training import training_config
from randlora.run.lock import LOCK_FILE, RunLockedError, hold_run_lock, release_run_lock
from randlora.run.resume import CHECKPOINT_DIR, LAST_CHECKPOINT, METADATA_KEY, read_checkpoint

HOLD = ("import sys, time; from randlora.run.lock import hold_run_lock; hold_run_lock(sys.argv[1]); "
        "print('locked', flush=True); time.sleep(120)")


def _holder(folder: Path) -> subprocess.Popen:
    """Another process that holds the lock of ``folder`` until killed."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def _interrupted_run(tmp_path: Path, monkeypatch) -> Path:
    """A synthetic run stopped by an error when its epoch 2 starts: a failed result and a last.ckpt."""
    import randlora.utils.instantiate as instantiate
    from randlora.train import train

    original = instantiate.instantiate_callbacks
    monkeypatch.setattr(instantiate, "instantiate_callbacks", lambda group: [*original(group), StopAtEpoch(2)])
    with pytest.raises(InterruptedTraining):
        train(training_config(tmp_path, [*SYNTHETIC, *NO_LIMITS, "trainer.max_epochs=4"]))
    monkeypatch.setattr(instantiate, "instantiate_callbacks", original)
    return tmp_path / "run"


def test_a_locked_folder_names_its_holder_and_is_free_once_it_exits(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(RunLockedError, match=rf"^run folder {tmp_path} is being trained by process {holder.pid} "):
            hold_run_lock(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert hold_run_lock(tmp_path) == tmp_path / LOCK_FILE  # the kernel dropped the dead holder's lock
    assert (tmp_path / LOCK_FILE).read_text().strip() == str(__import__("os").getpid())
    release_run_lock()


def test_a_second_resume_of_a_folder_in_training_is_refused(tmp_path, monkeypatch):
    from randlora.train import train

    run_dir = _interrupted_run(tmp_path, monkeypatch)
    before = sorted(p.name for p in run_dir.rglob("*"))
    holder = _holder(run_dir)  # stands for the first `resume=true`, still training
    try:
        with pytest.raises(RunLockedError, match=f"is being trained by process {holder.pid}"):
            train(training_config(tmp_path, [*SYNTHETIC, *NO_LIMITS, "trainer.max_epochs=4", "resume=true"],
                                  run="second"))
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in run_dir.rglob("*")) == before  # logs, metrics and result left as they were
    assert json.loads((run_dir / "result.json").read_text())["status"] == "failed"


def test_a_resumed_run_reports_wall_time_and_samples_of_all_its_processes(tmp_path, monkeypatch):
    from randlora.train import train

    run_dir = _interrupted_run(tmp_path, monkeypatch)
    progress = read_checkpoint(run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT)[METADATA_KEY]["progress"]
    assert progress["samples"] == 2 * 512 and progress["wall_time_s"] > progress["fit_time_s"] > 0
    started = time.perf_counter()
    result = train(training_config(tmp_path, [*SYNTHETIC, *NO_LIMITS, "trainer.max_epochs=4", "resume=true"],
                                   run="resumed"))
    this_process = time.perf_counter() - started
    assert result["status"] == "ok"
    assert 0 < result["wall_time_s"] - progress["wall_time_s"] <= this_process  # the earlier process's share added
    # 4 epochs of 512 samples over the fit time of both processes: below what the second process alone reached
    assert result["samples_per_s"] * (progress["fit_time_s"] + this_process) >= 4 * 512 * 0.99
