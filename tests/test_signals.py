"""Signals: a run stopped by SIGTERM or Ctrl-C is recorded as ``interrupted``, exits 143 / 130 with one line saying
how to continue, and ``resume=true`` then ends with the uninterrupted run's metrics; a SLURM job is requeued on
its warning signal by Lightning's SLURM environment and the requeued job (same command, ``resume=auto``)
continues the interrupted run."""
from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers_resume import (COMPARED_METRICS, NO_LIMITS, SYNTHETIC, cli_env, one_thread, read_results,  # noqa: F401
                            run_folders, start_training)
from helpers_training import training_config
from randlora.run.interrupt import EXIT_CTRL_C, EXIT_SIGTERM, exit_on_interrupt, resume_command
from randlora.run.resume import CHECKPOINT_DIR, LAST_CHECKPOINT

CLI_TIMEOUT_S = 300


def _wait_for_checkpoint(process: subprocess.Popen, root: Path) -> Path:
    deadline = time.monotonic() + CLI_TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline:
        found = list((root / "results" / "runs").glob(f"*/*/*/*/{CHECKPOINT_DIR}/{LAST_CHECKPOINT}"))
        if found:
            return found[0].parent.parent
        time.sleep(0.01)
    raise AssertionError(f"no checkpoint appeared:\n{(root / 'stdout.txt').read_text()[-3000:]}")


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "[ERROR]" in line]


# ------------------------------------------------------------------------------------------------ in-process


def test_interruptions_exit_143_or_130_with_one_line(caplog):
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    log = logging.getLogger("test_signals")
    for raised, code in ((SIGTERMException(), EXIT_SIGTERM), (KeyboardInterrupt(), EXIT_CTRL_C),
                         (SystemExit(1), EXIT_CTRL_C)):
        caplog.clear()
        with pytest.raises(SystemExit) as caught, exit_on_interrupt(log, lambda: "continue with resume=true"):
            raise raised
        assert caught.value.code == code
        assert [r.getMessage() for r in caplog.records] == [
            f"Interrupted by {'SIGTERM' if code == 143 else 'Ctrl-C'} (exit status {code}): continue with resume=true"]
    with pytest.raises(SystemExit) as caught, exit_on_interrupt(log, lambda: "unused"):
        raise SystemExit(2)  # a user error's exit: not an interruption
    assert caught.value.code == 2


def test_resume_command_repeats_the_command_with_resume_true():
    assert resume_command(["/x/train.py", "seed=1", "resume=null", "task.path=a b"]) == \
        "python train.py seed=1 'task.path=a b' resume=true"


def test_sigterm_during_training_records_an_interrupted_run(tmp_path, monkeypatch):
    import lightning.pytorch as pl
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    import randlora.utils.instantiate as instantiate
    from randlora.train import train

    class Sigterm(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                raise SIGTERMException  # what Lightning raises once its SIGTERM handler ran

    original = instantiate.instantiate_callbacks
    monkeypatch.setattr(instantiate, "instantiate_callbacks", lambda group: [*original(group), Sigterm()])
    with pytest.raises(SIGTERMException):
        train(training_config(tmp_path, [*SYNTHETIC, *NO_LIMITS, "trainer.max_epochs=3"]))
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "interrupted" and result["metrics"] == {}
    assert result["error"] == "SIGTERMException: stopped by SIGTERM; continue it with resume=true"
    assert (tmp_path / "run" / CHECKPOINT_DIR / LAST_CHECKPOINT).is_file()


# ------------------------------------------------------------------------------------------------ processes


@pytest.mark.slow
def test_sigterm_exits_143_and_resume_true_gives_the_uninterrupted_metrics(tmp_path):
    epochs = ("trainer.max_epochs=12",)
    stopped_root, plain_root = tmp_path / "stopped", tmp_path / "plain"
    stopped = start_training(stopped_root, [*SYNTHETIC, *epochs])
    plain = start_training(plain_root, [*SYNTHETIC, *epochs])
    run_dir = _wait_for_checkpoint(stopped, stopped_root)
    stopped.send_signal(signal.SIGTERM)
    assert stopped.wait(timeout=120) == EXIT_SIGTERM, (stopped_root / "stdout.txt").read_text()[-3000:]
    output = (stopped_root / "stdout.txt").read_text()
    (line,) = _error_lines(output)
    assert "Interrupted by SIGTERM (exit status 143)" in line and "resume=true" in line and "Traceback" not in output
    (interrupted,) = read_results(stopped_root)
    assert interrupted["status"] == "interrupted" and "SIGTERM" in interrupted["error"]

    command = shlex.split(line.split("with: ", 1)[1])  # the printed command, as a user would paste it
    assert command[0] == "python" and command[-1] == "resume=true"
    resumed = subprocess.run([os.sys.executable, str(Path(__file__).parents[1] / "train.py"), *command[2:]],
                             capture_output=True, text=True, timeout=CLI_TIMEOUT_S, cwd=stopped_root, env=cli_env())
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert plain.wait(timeout=CLI_TIMEOUT_S) == 0, (plain_root / "stdout.txt").read_text()[-3000:]
    assert run_folders(stopped_root) == [run_dir]
    (result,), (reference,) = read_results(stopped_root), read_results(plain_root)
    assert result["status"] == "ok" and result["resumed_from"] == str(run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT)
    for key in COMPARED_METRICS:
        assert result["metrics"][key] == pytest.approx(reference["metrics"][key], rel=1e-6), key


@pytest.mark.slow
def test_slurm_requeue_on_signal_then_the_same_command_continues_the_run(tmp_path):
    """Lightning's SLURM environment (auto-requeue) with a stand-in ``scontrol``: SIGUSR1 requeues the job, SLURM's
    SIGTERM stops it (143, interrupted), and the requeued job's identical command (``resume=auto``) resumes it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol_calls.txt"
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "randlora",
             "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost",
             "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    root = tmp_path / "job"
    overrides = [*SYNTHETIC, "trainer.max_epochs=12", "resume=auto"]
    first = start_training(root, overrides, env={**cli_env(), **slurm})
    run_dir = _wait_for_checkpoint(first, root)
    first.send_signal(signal.SIGUSR1)  # sbatch --signal=USR1@90: Lightning requeues the job
    deadline = time.monotonic() + 60
    while not calls.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.01)
    first.send_signal(signal.SIGTERM)  # SLURM stops the requeued job's running instance
    assert first.wait(timeout=120) == EXIT_SIGTERM, (root / "stdout.txt").read_text()[-3000:]
    assert calls.read_text().split() == ["requeue", "4242"]
    assert read_results(root)[0]["status"] == "interrupted"

    second = start_training(root, overrides, env={**cli_env(), **slurm, "SLURM_RESTART_COUNT": "1"}, log="again.txt")
    assert second.wait(timeout=CLI_TIMEOUT_S) == 0, (root / "again.txt").read_text()[-3000:]
    assert run_folders(root) == [run_dir]
    (result,) = read_results(root)
    assert result["status"] == "ok" and result["resumed_from"] == str(run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT)
    assert not list(run_dir.glob("hpc_ckpt_*.ckpt"))  # Lightning's full-model requeue checkpoint is not kept
