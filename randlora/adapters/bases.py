"""Frozen random bases shared by every adapted layer (VeRA, NoLA, RandLoRA).

Bases are drawn once per model from `basis_seed` with a CPU generator in float32, so they are bit-identical on
every machine and device, then moved to the model's device. They are sized to the largest adapted layer and
each layer uses a slice. They are never saved: `checksum` (SHA-256 of the float32 bytes, in creation order)
lets a loaded adapter prove it sees the same bases it was trained with. The one exception are bases that
come from elsewhere (an imported PEFT adapter's projections): `SharedBases.replace` installs them, and
`save_adapter` then stores them in the adapter file, since no seed regenerates them.
"""
from __future__ import annotations

import hashlib
import math

import torch
from torch import nn


def kaiming_uniform(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Kaiming-uniform with a = √5 (nn.Linear's default), fan-in = last dimension, float32 on CPU."""
    tensor = torch.empty(shape, dtype=torch.float32)
    return nn.init.kaiming_uniform_(tensor, a=math.sqrt(5), generator=generator)


def kaiming_uniform_gain_sqrt2(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """PEFT's VeRA init: uniform(±√(6/fan_in)) (kaiming-uniform, gain √2), fan-in = last dimension, float32 on CPU.

    Drawn with one ``uniform_`` call on the generator, as PEFT's ``_kaiming_init`` does, so the same seed and
    shapes give PEFT's tensors. Its bound is √6 ≈ 2.45 times nn.Linear's (a = √5: 1/√fan_in).
    """
    bound = math.sqrt(6.0 / shape[-1])
    return torch.empty(shape, dtype=torch.float32).uniform_(-bound, bound, generator=generator)


def unit_std(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor / tensor.std()`` (the authors' normalisation of every random basis)."""
    std = tensor.std()
    if not torch.isfinite(std) or std == 0:
        raise ValueError(f"random basis of shape {tuple(tensor.shape)} is constant; use a larger layer or 'dense'")
    return tensor / std


def random_basis(shape: tuple[int, ...], kind: str, generator: torch.Generator, min_dim: int) -> torch.Tensor:
    """One basis tensor with unit standard deviation.

    dense: kaiming-uniform; sparse: ternary with P(-1) = P(+1) = 1/6; very_sparse: P(±1) = 1/(2√min_dim) each
    (PEFT's min_dim: the smaller of the largest adapted output and input widths).
    Every kind is divided by its sample standard deviation (as in the paper's code).
    """
    if kind == "dense":
        basis = kaiming_uniform(shape, generator)
    else:
        p = 1 / 6 if kind == "sparse" else 1 / (2 * math.sqrt(min_dim))
        u = torch.rand(shape, generator=generator, dtype=torch.float32)
        basis = torch.zeros(shape, dtype=torch.float32)
        basis[u < p] = -1.0
        basis[u > 1 - p] = 1.0
    return unit_std(basis)


def checksum(tensors: list[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return "sha256:" + digest.hexdigest()


class SharedBases(nn.Module):
    """Holds a method's frozen bases as non-persistent buffers (never in a state dict).

    Every adapted layer keeps a reference to the same instance as its `bases` submodule, so `.to()` moves the
    bases with the model while memory holds one copy. `checksum` is None when the bases were not drawn
    (a model on the `meta` device, used only to count parameters). `stored` is True once `replace` has put
    bases in that `basis_seed` does not regenerate; they are then saved with the adapter.
    """

    def __init__(self, method: str, seed: int, tensors: dict[str, torch.Tensor], checksum_: str | None):
        super().__init__()
        self.method = method
        self.seed = seed
        self.checksum = checksum_
        self.stored = False
        for name, tensor in tensors.items():
            self.register_buffer(name, tensor, persistent=False)

    @torch.no_grad()
    def replace(self, tensors: dict[str, torch.Tensor]) -> None:
        """Use `tensors` (same names and shapes as the drawn bases) instead; the checksum becomes theirs."""
        own = dict(self.named_buffers(recurse=False))
        if set(tensors) != set(own):
            raise ValueError(f"{self.method} bases: got {sorted(tensors)}, expected {sorted(own)}")
        for name, tensor in tensors.items():
            if tuple(tensor.shape) != tuple(own[name].shape):
                raise ValueError(f"{self.method} basis {name}: shape {tuple(tensor.shape)}, expected "
                                 f"{tuple(own[name].shape)}")
            own[name].copy_(tensor)
        self.stored = True
        self.checksum = checksum([b for _, b in self.named_buffers(recurse=False)])

    def extra_repr(self) -> str:
        shapes = ", ".join(f"{n}={tuple(b.shape)}" for n, b in self.named_buffers(recurse=False))
        return f"method={self.method}, seed={self.seed}, {shapes}"
