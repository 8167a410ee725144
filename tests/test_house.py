"""One owner per fact, runs that never lose data, what a person sees (issue 11): cheap checks, no training."""
from __future__ import annotations

import os
import stat

import pytest
from torch import nn


def _load_script(path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_atomic_writes_keep_the_umask_mode(tmp_path, mask):
    """result.json and adapter.safetensors get 0666 minus the umask, like every other file (was mkstemp's 0600)."""
    from randlora.adapters import inject, save_adapter
    from randlora.run.results import write_json_atomic

    previous = os.umask(mask)
    try:
        model = nn.Sequential(nn.Linear(4, 4))
        inject(model, {"name": "lora", "rank": 2, "targets": ["0"]})
        adapter = save_adapter(model, tmp_path / "adapter.safetensors")
        result = write_json_atomic(tmp_path / "result.json", {"ok": True})
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(previous)
    assert _mode(plain) == 0o666 & ~mask
    assert _mode(result) == _mode(plain) and _mode(adapter) == _mode(plain)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


@pytest.fixture(scope="module")
def loraplus_run(tmp_path_factory):
    """A two-step LoRA+ run at ratio 4 (tiny BERT, generated tweets): its folder."""
    from helpers_training import training_config, write_tweets_csv
    from randlora.train import train

    root = tmp_path_factory.mktemp("loraplus")
    csv = write_tweets_csv(root / "tweets.csv")
    cfg = training_config(root, ["backbone=tiny_bert", f"task.path={csv}", "task.train_size=40", "task.val_size=16",
                                 "task.test_size=16", "adapter=loraplus", "adapter.rank=2", "adapter.lr_ratio=4",
                                 "optim.lr=3e-3"])
    assert train(cfg)["status"] == "ok"
    return root / "run"


def test_result_config_and_adapter_file_agree_on_lr_and_lr_ratio(loraplus_run):
    """The value a run trained with is the only value its result.json and its adapter file show."""
    import json

    from randlora.adapters import read_adapter_metadata

    result = json.loads((loraplus_run / "result.json").read_text())
    stored = json.loads(read_adapter_metadata(loraplus_run / "adapter.safetensors")["adapter_config"])
    assert result["lr_ratio"] == result["config"]["adapter"]["lr_ratio"] == stored["lr_ratio"] == 4
    assert result["lr"] == result["config"]["optim"]["lr"] == pytest.approx(3e-3)
    assert "lr_ratio" not in result["config"]["optim"] and "lr" not in result["config"]["adapter"]


def _write_run(root, run_id: str, debug: str | None, acc: float):
    from datetime import datetime

    from omegaconf import OmegaConf

    from randlora.run.results import build_result, write_result

    cfg = OmegaConf.create({"seed": 0, "budget": None, "debug_preset": debug, "task": {"name": "tweets"},
                            "backbone": {"name": "tiny"}, "adapter": {"name": "lora", "rank": 2},
                            "optim": {"lr": 1e-3}})
    result = build_result(cfg, run_id=run_id, started=datetime(2025, 1, 1), metrics={"test/acc": acc},
                          params={"trainable": 1, "total": 2}, wall_time_s=1.0)
    write_result(root / "tweets" / "tiny" / "lora" / run_id, result)
    return result


def test_debug_runs_are_marked_and_left_out_of_aggregation_unless_asked(tmp_path):
    from randlora import reporting
    from randlora.utils.config import REPO_ROOT, compose_config

    aggregate = _load_script(REPO_ROOT / "scripts" / "aggregate.py")

    assert compose_config(["debug=fast"]).debug_preset == "fast" and compose_config([]).debug_preset is None
    assert _write_run(tmp_path, "real", None, 0.8)["debug"] is None
    assert _write_run(tmp_path, "smoke", "fast", 0.1)["debug"] == "fast"
    runs = reporting.collect(tmp_path)
    assert list(runs["run_id"]) == ["real"] and runs.attrs["debug_left_out"] == 1
    assert sorted(reporting.collect(tmp_path, include_debug=True)["run_id"]) == ["real", "smoke"]
    assert aggregate.main([str(tmp_path), "--out-dir", str(tmp_path / "out")]) == 0
    mean = reporting.read_csv(tmp_path / "out" / "summary_mean.csv")
    assert mean["test/acc:mean"].tolist() == [pytest.approx(0.8)]
    assert aggregate.main([str(tmp_path), "--out-dir", str(tmp_path / "all"), "--include-debug"]) == 0
    assert reporting.read_csv(tmp_path / "all" / "summary_mean.csv")["test/acc:mean"].tolist() == \
        [pytest.approx(0.45)]


def test_eval_accepts_a_run_folder_and_refuses_a_wrong_path_before_any_folder(loraplus_run, tmp_path):
    """``adapter_path=<run folder>`` works; a wrong path is one line, exit 2, and no results/evals/<id>/ folder."""
    import subprocess
    import sys

    from randlora.eval import adapter_file, check_eval
    from randlora.utils.config import REPO_ROOT, compose_config
    from randlora.utils.validate import ConfigError

    assert adapter_file(loraplus_run) == loraplus_run / "adapter.safetensors"
    check_eval(compose_config([f"adapter_path={loraplus_run}"], config_name="eval"))
    with pytest.raises(ConfigError, match="no adapter.safetensors there"):
        adapter_file(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "eval.py"), f"adapter_path={tmp_path / 'nothing'}",
                           f"paths.root_dir={tmp_path}"], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert [line for line in done.stderr.splitlines() if line.strip()] == \
        [f"Invalid config: adapter_path='{tmp_path / 'nothing'}': no adapter.safetensors there (give a run folder "
         "or the adapter.safetensors written by train.py)"]
    assert not list(tmp_path.glob("results/evals/*"))  # no evaluation folder (its parent may be made writable)


