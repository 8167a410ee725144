"""Resuming interrupted runs (``resume=true`` / ``resume=<path>``, randlora/run/resume.py and resume_plan.py): a
run killed with SIGKILL after its first checkpoint, or stopped by an error, ends with the same metrics as an
uninterrupted run, in its own folder; missing, truncated and foreign checkpoints are refused with one clear message."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from helpers_resume import (COMPARED_METRICS, NO_LIMITS, SYNTHETIC, InterruptedTraining, StopAtEpoch, cli_env,
                            one_thread, read_results, run_folders, start_training, train_command)  # noqa: F401
from helpers_training import training_config
from randlora.train import train
from randlora.run.resume import (CHECKPOINT_DIR, CONFIG_FILE, LAST_CHECKPOINT, METADATA_KEY, check_checkpoint,
                                 read_checkpoint)
from randlora.run.resume_plan import config_fingerprint

CLI_TIMEOUT_S = 300


class CodePayload:
    """An object whose unpickling needs this module: a checkpoint holding it must be refused."""


def _assert_same_metrics(resumed: dict, uninterrupted: dict) -> None:
    for key in COMPARED_METRICS:
        assert resumed["metrics"][key] == pytest.approx(uninterrupted["metrics"][key], rel=1e-6), key
    assert resumed["params"] == uninterrupted["params"]
    assert resumed["basis_checksum"] == uninterrupted["basis_checksum"]


def _config(tmp_path: Path, *overrides: str, run: str = "run"):
    return training_config(tmp_path, [*SYNTHETIC, *NO_LIMITS, *overrides], run=run)


@pytest.fixture
def stop_at_epoch(monkeypatch):
    """``stop_at_epoch(k)``: the next in-process ``train`` raises when epoch k starts (its config unchanged)."""
    import randlora.utils.instantiate as instantiate

    original = instantiate.instantiate_callbacks

    def arm(epoch: int) -> None:
        monkeypatch.setattr(instantiate, "instantiate_callbacks",
                            lambda group: [*original(group), StopAtEpoch(epoch)])

    yield arm
    monkeypatch.setattr(instantiate, "instantiate_callbacks", original)


# ----------------------------------------------------------------------------------------- kill and resume


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_uninterrupted_result(tmp_path):
    """Three ``python train.py`` processes: killed after its first checkpoint, resumed, and uninterrupted."""
    epochs = ("trainer.max_epochs=12",)
    killed_root, plain_root = tmp_path / "killed", tmp_path / "plain"
    killed = start_training(killed_root, [*SYNTHETIC, *epochs])
    plain = start_training(plain_root, [*SYNTHETIC, *epochs])
    deadline = time.monotonic() + CLI_TIMEOUT_S
    while killed.poll() is None and time.monotonic() < deadline:
        if list((killed_root / "results" / "runs").glob(f"*/*/*/*/{CHECKPOINT_DIR}/{LAST_CHECKPOINT}")):
            os.kill(killed.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    assert killed.wait(timeout=60) == -signal.SIGKILL, (killed_root / "stdout.txt").read_text()[-3000:]
    (run_dir,) = run_folders(killed_root)
    assert not (run_dir / "result.json").exists()  # the kill landed before training ended
    interrupted_at = read_checkpoint(run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT)["epoch"]
    assert interrupted_at < 11

    resumed = subprocess.run(train_command(killed_root, [*SYNTHETIC, *epochs, "resume=true"]), capture_output=True,
                             text=True, timeout=CLI_TIMEOUT_S, cwd=killed_root, env=cli_env())
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert plain.wait(timeout=CLI_TIMEOUT_S) == 0, (plain_root / "stdout.txt").read_text()[-3000:]

    assert run_folders(killed_root) == [run_dir]  # continued in the interrupted run's folder, no second folder
    (result,), (reference,) = read_results(killed_root), read_results(plain_root)
    assert result["status"] == "ok" and result["run_id"] == run_dir.name
    assert result["resumed_from"] == str(run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT)
    _assert_same_metrics(result, reference)
    assert not (run_dir / CHECKPOINT_DIR).exists()  # deleted once the ok result was written (keep_last: false)
    assert "continuing the interrupted run" in (run_dir / "train.log").read_text()
    _assert_each_step_and_epoch_logged_once(run_dir, epochs=12, steps=12 * 4 // 10)  # log_every_n_steps 10


def test_interrupted_run_resumes_in_its_folder_to_the_uninterrupted_result(tmp_path, stop_at_epoch):
    """In-process: stopped by an error when epoch 2 starts (a failed result), then ``resume=true``."""
    reference = train(_config(tmp_path / "plain", "trainer.max_epochs=4"))

    stop_at_epoch(2)
    with pytest.raises(InterruptedTraining):
        train(_config(tmp_path, "trainer.max_epochs=4"))
    run_dir = tmp_path / "run"
    assert read_results_in(run_dir)["status"] == "failed"
    checkpoint = read_checkpoint(run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT)
    assert checkpoint["epoch"] == 1 and checkpoint[METADATA_KEY]["adapter_config"]["name"] == "randlora"
    frozen = [k for k in checkpoint["state_dict"] if "base_layer" in k]
    assert frozen == [] and checkpoint["state_dict"]  # trainable tensors only; the frozen base is rebuilt
    history = next(v for k, v in checkpoint["callbacks"].items() if k.startswith("MetricHistory"))
    assert len(history["values"]) == 2

    stop_at_epoch(-1)
    result = train(_config(tmp_path, "trainer.max_epochs=4", "resume=true", run="resumed"))
    assert not (tmp_path / "resumed").exists()
    written = read_results_in(run_dir)  # the failed result of the interruption is replaced
    assert written["status"] == "ok" and written["metrics"] == result["metrics"]
    assert result["status"] == "ok" and result["resumed_from"] == str(run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT)
    _assert_same_metrics(result, reference)
    _assert_each_step_and_epoch_logged_once(run_dir, epochs=4, steps=4 * 4)


def _assert_each_step_and_epoch_logged_once(run_dir: Path, epochs: int, steps: int) -> None:
    """metrics.csv of a resumed run: every training step and every epoch's validation exactly once."""
    import csv

    with open(run_dir / "csv" / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    validation = [int(float(r["epoch"])) for r in rows if r.get("val/loss")]
    training = [int(float(r["step"])) for r in rows if r.get("train/loss")]
    rates = [int(float(r["step"])) for r in rows if r.get("lr-AdamW/decay")]
    assert validation == list(range(epochs)), validation
    assert sorted(training) == sorted(set(training)) and len(training) == steps, training
    assert sorted(rates) == sorted(set(rates)) and len(rates) == steps, rates


def read_results_in(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


# --------------------------------------------------------------------------------------- refused checkpoints


def test_resume_from_a_missing_file_exits_2_with_one_line(tmp_path, caplog):
    """In-process: the entry point's error handling around ``train`` (the CLI variant below is slow)."""
    import logging

    from randlora.utils.cli_errors import exit_on_user_error

    missing = tmp_path / "nowhere" / "last.ckpt"
    with pytest.raises(SystemExit) as exited, exit_on_user_error(logging.getLogger("test")):
        train(_config(tmp_path, f"resume={missing}"))
    assert exited.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"Missing file: resume={missing}: no such checkpoint file; give the path of a run's "
                      "checkpoints/last.ckpt, or resume=true for the newest interrupted run"]
    assert read_results_in(tmp_path / "run")["status"] == "failed"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["result.json"]  # nothing built or written


@pytest.mark.slow
def test_resume_from_a_missing_file_is_one_clear_error(tmp_path):
    missing = tmp_path / "nowhere" / "last.ckpt"
    done = subprocess.run(train_command(tmp_path, [*SYNTHETIC, f"resume={missing}"]), capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S, cwd=tmp_path, env=cli_env())
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and f"resume={missing}: no such checkpoint file" in errors[0], errors
    assert [r["status"] for r in read_results(tmp_path)] == ["failed"]


def test_resume_true_without_an_interrupted_run_names_what_it_looked_for(tmp_path):
    finished = train(_config(tmp_path, "callbacks.resume_checkpoint.keep_last=true"))
    assert finished["status"] == "ok" and (tmp_path / "run" / CHECKPOINT_DIR / LAST_CHECKPOINT).is_file()
    with pytest.raises(FileNotFoundError, match=r"resume=true: no interrupted run of this config in .*"
                                                r"checkpoints/last.ckpt.*0 checkpoint\(s\) of other configs and 1 of "
                                                r"finished runs"):
        train(_config(tmp_path, "callbacks.resume_checkpoint.keep_last=true", "resume=true", run="again"))
    with pytest.raises(FileNotFoundError, match="other configs and 0 of finished runs; the newest other "
                                                "checkpoint's config differs in optim.lr"):
        train(_config(tmp_path, "callbacks.resume_checkpoint.keep_last=true", "optim.lr=0.5", "resume=true",
                      run="other"))
    assert read_results_in(tmp_path / "again")["status"] == "failed"
    assert read_results_in(tmp_path / "run")["status"] == "ok"  # the finished run is left alone


@pytest.fixture
def kept_checkpoint(tmp_path_factory, stop_at_epoch) -> Path:
    """The last.ckpt of a RandLoRA synthetic run stopped at the start of epoch 1."""
    root = tmp_path_factory.mktemp("kept")
    stop_at_epoch(1)
    with pytest.raises(InterruptedTraining):
        train(_config(root, "trainer.max_epochs=2"))
    stop_at_epoch(-1)
    return root / "run" / CHECKPOINT_DIR / LAST_CHECKPOINT


def test_checkpoint_of_another_adapter_is_refused(tmp_path, kept_checkpoint):
    before = kept_checkpoint.read_bytes()
    with pytest.raises(ValueError, match=r"holds a different adapter than the config's: \(checkpoint, config\) = "
                                         r"\{.*'name': \('randlora', 'lora'\)"):
        train(_config(tmp_path, "adapter=lora", f"resume={kept_checkpoint}"))
    assert read_results_in(tmp_path / "run")["status"] == "failed"  # recorded in the new run, not the old one
    assert kept_checkpoint.read_bytes() == before
    assert read_results_in(kept_checkpoint.parent.parent)["status"] == "failed"  # the old run is untouched


def test_checkpoint_of_other_bases_or_another_base_model_is_refused(tmp_path, kept_checkpoint):
    from randlora.train import build_run

    module = build_run(_config(tmp_path)).module
    assert check_checkpoint(kept_checkpoint, module)[METADATA_KEY]["adapter_config"]["name"] == "randlora"
    for key, value, message in (("basis_checksum", "sha256:" + "1" * 64, "the random bases regenerated from "
                                 "adapter.basis_seed have checksum .* refusing to resume with other bases"),
                                ("base_signature", "sha256:" + "0" * 64, "was trained on another base model")):
        checkpoint = torch.load(kept_checkpoint, weights_only=True)
        checkpoint[METADATA_KEY][key] = value
        torch.save(checkpoint, tmp_path / f"{key}.ckpt")
        with pytest.raises(ValueError, match=message):
            check_checkpoint(tmp_path / f"{key}.ckpt", module)
    other_seed = build_run(_config(tmp_path, "adapter.basis_seed=7")).module
    with pytest.raises(ValueError, match=r"\{'basis_seed': \(0, 7\)\}"):
        check_checkpoint(kept_checkpoint, other_seed)


def test_truncated_or_foreign_checkpoint_is_refused(tmp_path, kept_checkpoint):
    data = kept_checkpoint.read_bytes()
    for cut in (0, 100, len(data) // 2, len(data) - 10):
        path = tmp_path / f"cut{cut}.ckpt"
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="cannot be loaded as plain tensors and values"):
            read_checkpoint(path)
    torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
    with pytest.raises(ValueError, match="was not written by randlora's train.py"):
        read_checkpoint(tmp_path / "plain.ckpt")
    torch.save({"payload": CodePayload()}, tmp_path / "code.ckpt")  # unpickling it would import code: refused
    with pytest.raises(ValueError, match="cannot be loaded as plain tensors and values"):
        read_checkpoint(tmp_path / "code.ckpt")


def test_checkpoint_write_is_atomic_and_records_the_config(tmp_path, kept_checkpoint):
    folder = kept_checkpoint.parent
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_FILE, LAST_CHECKPOINT]  # no temporary left behind
    stored = json.loads((folder / CONFIG_FILE).read_text())
    assert stored["config_hash"] == config_fingerprint(_config(tmp_path, "trainer.max_epochs=2"))[0]
    assert "paths" not in stored["config"] and "resume" not in stored["config"]


