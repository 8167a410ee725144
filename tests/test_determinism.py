"""Determinism: the same seed and config give identical metrics; ``adapter.basis_seed`` changes the random bases
and nothing else (data, data order, head init, the RNG stream that drives dropout); every result records both
seeds; epoch k's training order is a function of (seed, k) alone."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from helpers_resume import COMPARED_METRICS, NO_LIMITS, SYNTHETIC, one_thread  # noqa: F401 (autouse fixture)
from helpers_training import training_config, write_tweets_csv
from randlora.adapters import basis_checksum
from randlora.train import build_run, train
from randlora.utils.sampling import EpochRandomSampler, LengthGroupedSampler


def _synthetic(tmp_path, *overrides: str, run: str):
    return training_config(tmp_path, [*SYNTHETIC, *NO_LIMITS, "trainer.max_epochs=2", *overrides], run=run)


def test_same_seed_and_config_give_identical_metrics_and_record_both_seeds(tmp_path):
    first = train(_synthetic(tmp_path, "seed=3", run="first"))
    second = train(_synthetic(tmp_path, "seed=3", run="second"))
    assert first["status"] == second["status"] == "ok"
    assert {k: first["metrics"][k] for k in COMPARED_METRICS} == {k: second["metrics"][k] for k in COMPARED_METRICS}
    assert first["basis_checksum"] == second["basis_checksum"] and first["basis_checksum"].startswith("sha256:")
    assert (first["seed"], first["basis_seed"]) == (3, 0)

    other_bases = train(_synthetic(tmp_path, "seed=3", "adapter.basis_seed=5", run="other_bases"))
    assert (other_bases["seed"], other_bases["basis_seed"]) == (3, 5)
    assert other_bases["basis_checksum"] != first["basis_checksum"]
    assert other_bases["metrics"]["test/rel_error"] != first["metrics"]["test/rel_error"]


def _first_batch(loader: DataLoader) -> list:
    inputs, labels = next(iter(loader))
    return [inputs, labels]


def test_basis_seed_changes_the_bases_only(tmp_path):
    csv = write_tweets_csv(tmp_path / "tweets.csv")
    runs, rng_after_build = {}, {}
    for basis_seed in (0, 1):
        cfg = training_config(tmp_path, ["backbone=tiny_bert", "adapter=randlora", "adapter.rank=4",
                                         f"adapter.basis_seed={basis_seed}", f"task.path={csv}", "task.train_size=40",
                                         "task.val_size=16", "task.test_size=16"])
        runs[basis_seed] = build_run(cfg)
        rng_after_build[basis_seed] = torch.get_rng_state()  # the stream that dropout draws from next
    zero, one = runs[0], runs[1]
    assert basis_checksum(zero.backbone) != basis_checksum(one.backbone)

    # Everything that is not a random basis is the same: frozen weights, head init, adapter init, data, order.
    state_zero, state_one = zero.module.state_dict(), one.module.state_dict()
    assert state_zero.keys() == state_one.keys()
    assert all(torch.equal(state_zero[k], state_one[k]) for k in state_zero)
    heads = [n for n, _ in zero.backbone.named_parameters() if n.startswith(tuple(zero.backbone.head_prefixes))]
    assert heads  # the fresh classification head is among the parameters compared above
    assert torch.equal(rng_after_build[0], rng_after_build[1])
    assert [zero.data.train[i] for i in range(len(zero.data.train))] == \
        [one.data.train[i] for i in range(len(one.data.train))]
    batch_zero, batch_one = _first_batch(zero.loaders.train), _first_batch(one.loaders.train)
    assert batch_zero[0]["input_ids"].equal(batch_one[0]["input_ids"]) and batch_zero[1].equal(batch_one[1])


def test_epoch_order_is_a_function_of_seed_and_epoch():
    data = list(range(23))
    sampler = EpochRandomSampler(data, seed=4)
    passes = [list(sampler) for _ in range(4)]  # without set_epoch: the next epoch on every pass
    assert len({tuple(p) for p in passes}) == 4 and all(sorted(p) == data for p in passes)
    fresh = EpochRandomSampler(data, seed=4)
    fresh.set_epoch(2)  # what a run resumed at epoch 2 draws
    assert list(fresh) == passes[2]
    assert list(EpochRandomSampler(data, seed=5)) != passes[0]

    # The order runs recorded before this sampler existed: DataLoader(shuffle=True, seeded generator).
    stateful = DataLoader(data, batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(4))
    assert [[int(i) for batch in stateful for i in batch] for _ in range(4)] == passes

    lengths = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9]
    grouped = LengthGroupedSampler(lengths, batch_size=2, seed=1, window_batches=2)
    grouped_passes = [list(grouped) for _ in range(3)]
    resumed = LengthGroupedSampler(lengths, batch_size=2, seed=1, window_batches=2)
    resumed.set_epoch(2)
    assert list(resumed) == grouped_passes[2] and grouped_passes[1] != grouped_passes[2]
