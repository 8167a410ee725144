"""E2E NLG: metrics against hand-computed values, the release-format reader, and a tiny run end to end."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from helpers_training import training_config
from randlora.data import e2e, nlg_metrics
from randlora.train import train


def test_bleu_is_one_for_an_exact_match_and_uses_every_reference():
    hyp = ["the vaults is a cheap pub near cafe adriatic ."]
    assert nlg_metrics.bleu(hyp, [["the vaults is a cheap pub near cafe adriatic ."]]) == pytest.approx(1.0)
    # the hypothesis equals the second reference of its MR: scored together, it is a perfect match
    assert nlg_metrics.bleu(hyp, [["a pub called the vaults", hyp[0]]]) == pytest.approx(1.0)
    assert nlg_metrics.bleu(hyp, [["a pub called the vaults , cheap , near the cafe"]]) < 0.5


def test_nist_grows_with_overlap():
    refs = [["the vaults is a cheap pub near cafe adriatic ."]]
    exact = nlg_metrics.nist(["the vaults is a cheap pub near cafe adriatic ."], refs)
    partial = nlg_metrics.nist(["the vaults is a pub ."], refs)
    assert exact > partial > 0


def test_rouge_l_by_hand():
    # LCS of "a b c d" and "a c d e" is "a c d": P = R = 3/4, F = 0.75; the better of two references counts
    assert nlg_metrics.rouge_l(["a b c d"], [["a c d e"]]) == pytest.approx(0.75)
    assert nlg_metrics.rouge_l(["a b c d"], [["x y", "a c d e"]]) == pytest.approx(0.75)


def test_cider_by_hand():
    # two inputs with disjoint words: every n-gram has idf log 2. Exact matches give cosine 1 for n = 1, 2 and no
    # 3- or 4-grams: 10 * (1 + 1 + 0 + 0) / 4 = 5
    assert nlg_metrics.cider(["a b", "c d"], [["a b"], ["c d"]]) == pytest.approx(5.0)
    # "a b" vs "a c": unigram cosine 1/2, no shared bigram: 10 * 0.5 / 4 = 1.25; mean with 5 -> 3.125
    assert nlg_metrics.cider(["a b", "d e"], [["a c"], ["d e"]]) == pytest.approx(3.125)


def test_meteor_is_missing_without_wordnet_rather_than_zero():
    value = nlg_metrics.meteor(["a pub"], [["a pub"]])
    try:
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
        assert value is not None and value > 0.5
    except LookupError:
        assert value is None


def test_metrics_refuse_mismatched_lengths():
    with pytest.raises(ValueError, match="one hypothesis per input"):
        nlg_metrics.bleu(["a", "b"], [["a"]])


def test_mr_is_linearised_as_in_loras_data():
    mr = "name[The Vaults], eatType[pub], priceRange[more than £30], familyFriendly[yes]"
    assert e2e.linearize_mr(mr) == "name : The Vaults | Type : pub | price : more than £30 | family friendly : yes"
    with pytest.raises(ValueError, match="no slot\\[value\\] pairs"):
        e2e.linearize_mr("just text")


MRS = ["name[The Vaults], eatType[pub]", "name[Aromi], food[Chinese], area[city centre]",
       "name[Blue Spice], priceRange[cheap]"]


def write_release(root: Path) -> Path:
    """The challenge's CSVs (mr, ref; an MR repeated once per reference)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = [(MRS[0], "The Vaults is a pub."), (MRS[1], "Aromi serves Chinese food in the city centre."),
            (MRS[0], "There is a pub called The Vaults."), (MRS[2], "Blue Spice is cheap.")]
    for name in ("trainset.csv", "devset.csv", "testset_w_refs.csv"):
        pd.DataFrame(rows, columns=["mr", "ref"]).to_csv(root / name, index=False)
    return root


