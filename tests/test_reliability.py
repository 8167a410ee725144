"""Reliability: bad input gets one clear error through the real entry points (``python train.py`` /
``python eval.py`` in subprocesses, ``HYDRA_FULL_ERROR`` unset), damaged files are refused, a diverging run is
recorded as failed, interrupted runs resume to the same result, and seeds are deterministic.

The bad-input subprocesses are started together (each spends most of its time importing Lightning) so the
table costs about as much as a few runs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers_training import training_config, write_commonsense, write_image_folder, write_tweets_csv
from randlora.utils.config import REPO_ROOT

CLI_TIMEOUT_S = 300


@dataclass(frozen=True)
class BadInput:
    """One row of the table: overrides for ``python <script>``, and the text the error must contain."""

    name: str
    overrides: tuple[str, ...]
    expected: tuple[str, ...]  # each must appear in the output (key or file, bad value, what is allowed)
    script: str = "train.py"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}


def _cli(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / script), *args], capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S, cwd=cwd, env=_env())


def _result_files(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in root.rglob("result.json")]


def _tampered_adapter(source: Path, target: Path, **metadata: str) -> Path:
    """A copy of an adapter file with some of its safetensors metadata replaced."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(source), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        stored = dict(handle.metadata())
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(target), metadata={**stored, **metadata})
    return target


def _adapter_config(run_dir: Path) -> dict:
    from randlora.adapters.save import read_adapter_metadata

    return json.loads(read_adapter_metadata(run_dir / "adapter.safetensors")["adapter_config"])