def test_eval_help_is_quick_and_lists_no_training_groups():
    import subprocess
    import sys
    import time

    from randlora.utils.config import REPO_ROOT

    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(REPO_ROOT / "eval.py"), "--help"], capture_output=True, text=True,
                          timeout=120)
    seconds = time.perf_counter() - start
    assert done.returncode == 0 and "adapter_path" in done.stdout
    assert "Configuration groups" not in done.stdout and "backbone:" not in done.stdout
    assert "lightning" not in subprocess.run(
        [sys.executable, "-c", "import sys, randlora.eval; print(' '.join(sys.modules))"], capture_output=True,
        text=True, timeout=120).stdout.split()
    assert seconds < 60  # was ~22 s of importing Lightning on an idle machine; now Hydra alone


def test_summary_shows_the_tasks_metric_the_adapter_and_the_dataset(tmp_path, capsys):
    import logging

    from randlora.run.summary import print_summary

    synthetic = {"adapter": "randlora", "backbone": "synthetic_mlp", "task": "synthetic_fullrank", "rank": 4,
                 "lr": 0.003, "params": {"trainable": 10, "total": 100}, "wall_time_s": 1.0,
                 "metrics": {"test/rel_error": 0.1234, "val/rel_error_best": 0.2, "val/rel_error_final": 0.25}}
    log_file = tmp_path / "train.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)
    try:
        print_summary(synthetic, tmp_path / "result.json")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    out = capsys.readouterr().out
    assert "test rel_error" in out and "0.1234" in out and "n/a" not in out and "accuracy" not in out
    assert "randlora, rank 4, lr 0.003" in out
    assert log_file.read_text().rstrip().endswith(f"Adapter and logs: {tmp_path}")  # train.log ends with it
    assert "test rel_error" in log_file.read_text()

    fewshot = {"adapter": "lora", "backbone": "clip_vitb32", "task": "fewshot", "subtask": "eurosat", "rank": 16,
               "lr": 1e-3, "lr_ratio": None, "metrics": {"test/acc": 0.9, "val/acc_best": 0.91}}
    print_summary(fewshot, tmp_path / "result.json", majority=0.1)
    out = capsys.readouterr().out
    assert "fewshot / eurosat" in out and "90.0%" in out and "lora, rank 16, lr 0.001" in out

    for per_s, shown in ((0.44, "(0.44 samples/s)"), (3.14159, "(3.1 samples/s)"), (1234.5, "(1,234 samples/s)")):
        print_summary({**fewshot, "samples_per_s": per_s}, tmp_path / "result.json")
        assert shown in capsys.readouterr().out  # a slow run is not shown as "0 samples/s"


def test_few_shot_run_folders_name_the_dataset():
    from randlora.reporting.runs import _keys_from_path
    from randlora.utils.config import compose_config

    run_dir = compose_config(["task=fewshot", "task.dataset=dtd"], return_hydra_config=True).hydra.run.dir
    assert "/fewshot-dtd/" in run_dir
    assert "/tweets/" in compose_config([], return_hydra_config=True).hydra.run.dir
    from pathlib import Path

    keys = _keys_from_path(Path("/r/fewshot-dtd/clip/lora/id1"), Path("/r"))
    assert (keys["task"], keys["dataset"], keys["run_id"]) == ("fewshot", "dtd", "id1")