def test_release_csvs_are_read_and_references_grouped_by_mr(tmp_path):
    root = write_release(tmp_path / "e2e")
    pairs = e2e.load_split("test", str(root))
    assert len(pairs) == 4
    grouped = e2e.group_references(pairs)
    assert [g["mr"] for g in grouped] == MRS
    assert grouped[0]["references"] == ["The Vaults is a pub.", "There is a pub called The Vaults."]
    (root / "devset.csv").unlink()
    with pytest.raises(FileNotFoundError, match="devset.csv is missing"):
        e2e.load_split("validation", str(root))


def test_collator_masks_the_prompt_and_ends_with_eos():
    from randlora.backbones.stand_ins import byte_bpe_tokenizer

    tokenizer = byte_bpe_tokenizer()
    collate = e2e.E2ECollator(tokenizer, max_length=512)
    batch = collate([{"mr": MRS[0], "references": ["The Vaults is a pub."]}])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    n_prompt = len(tokenizer(e2e.prompt(MRS[0]))["input_ids"])
    assert labels[:n_prompt] == [-100] * n_prompt and labels[n_prompt:] == ids[n_prompt:]
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids[n_prompt:-1]) == " The Vaults is a pub."


@pytest.mark.parametrize("adapter", ["lora", "randlora"])
def test_two_steps_and_beam_search_write_an_ok_result_with_the_metrics(tmp_path, adapter):
    root = write_release(tmp_path / "e2e")
    cfg = training_config(tmp_path, [f"experiment=e2e/{adapter}", "backbone=tiny_gpt2", f"task.root={root}",
                                     "task.num_beams=2", "task.max_new_tokens=8", "adapter.rank=4",
                                     "trainer.max_steps=2", "loader.batch_size=2"])
    result = train(cfg)
    assert result["status"] == "ok"
    assert set(result["metrics"]) >= {"test/bleu", "test/nist", "test/rouge_l", "test/cider"}
    generations = json.loads((tmp_path / "run" / "generations" / "test.json").read_text())
    assert len(generations) == 3 and generations[0]["references"] == ["The Vaults is a pub.",
                                                                      "There is a pub called The Vaults."]


def test_smoothed_loss_equals_a_hand_computed_smoothed_nll_over_the_target_tokens_only():
    import math

    import torch

    from randlora.module_nlg import smoothed_lm_loss

    # one sequence of 4 positions, vocabulary of 3; position t predicts label t + 1. Labels (-100, -100, 2, 0):
    # position 1 predicts token 2, position 2 predicts token 0; positions 0 (prompt) and 3 (last) count not at all.
    logits = torch.tensor([[[9.0, -9.0, 5.0], [0.0, 1.0, 2.0], [1.0, 1.0, 0.0], [7.0, 7.0, 7.0]]])
    labels = torch.tensor([[-100, -100, 2, 0]])

    def token_loss(row, target, eps):
        log_z = math.log(sum(math.exp(v) for v in row))
        log_p = [v - log_z for v in row]
        return (1 - eps) * -log_p[target] + eps * sum(-lp for lp in log_p) / len(row)

    expected = (token_loss([0.0, 1.0, 2.0], 2, 0.1) + token_loss([1.0, 1.0, 0.0], 0, 0.1)) / 2
    assert smoothed_lm_loss(logits, labels, 0.1).item() == pytest.approx(expected, rel=1e-6)
    plain = (token_loss([0.0, 1.0, 2.0], 2, 0.0) + token_loss([1.0, 1.0, 0.0], 0, 0.0)) / 2
    assert smoothed_lm_loss(logits, labels, 0.0).item() == pytest.approx(plain, rel=1e-6)
    assert expected != pytest.approx(plain)