def _copy_run(run_dir: Path, target: Path, adapter_name: str = "adapter.safetensors") -> Path:
    target.mkdir(parents=True, exist_ok=True)
    (target / "result.json").write_text((run_dir / "result.json").read_text())
    if adapter_name:
        (target / adapter_name).write_bytes((run_dir / "adapter.safetensors").read_bytes())
    return target


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A finished tiny run (tweets, tiny BERT, RandLoRA): its folder holds result.json and the adapter."""
    from randlora.train import train

    root = tmp_path_factory.mktemp("trained")
    csv = write_tweets_csv(root / "tweets.csv")
    cfg = training_config(root, ["backbone=tiny_bert", f"task.path={csv}", "task.train_size=40",
                                 "task.val_size=16", "task.test_size=16", "adapter.rank=4",
                                 "callbacks.resume_checkpoint.keep_last=true"])
    assert train(cfg)["status"] == "ok"
    return root / "run"


def _table(data: Path, trained: Path) -> list[BadInput]:
    csv = write_tweets_csv(data / "tweets.csv")
    images = write_image_folder(data / "images")
    train_json, test_root = write_commonsense(data / "commonsense")
    records = json.loads(train_json.read_text())
    del records[3]["output"]
    broken_json = data / "broken" / "commonsense_15k.json"
    broken_json.parent.mkdir()
    broken_json.write_text(json.dumps(records))

    other_base = _tampered_adapter(trained / "adapter.safetensors", data / "other_base" / "adapter.safetensors",
                                   base_signature="sha256:" + "0" * 64)
    _copy_run(trained, other_base.parent, adapter_name="")
    other_bases = _tampered_adapter(trained / "adapter.safetensors", data / "other_bases" / "adapter.safetensors",
                                    basis_checksum="sha256:" + "1" * 64)
    _copy_run(trained, other_bases.parent, adapter_name="")
    lora_file = _tampered_adapter(trained / "adapter.safetensors", data / "other_config" / "adapter.safetensors",
                                  adapter_config=json.dumps({**_adapter_config(trained), "name": "lora", "rank": 8}))
    _copy_run(trained, lora_file.parent, adapter_name="")
    truncated = _copy_run(trained, data / "truncated_result")
    (truncated / "result.json").write_text((trained / "result.json").read_text()[:200])

    damaged = write_image_folder(data / "damaged_images")
    for image in sorted((damaged / "eurosat" / "train" / "forest").iterdir()):
        image.write_bytes(b"")  # zero-byte files, e.g. an interrupted download
    tweets = ("backbone=tiny_bert", f"task.path={csv}", "task.train_size=40", "task.val_size=16",
              "task.test_size=16")
    fewshot = ("backbone=tiny_vit", "task=fewshot", "task.dataset=eurosat", f"task.root={images}")
    synthetic = ("backbone=synthetic_mlp", "task=synthetic_fullrank", "task.train_size=64", "task.val_size=32",
                 "task.test_size=32")
    llm = ("backbone=tiny_llama", "task=commonsense", f"task.test_root={test_root}", "task.tasks=[boolq]",
           "task.val_size=2", "optim=adamw_llm", "adapter=lora", "adapter.rank=2")
    return [
        BadInput("rank_not_an_integer", (*tweets, "adapter.rank=abc"),
                 ("adapter.rank='abc'", "an integer > 0")),
        BadInput("rank_zero", (*tweets, "adapter.rank=0"), ("adapter.rank=0", "an integer > 0")),
        BadInput("lr_not_a_number", (*tweets, "optim.lr=fast"), ("optim.lr='fast'", "a number > 0")),
        BadInput("negative_alpha", (*tweets, "adapter.alpha=-1"), ("adapter.alpha=-1", "a number >= 0")),
        BadInput("negative_lr_ratio", (*tweets, "adapter=loraplus", "adapter.lr_ratio=-2"),
                 ("lr_ratio=-2", "a number > 0")),
        BadInput("unknown_adapter_name", (*tweets, "adapter.name=dora"),
                 ("adapter.name='dora'", "randlora")),
        BadInput("unknown_adapter_option", (*tweets, "adapter=dora"), ("adapter/dora", "randlora")),
        BadInput("unknown_task", (*tweets, "task=imagenet21k"), ("task/imagenet21k", "tweets")),
        BadInput("unknown_backbone", ("backbone=gpt5",), ("backbone/gpt5", "tiny_bert")),
        BadInput("shots_and_fraction", (*fewshot, "task.shots=2", "task.fraction=0.5"),
                 ("task.shots=2", "task.fraction=0.5", "set one of them")),
        BadInput("dropout_out_of_range", (*tweets, "adapter.dropout=1.0"),
                 ("adapter.dropout=1.0", "[0, 1)")),
        BadInput("unknown_basis", (*tweets, "adapter.basis=gaussian"),
                 ("adapter.basis='gaussian'", "dense, sparse, very_sparse")),
        BadInput("targets_match_nothing", (*tweets, "adapter.targets=[no_such_layer]"),
                 ("adapter.targets=['no_such_layer']", "matched no")),
        BadInput("missing_data_path", (*tweets, f"task.path={data / 'absent.csv'}"),
                 (str(data / "absent.csv"), "sentiment, confidence, text")),
        BadInput("malformed_commonsense_record", (*llm, f"task.train_path={broken_json}"),
                 (str(broken_json), "record 3", "'output'")),
        BadInput("nan_loss", (*tweets, "adapter=lora", "optim.lr=1e30", "optim.grad_clip=null",
                              "trainer.limit_train_batches=6"),
                 ("Training diverged: training loss is", "lower optim.lr")),
        BadInput("diverged", (*synthetic, "optim.lr=1e6"),
                 ("Training diverged: val squared errors are NaN or infinite", "optim.lr=1000000.0", "lower optim.lr")),
        BadInput("all_nan_outputs", (*synthetic, "optim.lr=1e30", "optim.grad_clip=null", "optim.warmup_steps=0",
                                     "trainer.limit_train_batches=1"),
                 ("Training diverged: val squared errors are NaN or infinite", "lower optim.lr")),
        BadInput("trains_nothing_max_epochs", (*synthetic, "trainer.max_epochs=0"),
                 ("trainer.max_epochs=0 is invalid", "an integer >= 1")),
        BadInput("trains_nothing_no_batches", (*synthetic, "trainer.limit_train_batches=0"),
                 ("trainer.limit_train_batches=0 is invalid", "an integer >= 1 (batches)")),
        BadInput("negative_max_epochs", (*synthetic, "trainer.max_epochs=-1"),
                 ("trainer.max_epochs=-1 is invalid", "an integer >= 1")),
        BadInput("eps_not_a_number", (*synthetic, "optim.eps=abc"), ("optim.eps='abc' is invalid", "a number > 0")),
        BadInput("min_lr_ratio_not_a_number", (*synthetic, "optim.min_lr_ratio=abc"),
                 ("optim.min_lr_ratio='abc' is invalid", "a number in [0, 1]")),
        BadInput("unknown_optim_key", (*synthetic, "+optim.learning_rate=0.5"),
                 ("optim.learning_rate is not a key of optim: did you mean optim.lr?",)),
        BadInput("unknown_task_key", (*synthetic, "+task.trian_size=8"),
                 ("task.trian_size is not a key of task: did you mean task.train_size?",)),
        BadInput("unknown_loader_key", (*synthetic, "+loader.batchsize=2"),
                 ("loader.batchsize is not a key of loader: did you mean loader.batch_size?",)),
        BadInput("eval_adapter_of_another_config", (f"adapter_path={lora_file}",),
                 (str(lora_file), "holds a different adapter than the model's", "'name': ('lora', 'randlora')",
                  "'rank': (8, 4)"), script="eval.py"),
        BadInput("unknown_model_id_offline", ("backbone=tiny_bert", "backbone.name=nobody/no-such-model"),
                 ("pretrained weights of 'nobody/no-such-model' could not be loaded",
                  "not in the local cache and the hub is unreachable", "set backbone.path=<a local copy>")),
        BadInput("zero_byte_image", ("backbone=tiny_vit", "task=fewshot", "task.dataset=eurosat", f"task.root={damaged}"),
                 (f"{damaged / 'eurosat' / 'train' / 'forest'}/", "(0 bytes) cannot be read as an image")),
        BadInput("unwritable_results_root", ("backbone=tiny_bert", "paths.results_dir=/sys/randlora_results"),
                 ("cannot write the results folder /sys/randlora_results/runs/", "set paths.root_dir")),
        BadInput("eval_adapter_of_another_base_model", (f"adapter_path={other_base}",),
                 (str(other_base), "another base model"), script="eval.py"),
        BadInput("eval_basis_checksum_mismatch", (f"adapter_path={other_bases}",),
                 (str(other_bases), "checksum", "refusing to load"), script="eval.py"),
        BadInput("eval_truncated_result", (f"adapter_path={truncated / 'adapter.safetensors'}",),
                 (str(truncated / "result.json"), "not valid JSON"), script="eval.py"),
        BadInput("synthetic_task_without_its_network", ("task=synthetic_fullrank",),
                 ("task=synthetic_fullrank", "backbone=synthetic_mlp")),
        BadInput("fewshot_without_dataset", ("experiment=fig3_clip/randlora", "task=fewshot"),
                 ("task.dataset is missing", "eurosat", "imagenet")),
        BadInput("unknown_local", ("local=nothere",), ("local=nothere", "configs/local")),
        BadInput("paths_and_names_reported_together",
                 ("backbone=tiny_vit", "task=fewshot", "task.dataset=eurosat", f"task.root={data / 'nowhere'}",
                  f"backbone.path={data / 'no_weights'}"), ("2 problems", "task.root=", "backbone.path=")),
        BadInput("hub_weights_unavailable",
                 ("backbone=clip_vitb32", "task=fewshot", "task.dataset=eurosat", f"task.root={images}"),
                 ("ViT-B-32", "backbone.path=", "unreachable")),
        BadInput("resume_missing_checkpoint", (*tweets, f"resume={data / 'absent.ckpt'}"),
                 (f"resume={data / 'absent.ckpt'}: no such checkpoint file", "resume=true")),
        BadInput("resume_checkpoint_of_another_adapter",
                 (*tweets, "adapter=lora", "adapter.rank=4", f"resume={trained / 'checkpoints' / 'last.ckpt'}"),
                 ("holds a different adapter than the config's", "'name': ('randlora', 'lora')")),
        BadInput("resume_not_a_checkpoint", (*tweets, f"resume={csv}"),
                 (str(csv), "cannot be loaded as plain tensors and values")),
    ]


# Cheap rows (Hydra composition errors) and one of each kind of failure run by default; the rest are slow
# because each subprocess spends ~8 s of CPU importing torch and Lightning.
FAST_CASES = ["unknown_local", "fewshot_without_dataset", "paths_and_names_reported_together", "rank_zero",
              "unknown_adapter_option", "unknown_task", "unknown_backbone", "missing_data_path",
              "malformed_commonsense_record", "eval_basis_checksum_mismatch", "nan_loss", "diverged",
              "unknown_optim_key", "unwritable_results_root"]
SLOW_CASES = ["synthetic_task_without_its_network", "hub_weights_unavailable", "rank_not_an_integer",
              "lr_not_a_number", "negative_alpha", "negative_lr_ratio",
              "unknown_adapter_name", "shots_and_fraction", "dropout_out_of_range", "unknown_basis",
              "targets_match_nothing", "eval_adapter_of_another_base_model", "eval_truncated_result",
              "resume_missing_checkpoint", "resume_checkpoint_of_another_adapter", "resume_not_a_checkpoint",
              "all_nan_outputs", "trains_nothing_max_epochs", "trains_nothing_no_batches", "negative_max_epochs",
              "eps_not_a_number", "min_lr_ratio_not_a_number", "unknown_task_key", "unknown_loader_key",
              "eval_adapter_of_another_config", "unknown_model_id_offline", "zero_byte_image"]


@pytest.fixture(scope="module")
def bad_input_runs(tmp_path_factory, trained_run):
    """``runs(name)`` -> (row, its results root, finished process); the rows of a group run at once."""
    data = tmp_path_factory.mktemp("bad_input_data")
    table = {case.name: case for case in _table(data, trained_run)}
    done: dict[str, tuple[BadInput, Path, subprocess.CompletedProcess]] = {}

    def run(case: BadInput) -> tuple[BadInput, Path, subprocess.CompletedProcess]:
        root = tmp_path_factory.mktemp(case.name)
        debug = ["debug=fast"] if case.script == "train.py" else []
        return case, root, _cli(case.script, [*case.overrides, *debug, f"paths.root_dir={root}"], root)

    def runs(name: str) -> tuple[BadInput, Path, subprocess.CompletedProcess]:
        if name not in done:
            group = FAST_CASES if name in FAST_CASES else SLOW_CASES
            with ThreadPoolExecutor(max_workers=3) as pool:
                done.update(zip(group, pool.map(run, [table[n] for n in group])))
        return done[name]

    runs.table = table
    return runs


@pytest.mark.parametrize("name", [*FAST_CASES, *(pytest.param(n, marks=pytest.mark.slow) for n in SLOW_CASES)])
def test_bad_input_fails_with_one_clear_message(name, bad_input_runs):
    case, root, done = bad_input_runs(name)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-2000:]
    assert "Traceback" not in output, output[-4000:]
    for text in case.expected:
        assert text in output, f"{text!r} not in:\n{output[-3000:]}"
    error_lines = [line for line in output.splitlines() if "[ERROR]" in line]
    assert len(error_lines) <= 1, error_lines  # the failure once (Hydra prints composition errors itself)
    assert all(r["status"] == "failed" for r in _result_files(root))  # never a result that looks ok
    assert not [p for p in root.rglob("*") if p.suffix in (".safetensors", ".ckpt")]  # nor an adapter or checkpoint


# Found by the checks before Hydra makes the run folder: nothing is left on disk (no failed run, no empty row).
CHECKED_BEFORE_THE_RUN_FOLDER = ["unknown_local", "fewshot_without_dataset", "paths_and_names_reported_together",
                                 "rank_zero", "unknown_adapter_option", "missing_data_path"]


@pytest.mark.parametrize("name", CHECKED_BEFORE_THE_RUN_FOLDER)
def test_config_errors_leave_no_run_folder(name, bad_input_runs):
    _, root, done = bad_input_runs(name)
    assert done.returncode == 2 and not list(root.glob("results/runs/*/*/*/*")), sorted(root.rglob("*"))


def test_nan_loss_is_recorded_as_failed(bad_input_runs):
    _, root, _ = bad_input_runs("nan_loss")
    (result,) = _result_files(root)
    assert result["status"] == "failed" and "NonFiniteLossError: training loss is" in result["error"]
    assert result["metrics"] == {}


def test_bad_input_table_is_complete(bad_input_runs):
    assert sorted(bad_input_runs.table) == sorted(FAST_CASES + SLOW_CASES)


@pytest.mark.slow
def test_full_error_is_shown_when_asked_for(tmp_path):
    done = subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), "adapter.rank=0", "backbone=tiny_bert",
                           f"paths.root_dir={tmp_path}"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=CLI_TIMEOUT_S, env={**_env(), "HYDRA_FULL_ERROR": "1"})
    assert done.returncode != 0 and "Traceback" in done.stderr and "adapter.rank=0" in done.stderr


def test_shots_and_fraction_are_refused_before_any_model_is_built(tmp_path, monkeypatch):
    import randlora.backbones
    from randlora.train import train
    from randlora.utils.validate import ConfigError

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built before the config was checked")

    monkeypatch.setattr(randlora.backbones, "build_backbone", no_model)
    cfg = training_config(tmp_path, ["backbone=tiny_vit", "task=fewshot", "task.dataset=eurosat", "task.shots=2",
                                     "task.fraction=0.5", f"task.root={tmp_path / 'absent'}"])
    with pytest.raises(ConfigError, match=r"^task.shots=2 and task.fraction=0.5 are both set: set one of them"):
        train(cfg)
    assert not (tmp_path / "run").exists()  # a config error is found before anything is written


def test_targets_matching_no_module_name_them_and_some_that_exist(tmp_path):
    from randlora.train import train

    cfg = training_config(tmp_path, ["backbone=tiny_bert", "adapter.targets=[no_such_layer]"])
    with pytest.raises(ValueError) as caught:
        train(cfg)
    message = str(caught.value)
    assert "\n" not in message and "adapter.targets=['no_such_layer']" in message and "matched no" in message
    assert "Adaptable modules look like: [" in message and "query" in message  # names of the model's layers
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["result.json"]  # the failed result, nothing else
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "failed"


def test_a_failed_run_reports_its_error_once(bad_input_runs):
    _, root, done = bad_input_runs("rank_zero")
    output = done.stdout + done.stderr
    assert output.count("adapter.rank=0 is invalid") == 1, output[-3000:]
    assert _result_files(root) == []  # found before the run folder existed: nothing recorded (issue 11)


# ------------------------------------------------------------------------------------------- damaged files


def test_truncated_result_is_refused(trained_run, tmp_path):
    from randlora.reporting import CorruptResultError, read_result

    text = (trained_run / "result.json").read_text()
    assert read_result(trained_run / "result.json")["status"] == "ok"
    for cut in (0, 1, len(text) // 2, len(text) - 3):
        path = tmp_path / f"cut{cut}" / "result.json"
        path.parent.mkdir()
        path.write_text(text[:cut])
        with pytest.raises(CorruptResultError, match="empty file|truncated"):
            read_result(path)


def test_truncated_adapter_file_is_refused(trained_run, tmp_path):
    from randlora.adapters import load_adapter
    from randlora.backbones import build_backbone
    from randlora.data import task_info

    cfg = training_config(tmp_path, ["backbone=tiny_bert"])
    data = (trained_run / "adapter.safetensors").read_bytes()
    for cut in (0, 7, len(data) // 2, len(data) - 1):
        path = tmp_path / f"cut{cut}.safetensors"
        path.write_bytes(data[:cut])
        model = build_backbone(cfg.backbone, task_info(cfg.task))
        with pytest.raises(ValueError, match="not a complete safetensors file"):
            load_adapter(model, path)


def test_adapter_of_another_method_is_refused(trained_run, tmp_path):
    from randlora.adapters import inject, load_adapter
    from randlora.backbones import build_backbone
    from randlora.data import task_info
    from randlora.train import adapter_settings

    cfg = training_config(tmp_path, ["backbone=tiny_bert", "adapter=lora", "adapter.rank=4"])
    model = build_backbone(cfg.backbone, task_info(cfg.task))
    inject(model, adapter_settings(cfg.adapter, model))
    with pytest.raises(ValueError, match="holds a different adapter than the model's.*'name': \\('randlora', 'lora'\\)"):
        load_adapter(model, trained_run / "adapter.safetensors")