def test_progress_in_a_log_is_a_line_every_n_steps_with_an_eta(caplog):
    """Not a terminal (SLURM): one line every N steps (or seconds), with the whole run's ETA."""
    import logging
    from types import SimpleNamespace

    from randlora.run.progress import LineProgress, progress_bar

    assert isinstance(progress_bar(), LineProgress)  # pytest's captured stdout is not a terminal
    bar = LineProgress(every_n_steps=5, every_s=3600)
    trainer = SimpleNamespace(global_step=0, estimated_stepping_batches=100, current_epoch=0, max_epochs=4,
                              callback_metrics={"train/loss": torch_scalar(0.5)}, is_global_zero=True,
                              sanity_checking=False)
    bar.on_train_start(trainer, None)
    bar._start -= 10.0  # ten seconds in
    with caplog.at_level(logging.INFO, logger="randlora.run.progress"):
        for step in range(1, 21):
            trainer.global_step = step
            bar.on_train_batch_end(trainer, None, None, None, step - 1)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and lines[0].startswith("epoch 1/4  step 5/100 (5%)  train/loss 0.5000"), lines
    assert all("ETA 0:" in line and ("steps/s" in line or "s/step" in line) for line in lines)
    assert "2.0 s/step" in lines[0] and "ETA 0:03:10" in lines[0]  # 95 steps left at 0.5 steps/s


def torch_scalar(value: float):
    import torch

    return torch.tensor(value)


def test_make_figures_draws_every_metric_and_labels_what_memory_measures(tmp_path):
    """Without --metric, accuracy and rel_error runs both get their figures (rel_error needed --metric)."""
    from datetime import datetime

    from omegaconf import OmegaConf

    from randlora import reporting
    from randlora.reporting.figures import MEMORY_MEASURE
    from randlora.run.results import build_result, write_result
    from randlora.utils.config import REPO_ROOT

    for run_id, task, metrics in (("a", "tweets", {"test/acc": 0.7, "val/acc_best": 0.7}),
                                  ("b", "synthetic_fullrank", {"test/rel_error": 0.3, "val/rel_error_best": 0.3})):
        cfg = OmegaConf.create({"seed": 0, "task": {"name": task}, "backbone": {"name": "tiny"},
                                "adapter": {"name": "lora", "rank": 2}, "optim": {"lr": 1e-3}})
        result = build_result(cfg, run_id=run_id, started=datetime(2025, 1, 1), metrics=metrics,
                              params={"trainable": 10, "total": 100}, wall_time_s=1.0)
        write_result(tmp_path / "runs" / task / "tiny" / "lora" / run_id, result)
    reporting.write_csv(reporting.collect(tmp_path / "runs"), tmp_path / "summary.csv")
    figures = _load_script(REPO_ROOT / "scripts" / "make_figures.py")
    assert figures.main(["--results-dir", str(tmp_path), "--formats", "png"]) == 0
    names = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert "params_vs_test_acc.png" in names and "params_vs_test_rel_error.png" in names, names
    assert names.count("peak_memory.png") == 1
    assert "CUDA allocator" in MEMORY_MEASURE and "RSS" in MEMORY_MEASURE


def _imports(path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(("." * node.level) + node.module)
    return names


def test_rooms_import_one_way():
    """utils/ never imports run/; data/ never imports a backbone; module.py does not import a task's scorer."""
    from randlora.utils.config import REPO_ROOT

    package = REPO_ROOT / "randlora"
    for path in (package / "utils").glob("*.py"):
        assert not any(name.startswith("randlora.run") for name in _imports(path)), path
    for path in (package / "data").rglob("*.py"):
        assert not any(name.startswith("randlora.backbones") for name in _imports(path)), path
    assert not any("commonsense" in name for name in _imports(package / "module.py"))
    fused = _imports(package / "adapters" / "randlora.py")
    assert ".randlora_fused" in fused  # the layer uses the fused paths, which live in their own file


def test_generation_module_scores_with_the_tasks_extractor():
    from randlora.module import CausalLMModule

    with pytest.raises(ValueError, match="answer_extractor"):
        CausalLMModule(nn.Linear(2, 2), None, {"lr": 1e-3})
    seen = []

    def extractor(subtask):
        seen.append(subtask)
        return lambda text: text.split()[-1]

    module = CausalLMModule(nn.Linear(2, 2), None, {"lr": 1e-3}, answer_extractor=extractor)
    module.generate = lambda prompts: ["the answer is yes", "the answer is no"]
    answers = module._answers({"prompts": ["a", "b"], "answers": ["yes", "yes"]}, "boolq")
    assert module._flags(answers, "correct").tolist() == [1.0, 0.0] and seen == ["boolq"]
    assert [a["extracted"] for a in answers] == ["yes", "no"]
