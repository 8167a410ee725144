"""The authors' CLIP objective (PAPER.md §3b): raw logit scale, batch prompts, "An image of {c}", curated names."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from randlora.backbones import BACKBONES, build_backbone
from randlora.data import classnames

CLASSES = ["cat", "dog", "airplane", "ship"]


def tiny_clip(**override):
    torch.manual_seed(0)
    cfg = {**BACKBONES["tiny_clip"], **override}
    return build_backbone(cfg, {"num_classes": len(CLASSES), "class_names": CLASSES,
                                "templates": ["a sketch of a {c}.", "art of the {c}."]})


def test_batch_prompt_loss_equals_a_hand_computation_with_a_repeated_class():
    model = tiny_clip(prompt="An image of {c}", logit_scale="raw", clip_loss="batch_prompts").train()
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([2, 0, 2, 3])  # class 2 twice
    loss, predicted = model.batch_prompt_loss(images, labels)

    clip, tokenizer = model.clip, model.tokenizer
    image = F.normalize(clip.encode_image(images), dim=-1)
    text = F.normalize(clip.encode_text(tokenizer([f"An image of {CLASSES[i]}" for i in labels])), dim=-1)
    logits = clip.logit_scale * image @ text.t()  # the raw stored parameter, log(1/0.07)
    expected = F.cross_entropy(logits, torch.tensor([0, 1, 0, 3]))  # sample 2 shares sample 0's target
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert clip.logit_scale.item() == pytest.approx(math.log(1 / 0.07), rel=1e-4)
    torch.testing.assert_close(predicted, labels[logits.argmax(dim=1)])
    loss.backward()  # both towers receive gradients through the batch prompts
    assert clip.text_projection.grad is not None and clip.visual.proj.grad is not None


def test_eval_scores_all_classes_with_the_same_prompt_and_raw_scale():
    model = tiny_clip(prompt="An image of {c}", logit_scale="raw", clip_loss="batch_prompts").eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        logits = model(images)
        clip = model.clip
        image = F.normalize(clip.encode_image(images), dim=-1)
        text = F.normalize(clip.encode_text(model.tokenizer([f"An image of {c}" for c in CLASSES])), dim=-1)
    torch.testing.assert_close(logits, clip.logit_scale * image @ text.t(), rtol=1e-5, atol=1e-6)


def test_ours_is_exp_scale_and_all_classes():
    model = tiny_clip().eval()
    assert model.templates == ["a photo of a {c}."] and not model.uses_batch_prompts
    assert model.similarity_scale.item() == pytest.approx(1 / 0.07, rel=1e-4)


def test_eval_template_ensemble_uses_the_task_templates():
    model = tiny_clip(eval_templates="dataset").eval()
    with torch.no_grad():
        text = model.class_embeddings()
        per_template = [F.normalize(model.clip.encode_text(model.tokenizer([t.format(c=c) for c in CLASSES])), dim=-1)
                        for t in ["a sketch of a {c}.", "art of the {c}."]]
    torch.testing.assert_close(text, F.normalize(sum(per_template) / 2, dim=-1), rtol=1e-5, atol=1e-6)


def test_bad_clip_settings_name_the_key():
    with pytest.raises(ValueError, match="backbone.logit_scale='log' is not known; allowed: exp, raw"):
        tiny_clip(logit_scale="log")
    with pytest.raises(ValueError, match="backbone.prompt='An image' must be a string containing"):
        tiny_clip(prompt="An image")
    with pytest.raises(ValueError, match="clip_loss=batch_prompts trains the text tower: it needs backbone.head"):
        tiny_clip(clip_loss="batch_prompts", head="linear")


def test_curated_names_and_templates_reach_the_clip_task_info(tmp_path):
    from helpers_data import make_image_folder

    from randlora.data import task_info

    make_image_folder(tmp_path, "cub200", classes=classnames.class_folders("cub200"), train_per_class=1,
                      test_per_class=1)
    info = task_info({"name": "fewshot", "dataset": "cub200", "root": str(tmp_path)})
    assert info.templates == classnames.templates("cub200") == ["a photo of a {c}, a type of bird."]
    assert info.class_names[0] == "Black footed Albatross" and info.num_classes == 200