def test_nlg_module_trains_on_the_smoothed_loss_and_validates_on_the_plain_one():
    import torch

    from randlora.backbones import BACKBONES, build_backbone
    from randlora.module_nlg import NLGModule, smoothed_lm_loss

    torch.manual_seed(0)
    backbone = build_backbone(BACKBONES["tiny_gpt2"], None).eval()  # no dropout: the same logits every call
    batch = e2e.E2ECollator(backbone.tokenizer, max_length=64)(
        [{"mr": MRS[0], "references": ["The Vaults is a pub."]}, {"mr": MRS[2], "references": ["Cheap."]}])
    smoothed = NLGModule(backbone, backbone.tokenizer, {}, label_smoothing=0.1)
    with torch.no_grad():
        logits = backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        plain = smoothed(batch).loss  # the model's own loss: what val/loss logs
        trained = smoothed.training_loss(batch)
        assert trained.item() == pytest.approx(smoothed_lm_loss(logits, batch["labels"], 0.1).item(), rel=1e-5)
        assert abs(trained.item() - plain.item()) > 1e-3  # near-uniform random model: a small but real change
        unsmoothed = NLGModule(backbone, backbone.tokenizer, {}).training_loss(batch)
        assert unsmoothed.item() == pytest.approx(plain.item(), rel=1e-6)
    with pytest.raises(ValueError, match="task.label_smoothing=1.5 must be a number in \\[0, 1\\)"):
        NLGModule(backbone, backbone.tokenizer, {}, label_smoothing=1.5)


def test_e2e_experiment_is_the_authors_nlg_recipe():
    from randlora.utils.config import compose_config

    lora = compose_config(["experiment=e2e/lora", "seed=1"])
    randlora = compose_config(["experiment=e2e/randlora", "seed=1"])
    for cfg in (lora, randlora):
        assert cfg.task.label_smoothing == 0.1  # NLG/train.sh --label_smooth 0.1
        assert cfg.optim.eps == 1e-6 and list(cfg.optim.betas) == [0.9, 0.999]  # optimizer.py, --adam_beta2 0.999
        assert cfg.backbone.split_fused_qkv and cfg.adapter.targets == "gpt2_qv_mlp"  # NLG/src/model.py
        assert list(cfg.adapter.dropout_targets) == ["c_attn.q", "c_attn.v"]  # MergedLinear only: Conv* have none
    assert (lora.adapter.rank, lora.adapter.alpha, lora.adapter.dropout) == (16, 32, 0.1)  # train.sh: lora16
    assert (randlora.adapter.rank, randlora.adapter.alpha, randlora.adapter.scaling) == (20, 40, "authors_llm")
    assert randlora.adapter.num_bases_rule == "floor_plus_one" and randlora.adapter.basis_seed == 8
    assert compose_config(["task=e2e_nlg", "backbone=tiny_gpt2"]).task.label_smoothing == 0.0  # off by default


def test_split_qkv_keeps_gpt2s_outputs_and_adapters_reach_q_and_v_but_not_k():
    import torch

    from randlora.adapters import inject
    from randlora.adapters.layer import AdaptedLayer
    from randlora.backbones import BACKBONES, build_backbone
    from randlora.backbones.fused_qkv import SplitQKV, join_fused_qkv, split_fused_qkv
    from randlora.train import adapter_settings

    torch.manual_seed(0)
    backbone = build_backbone(BACKBONES["tiny_gpt2"], None).eval()
    x = dict(backbone.tokenizer(["name : Aromi ||", "a b c"], return_tensors="pt", padding=True))
    with torch.no_grad():
        fused = backbone(**x).logits
        fused_weight = backbone.model.transformer.h[1].attn.c_attn.weight.clone()
        assert len(split_fused_qkv(backbone.model)) == 2  # both blocks
        attention = backbone.model.transformer.h[1].attn.c_attn
        assert isinstance(attention, SplitQKV)
        width = fused_weight.shape[1] // 3  # Conv1D stores (d_in, 3d): the value part is the last third
        assert torch.equal(attention.v.weight, fused_weight[:, 2 * width:].t())
        torch.testing.assert_close(backbone(**x).logits, fused, atol=1e-5, rtol=1e-5)
        assert join_fused_qkv(backbone.model) == 2
        assert torch.equal(backbone.model.transformer.h[1].attn.c_attn.weight, fused_weight)
    backbone = build_backbone({**BACKBONES["tiny_gpt2"], "split_fused_qkv": True}, None)
    targets = adapter_settings({"name": "lora", "rank": 2, "targets": None}, backbone)["targets"]
    assert targets == ["c_attn.q", "c_attn.v", "mlp.c_fc", "mlp.c_proj"]  # the split model's default preset
    inject(backbone, {"name": "lora", "rank": 2, "targets": targets})
    attention = backbone.model.transformer.h[0].attn.c_attn
    assert isinstance(attention.q, AdaptedLayer) and isinstance(attention.v, AdaptedLayer)
    assert not isinstance(attention.k, AdaptedLayer) and not attention.k.weight.requires_grad


