"""VTAB-1k as the literature runs it: Resize((224, 224)) bicubic, no crop, no flip; group means in the tables."""
from __future__ import annotations

import pandas as pd
import torch
import torchvision.transforms as T
from PIL import Image

from helpers_data import ImageBackboneStandIn
from randlora.data import _vtab_transforms, vtab
from randlora.reporting.vtab import vtab_group_table


class Backbone(ImageBackboneStandIn):
    img_size, mean, std = 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_vtab_transform_resizes_without_crop_or_flip_for_train_and_test():
    train, test = _vtab_transforms({"transform": "resize"}, Backbone(size=224))
    assert train is test
    kinds = [type(t) for t in train.transforms]
    assert T.Resize in kinds and not {T.RandomResizedCrop, T.RandomHorizontalFlip, T.CenterCrop} & set(kinds)
    resize = next(t for t in train.transforms if isinstance(t, T.Resize))
    assert tuple(resize.size) == (224, 224) and resize.interpolation == T.InterpolationMode.BICUBIC
    # a wide KITTI-like image keeps both sides: its left half stays on the left, whole
    image = Image.new("RGB", (1242, 375), (255, 255, 255))
    image.paste((0, 0, 0), (0, 0, 40, 375))  # a black strip at the far left edge
    x = train(image)
    assert x.shape == (3, 224, 224)
    assert x[:, :, 0].mean() < x[:, :, -1].mean()  # the strip survived (a center crop would cut it)
    assert torch.equal(x, train(image))  # deterministic: no random crop, no flip


def test_backbone_transform_stays_available_by_name():
    backbone = Backbone(size=224)
    assert _vtab_transforms({"transform": "backbone"}, backbone) == (backbone.train_transform,
                                                                     backbone.eval_transform)


def test_group_means_table():
    rows = []
    for name, task in vtab.TASKS.items():
        acc = {"natural": 0.8, "specialized": 0.9, "structured": 0.5}[task.group]
        if name != "dsprites_loc":  # one structured task missing: counted as missing, not 0
            rows.append({"task": "vtab", "subtask": name, "backbone": "dinov2", "adapter": "lora", "rank": 8,
                         "status": "ok", "test/acc:mean": acc, "test/acc:std": 0.0, "n": 1})
    table = vtab_group_table(pd.DataFrame(rows))
    assert table.header == ["backbone", "adapter", "natural", "specialized", "structured", "overall", "group_average"]
    natural, specialized, structured, overall, average = table.rows[0][2:]
    assert (natural, specialized, structured) == ("80.0", "90.0", "50.0 (7/8)")
    assert overall == f"{(7 * 80 + 4 * 90 + 7 * 50) / 18:.1f} (18/19)" and average == f"{(80 + 90 + 50) / 3:.1f} (18/19)"
