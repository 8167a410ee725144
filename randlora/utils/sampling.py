"""Training orders that are a function of (seed, epoch), and length-grouped ordering for text datasets.

Every training order here depends only on the training ``seed`` and the epoch number ``k``: Lightning calls
``set_epoch(k)`` before each epoch, and the sampler rebuilds epoch k's permutation from a fresh generator
seeded with ``seed`` (skipping the draws of epochs 0..k-1). A run resumed at epoch k therefore sees the
same batches as the uninterrupted run. Without ``set_epoch`` calls a sampler moves to the next epoch after
each pass, as a stateful sampler would.

- :class:`EpochRandomSampler`: a uniformly random permutation per epoch. It draws exactly what
  ``DataLoader(shuffle=True, generator=torch.Generator().manual_seed(seed))`` drew with ``num_workers=0``
  (per epoch: the loader's int64 base seed, ``randperm(n)`` for the order, and the ``randperm(n)`` that
  ``RandomSampler`` draws for its empty remainder), so runs recorded before it existed keep their order.
- :class:`LengthGroupedSampler` (text): shuffle all indices, cut them into windows of
  ``batch_size * window_batches``, sort each window by length (longest first) and concatenate; consecutive
  ``batch_size`` indices then have similar lengths while the data order stays random.
- :class:`SortedByLengthSampler` (evaluation): all indices sorted by length (order does not change metrics).

Only datasets whose items are ``(text, label)`` are grouped; :func:`text_lengths` returns None otherwise.
"""
from __future__ import annotations

from typing import Iterator, Sequence, Sized

import torch
from torch.utils.data import Dataset, RandomSampler, Sampler


def text_lengths(dataset: Dataset) -> list[int] | None:
    """Character length of each item's text when items are ``(str, label)``; None for other datasets."""
    try:
        first = dataset[0]
    except (IndexError, KeyError, TypeError):
        return None
    if not (isinstance(first, tuple) and len(first) == 2 and isinstance(first[0], str)):
        return None
    return [len(dataset[i][0]) for i in range(len(dataset))]


class _EpochOrder:
    """The epoch counter shared by the samplers: ``set_epoch(k)`` picks epoch k; each pass moves one on."""

    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _next_epoch(self) -> int:
        epoch, self.epoch = self.epoch, self.epoch + 1
        return epoch


class EpochRandomSampler(_EpochOrder, RandomSampler):
    """A random permutation per epoch, a function of (seed, epoch) only (see the module docstring).

    A ``RandomSampler`` subclass, so that under DDP Lightning still replaces it by a shuffling
    ``DistributedSampler`` (whose order is seeded by seed + epoch as well).
    """

    def __init__(self, data_source: Sized, seed: int) -> None:
        super().__init__(data_source)
        self.seed = int(seed)

    def permutation(self, epoch: int) -> list[int]:
        n = len(self.data_source)
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(epoch):  # the draws of the earlier epochs
            torch.empty((), dtype=torch.int64).random_(generator=generator)
            torch.randperm(n, generator=generator)
            torch.randperm(n, generator=generator)
        torch.empty((), dtype=torch.int64).random_(generator=generator)
        return torch.randperm(n, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.permutation(self._next_epoch()))


class LengthGroupedSampler(_EpochOrder, Sampler[int]):
    """Random order with length-sorted windows (see the module docstring); epoch k's order from (seed, k)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, window_batches: int = 50) -> None:
        self.lengths = list(lengths)
        self.window = batch_size * window_batches
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.lengths)

    def order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(epoch):  # the permutations of the earlier epochs
            torch.randperm(len(self.lengths), generator=generator)
        shuffled = torch.randperm(len(self.lengths), generator=generator).tolist()
        grouped = []
        for start in range(0, len(shuffled), self.window):
            grouped.extend(sorted(shuffled[start:start + self.window], key=lambda i: -self.lengths[i]))
        return grouped

    def __iter__(self) -> Iterator[int]:
        return iter(self.order(self._next_epoch()))


class SortedByLengthSampler(Sampler[int]):
    """All indices, longest first: the evaluation order."""

    def __init__(self, lengths: Sequence[int]) -> None:
        self.order = sorted(range(len(lengths)), key=lambda i: -lengths[i])

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)