@pytest.mark.parametrize("adapter", ["lora", "randlora"])
def test_e2e_puts_dropout_on_the_attention_adapters_only(adapter):
    from torch import nn

    from randlora.adapters import inject
    from randlora.backbones import build_backbone
    from randlora.train import adapter_settings
    from randlora.utils.config import compose_config

    cfg = compose_config([f"experiment=e2e/{adapter}", "backbone=tiny_gpt2", "adapter.rank=4"])
    backbone = build_backbone(cfg.backbone, None)
    settings = adapter_settings(cfg.adapter, backbone)
    inject(backbone, settings)
    block = backbone.model.transformer.h[1]
    for layer in (block.attn.c_attn.q, block.attn.c_attn.v):
        assert isinstance(layer.dropout, nn.Dropout) and layer.dropout.p == 0.1
    for layer in (block.mlp.c_fc, block.mlp.c_proj):
        assert isinstance(layer.dropout, nn.Identity)
    fresh = build_backbone(cfg.backbone, None)
    with pytest.raises(ValueError, match="adapter.dropout_targets entry 'c_attn.k' names no adapted layer"):
        inject(fresh, {**settings, "dropout_targets": ["c_attn.q", "c_attn.k"]})


def test_e2e_trains_the_authors_parameter_counts_on_gpt2_medium():
    """Their NLG layers on GPT-2 medium (24 blocks, width 1024): RandLoRA r 20, n = 52: c_attn's q and v λ (52, 40)
    and γ (52, 2048), c_fc and c_proj λ (52, 20) and γ (52, 1024); LoRA r 16: c_attn A (32, 1024), B (2048, 16),
    c_fc A (16, 4096)... B (1024, 16), c_proj the same sizes."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from randlora.adapters.inject import predict_trainable
    from randlora.backbones.causal_lm import LLM_PRESETS
    from randlora.backbones.fused_qkv import split_fused_qkv
    from randlora.utils.config import compose_config

    with torch.device("meta"):
        model = GPT2LMHeadModel(GPT2Config(n_embd=1024, n_layer=24, n_head=16))
    split_fused_qkv(model)
    randlora_per_block = 52 * (40 + 2048) + 2 * 52 * (20 + 1024)
    lora_per_block = (32 * 1024 + 2048 * 16) + 2 * (16 * 4096 + 1024 * 16)
    for adapter, per_block in (("randlora", randlora_per_block), ("lora", lora_per_block)):
        fields = dict(compose_config([f"experiment=e2e/{adapter}"]).adapter)
        fields["targets"] = LLM_PRESETS[fields["targets"]]
        assert predict_trainable(model, fields) == 24 * per_block  # 5,211,648 and 5,505,024


def test_e2e_randlora_layers_scale_and_start_like_the_authors_nlg_layer():
    """NLG/loralib/randlora_layers.py: n = 1024 // r + 1 = 52, s = α/(r·√n), λ = 0, γ = 1/1024 (MLP layers)."""
    import math

    import torch

    from randlora.adapters import AdapterConfig
    from randlora.adapters.randlora import RandLoRA
    from randlora.utils.config import compose_config

    fields = dict(compose_config(["experiment=e2e/randlora"]).adapter)
    config = AdapterConfig.from_any(fields)
    for d_out, d_in in ((4096, 1024), (1024, 4096)):  # mlp.c_fc, mlp.c_proj of GPT-2 medium
        layer = RandLoRA(d_out, d_in, config, None, None, device="meta")
        assert layer.num_bases == 52 and layer.scale == pytest.approx(40 / (20 * math.sqrt(52)))
    real = RandLoRA(4096, 1024, config, None, None, device="cpu")
    assert real.randlora_lambda.abs().max() == 0 and torch.allclose(real.randlora_gamma, torch.tensor(1 / 1024))
    rank16 = AdapterConfig.from_any({**fields, "rank": 16, "targets": ["c_attn"]})
    assert RandLoRA(4096, 1024, rank16, None, None, device="meta").num_bases == 65  # 1024 // 16 + 1, not ⌈⌉ = 64