def test_adapter_checkpoint_state_brings_back_the_best_adapter_file(tmp_path):
    """A later epoch may overwrite the adapter file before the kill; the resumed run restores the known best."""
    from types import SimpleNamespace

    from randlora.run.callbacks import AdapterCheckpoint

    saver = AdapterCheckpoint(str(tmp_path))
    saver.path.write_bytes(b"the best adapter when the checkpoint was written")
    saver.best_score, saver.best_path = 0.5, saver.path
    torch.save(saver.state_dict(), tmp_path / "state.pt")
    saver.path.write_bytes(b"an improvement of the next epoch, written just before the kill")

    restored = AdapterCheckpoint(str(tmp_path))
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    restored.on_fit_start(SimpleNamespace(is_global_zero=True), None)
    assert saver.path.read_bytes() == b"the best adapter when the checkpoint was written"
    assert (restored.best_score, restored.best_path) == (0.5, saver.path)

    elsewhere = AdapterCheckpoint(str(tmp_path / "new_run"))  # resumed in a new folder: the file is copied there
    elsewhere.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    elsewhere.on_fit_start(SimpleNamespace(is_global_zero=True), None)
    assert elsewhere.best_path == tmp_path / "new_run" / "adapter.safetensors"
    assert elsewhere.best_path.read_bytes() == saver.path.read_bytes()


def test_resume_from_a_path_with_another_config_continues_in_the_new_folder(tmp_path, kept_checkpoint):
    old_run = kept_checkpoint.parent.parent
    old_adapter = (old_run / "adapter.safetensors").read_bytes()
    result = train(_config(tmp_path, "trainer.max_epochs=3", f"resume={kept_checkpoint}"))  # one more epoch
    assert result["status"] == "ok" and result["resumed_from"] == str(kept_checkpoint)
    assert read_results_in(tmp_path / "run")["status"] == "ok" and (tmp_path / "run" / "adapter.safetensors").is_file()
    assert read_results_in(old_run)["status"] == "failed"  # the old run is left as it was
    assert (old_run / "adapter.safetensors").read_bytes() == old_adapter and kept_checkpoint.is_file()
