"""adapter=none: the pretrained model through the training run's evaluators, nothing trained, an ok zero-shot result."""
import json
from pathlib import Path

import pytest

from randlora.train import train
from randlora.utils.validate import ConfigError
from tests.helpers_training import training_config, write_commonsense, write_image_folder


def _stored(cfg) -> dict:
    return json.loads((Path(cfg.paths.output_dir) / "result.json").read_text())


def test_zero_shot_commonsense_generation_writes_an_ok_zero_shot_result(tmp_path):
    _, test_root = write_commonsense(tmp_path / "commonsense")
    cfg = training_config(tmp_path, ["backbone=tiny_llama", "task=commonsense", "task.train_path=null",
                                     f"task.test_root={test_root}", "task.tasks=[boolq]", "task.max_new_tokens=4",
                                     "adapter=none"])
    result = train(cfg)
    stored = _stored(cfg)
    assert stored["status"] == "ok" and stored["zero_shot"] is True and stored["adapter"] == "none"
    assert stored["params"]["trainable"] == 0 and stored["params"]["total"] > 0
    # no training, so no validation metric; the extraction share beside the accuracy
    assert set(stored["metrics"]) == {"test/acc", "test/acc/boolq", "test/extracted", "test/extracted/boolq"}
    generations = json.loads((Path(cfg.paths.output_dir) / "generations" / "boolq.json").read_text())
    assert len(generations) == len(json.loads((test_root / "boolq" / "test.json").read_text()))
    assert 0.0 <= stored["metrics"]["test/acc"] <= 1.0
    assert result["metrics"] == stored["metrics"]
    assert not (Path(cfg.paths.output_dir) / "adapter.safetensors").exists()


def test_zero_shot_clip_scores_with_the_class_prompts(tmp_path):
    root = write_image_folder(tmp_path / "data")
    cfg = training_config(tmp_path, ["backbone=tiny_clip", "task=fewshot", "task.dataset=eurosat",
                                     f"task.root={root}", "task.shots=1", "adapter=none"])
    stored = train(cfg)
    assert _stored(cfg)["status"] == "ok" and stored["zero_shot"] and stored["params"]["trainable"] == 0
    assert stored["subtask"] == "eurosat" and 0.0 <= stored["metrics"]["test/acc"] <= 1.0

    # the same number as the untrained model's own prompt scores over the test images
    import torch
    from randlora.backbones import build_backbone
    from randlora.data import build_task_data, task_info
    torch.manual_seed(0)
    model = build_backbone(cfg.backbone, task_info(cfg.task)).eval()
    test = build_task_data(cfg.task, model).test
    with torch.no_grad():
        images = torch.stack([test[i][0] for i in range(len(test))])
        labels = torch.tensor([test[i][1] for i in range(len(test))])
        expected = (model(images).argmax(-1) == labels).float().mean().item()
    assert stored["metrics"]["test/acc"] == pytest.approx(expected)


def test_zero_shot_refuses_a_backbone_with_a_fresh_head_before_building(tmp_path):
    cfg = training_config(tmp_path, ["backbone=tiny_vit", "task=fewshot", "task.dataset=eurosat",
                                     f"task.root={tmp_path / 'absent'}", "adapter=none"])
    with pytest.raises(ConfigError, match=r"backbone.family='timm'.*freshly initialised"):
        train(cfg)
    assert not (tmp_path / "run").exists()  # a config error is found before anything is written


def test_table1_zero_shot_column_takes_adapter_none_runs_in_every_training_set_row(tmp_path):
    from randlora import reporting
    from tests.test_reporting import EXPERIMENTS, write_result

    for seed, acc in enumerate([0.26, 0.28]):
        write_result(tmp_path, f"zs-s{seed}", task="commonsense", backbone="meta-llama/Meta-Llama-3-8B",
                     folder="llama3_8b", adapter="none", seed=seed, metrics={"test/acc": acc},
                     task_cfg={"train_set": "15k"})
    runs = reporting.collect(tmp_path)
    table = reporting.table1_commonsense(reporting.summarise(runs), reporting.read_reference(
        EXPERIMENTS / "table1_commonsense" / "reference.csv"), runs)
    for train in ("15k", "170k"):
        row = next(r for r in table.rows if r[:2] == ["LLaMA3-8B", train])
        assert row[2] == "27.0 ± 1.4 (paper 27.0)"
        assert row[3] == "— (paper 76.9)" if train == "15k" else "— (paper 81.2)"