def test_gpt2_targets_its_fused_attention_conv1d():
    from randlora.backbones import BACKBONES, build_backbone

    model = build_backbone(BACKBONES["tiny_gpt2"], None)
    assert model.default_targets == "gpt2" and model.target_presets["gpt2"] == ["c_attn"]
    assert type(model.model.transformer.h[0].attn.c_attn).__name__ == "Conv1D"


def test_e2e_command_lists_the_authors_cells():
    from randlora.experiments import experiment_cells

    cells = experiment_cells("e2e")
    expected = {f"experiment=e2e/{adapter} backbone=gpt2_medium seed={seed}"
                for adapter in ("lora", "randlora") for seed in range(3)}
    assert {" ".join(c.overrides) for c in cells} == expected
    ranks = {k["adapter"]: k["rank"] for k in (c.key_dict for c in cells)}
    assert ranks == {"lora": "16", "randlora": "20"}  # NLG/train.sh at c7a6515


def test_e2e_table_shows_the_five_metrics_and_marks_missing_meteor(tmp_path):
    from randlora import reporting
    from randlora.reporting.e2e import e2e_table
    from test_reporting import write_result

    for seed, bleu in enumerate([0.68, 0.70]):
        write_result(tmp_path, f"s{seed}", task="e2e_nlg", backbone="gpt2_medium", adapter="lora", rank=4,
                     seed=seed, metrics={"test/bleu": bleu, "test/nist": 8.6, "test/rouge_l": 0.7, "test/cider": 2.4})
    table = reporting.to_markdown(e2e_table(reporting.summarise(reporting.collect(tmp_path))))
    assert "| gpt2_medium | LoRA r4 | 69.0 ± 1.4 | 8.60 ± 0.00 | — | 70.0 ± 0.0 | 2.40 ± 0.00 |" in table


@pytest.mark.slow
def test_e2e_command_runs_a_reduced_grid_end_to_end_offline(tmp_path):
    import subprocess

    root = write_release(tmp_path / "e2e")
    repo = Path(__file__).resolve().parents[1]
    command = ["bash", str(repo / "experiments" / "e2e" / "run.sh"), "--set", "backbone=tiny_gpt2",
               "--set", "adapter=lora", "--set", "seed=1", "--runs-dir", str(tmp_path / "runs"),
               "--out-dir", str(tmp_path / "out"), "--include-debug", "--", "debug=fast", f"task.root={root}",
               "task.num_beams=2", "task.max_new_tokens=8"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    table = (tmp_path / "out" / "tables" / "e2e.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| tiny_gpt2 | LoRA r16 |"))
    has_wordnet = nlg_metrics.meteor(["a pub"], [["a pub"]]) is not None
    assert row.count("(n=1)") == 4 + has_wordnet
    assert (row.split("|")[5].strip() == "—") != has_wordnet  # METEOR: "—" exactly when WordNet is missing
