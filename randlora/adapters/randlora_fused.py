"""RandLoRA's fused autograd paths: custom ``torch.autograd.Function``s that save only x (or h) and the
trainable vectors, and re-form U (n·r × m) or W in backward, plus the per-dtype cast cache of the shared bases.

The equation, the conventions and the layer are in :mod:`randlora.adapters.randlora`; every function here computes
exactly what the layer's plain formula y = W0 x + b + s ΔW x gives (tests/test_adapters.py and
tests/test_adapter_fastpaths.py compare them), only with less memory and fewer weight-sized temporaries.
"""
from __future__ import annotations

import weakref

import torch
from torch.nn import functional as F

from .bases import SharedBases


# Each function saves only inputs it needs (x or h, the trainable vectors, and the frozen bases, which are
# buffers and cost nothing to keep) and re-forms U (n·r × m, cheap, elementwise) or W in backward; nothing of
# the n-fold expanded size and nothing weight-sized is kept between forward and backward.
def _scaled_bases(A: torch.Tensor, lam: torch.Tensor, gam: torch.Tensor) -> torch.Tensor:
    """U ∈ R^{nr×m}, row j·r + k = λ_j[k] · A[k] ⊙ γ_j (used inside the autograd functions only)."""
    n, r = lam.shape
    return (A[None] * gam[:, None, :]).mul_(lam[:, :, None]).reshape(n * r, A.shape[1])


def _vector_grads(grad_U: torch.Tensor, A: torch.Tensor, lam: torch.Tensor, gam: torch.Tensor):
    """Gradients of λ (n×r) and γ (n×m) given dL/dU (nr×m):

        dL/dλ_j[k] = Σ_i dL/dU[jr+k, i] A[k, i] γ_j[i],     dL/dγ_j[i] = Σ_k dL/dU[jr+k, i] A[k, i] λ_j[k].

    One n·r·m temporary t = dL/dU ⊙ A, reused in place; a batched GEMV and a row sum (≈ 5× faster on CPU than
    the two einsums, which copy t).
    """
    n, r = lam.shape
    t = grad_U.reshape(n, r, -1) * A[None]
    g_gam = torch.bmm(lam[:, None, :], t)[:, 0]
    g_lam = t.mul_(gam[:, None, :]).sum(-1)
    return g_lam, g_gam


def _param_grads(grad_U: torch.Tensor, A: torch.Tensor, lam: torch.Tensor, gam: torch.Tensor):
    g_lam, g_gam = _vector_grads(grad_U.to(lam.dtype), A.to(lam.dtype), lam, gam)
    return g_lam, g_gam


class ScaledBases(torch.autograd.Function):
    """U = stack_j(λ_j ⊙ A ⊙ γ_j), saving only the inputs (not the n-fold λ ⊙ A product)."""

    @staticmethod
    def forward(ctx, A, lam, gam):
        ctx.save_for_backward(A, lam, gam)
        return _scaled_bases(A, lam, gam)

    @staticmethod
    def backward(ctx, grad_U):
        A, lam, gam = ctx.saved_tensors
        return None, *_param_grads(grad_U, A, lam, gam)


def _adapted_weight(W0, A, B, lam, gam, scale: float, small_is_input: bool, dtype: torch.dtype) -> torch.Tensor:
    """W0 + s ΔW as a d_out × d_in matrix in `dtype`; ΔW = B U (small side = input), else Uᵀ Bᵀ.

    With W0 and B of one dtype this is a single `addmm` (one weight-sized allocation, no separate ΔW).
    """
    U = _scaled_bases(A, lam, gam).to(B.dtype)
    if W0.dtype == B.dtype:
        W = torch.addmm(W0, B, U, alpha=scale) if small_is_input else torch.addmm(W0, U.t(), B.t(), alpha=scale)
    else:
        delta = scale * (B @ U)
        W = W0 + (delta if small_is_input else delta.t()).to(W0.dtype)
    return W.to(dtype)


class DeltaWeight(torch.autograd.Function):
    """ΔW_{M×m} = s · B U, saving only the trainable vectors; U is re-formed in backward."""

    @staticmethod
    def forward(ctx, A, B, lam, gam, scale):
        ctx.save_for_backward(A, B, lam, gam)
        ctx.scale = scale
        return torch.mm(B, _scaled_bases(A, lam, gam).to(B.dtype)).mul_(scale)

    @staticmethod
    def backward(ctx, grad_delta):
        A, B, lam, gam = ctx.saved_tensors
        grad_U = torch.mm(B.t(), grad_delta.to(B.dtype)).mul_(ctx.scale)
        return None, None, *_param_grads(grad_U, A, lam, gam), None


class AdaptedWeight(torch.autograd.Function):
    """W = W0 + s ΔW (parametrization mode) in one `addmm`; gradients to λ, γ (and to W0 if it is trainable)."""

    @staticmethod
    def forward(ctx, W0, A, B, lam, gam, scale, small_is_input):
        ctx.save_for_backward(A, B, lam, gam)
        ctx.scale, ctx.small_is_input = scale, small_is_input
        return _adapted_weight(W0, A, B, lam, gam, scale, small_is_input, W0.dtype)

    @staticmethod
    def backward(ctx, grad_W):
        A, B, lam, gam = ctx.saved_tensors
        G = grad_W.to(B.dtype)
        grad_U = torch.mm(B.t(), G) if ctx.small_is_input else torch.mm(G, B).t()
        grad_W0 = grad_W if ctx.needs_input_grad[0] else None
        return grad_W0, None, None, *_param_grads(grad_U.mul_(ctx.scale), A, lam, gam), None, None


class ProjectOntoBases(torch.autograd.Function):
    """Activation path, small side = input: h = x Uᵀ (tokens × nr). Saves x and the vectors, not U."""

    @staticmethod
    def forward(ctx, x, A, lam, gam):
        ctx.save_for_backward(x, A, lam, gam)
        return x @ _scaled_bases(A, lam, gam).t()

    @staticmethod
    def backward(ctx, grad_h):
        x, A, lam, gam = ctx.saved_tensors
        U = _scaled_bases(A, lam, gam)
        grad_x = grad_h @ U if ctx.needs_input_grad[0] else None
        grad_U = torch.mm(grad_h.reshape(-1, U.shape[0]).t(), x.reshape(-1, U.shape[1]))
        return grad_x, None, *_param_grads(grad_U, A, lam, gam)


class ExpandFromBases(torch.autograd.Function):
    """Activation path, small side = output: y += s · h U in place (h = x B, tokens × nr). Saves h, not U."""

    @staticmethod
    def forward(ctx, y, h, A, lam, gam, scale):
        U = _scaled_bases(A, lam, gam)
        y.view(-1, U.shape[1]).addmm_(h.reshape(-1, U.shape[0]), U, alpha=scale)
        ctx.mark_dirty(y)
        ctx.save_for_backward(h, A, lam, gam)
        ctx.scale = scale
        return y

    @staticmethod
    def backward(ctx, grad_y):
        h, A, lam, gam = ctx.saved_tensors
        U = _scaled_bases(A, lam, gam)
        g2 = grad_y.reshape(-1, U.shape[1])
        grad_h = (g2 @ (ctx.scale * U).t()).view(h.shape) if ctx.needs_input_grad[1] else None
        grad_U = torch.mm(h.reshape(-1, U.shape[0]).t(), g2).mul_(ctx.scale)
        return grad_y, grad_h, None, *_param_grads(grad_U, A, lam, gam), None


_CASTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # SharedBases -> {(name, dtype): (key, tensor)}


def cast_basis(bases: SharedBases, name: str, dtype: torch.dtype) -> torch.Tensor:
    """The shared basis `name` in `dtype`, converted once and reused by every layer and step (bf16 autocast).

    The copy is keyed on the source's storage, device and version, so moving or editing the bases redoes it.
    """
    tensor = getattr(bases, name)
    if tensor.dtype == dtype or torch.compiler.is_compiling():
        return tensor.to(dtype)
    root = tensor._base if tensor._base is not None else tensor  # row views of a shared B: cast the shared one
    cache = _CASTS.setdefault(bases, {})
    key = (root.data_ptr(), root.device, root._version)
    hit = cache.get((key[0], dtype))
    if hit is None or hit[0] != key:
        hit = cache[(key[0], dtype)] = (key, root.detach().to(dtype))
    if root is tensor:
        return hit[1]
    return hit[1].as_strided(tensor.size(), tensor.stride(), tensor.storage_offset() - root.storage_offset())


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    kind = x.device.type
    if torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return x.dtype


class FusedLinear(torch.autograd.Function):
    """y = x (W0 + s ΔW)ᵀ + b with one matmul; backward re-forms W instead of storing it.

    Saves x and the (frozen or trainable-vector) inputs only. Gradients: x, λ, γ, and the bias if trainable.
    Backward: dL/dx = g W (W re-formed, then freed), dL/dW = gᵀ x (weight-sized, freed after the projection
    dL/dU = s Bᵀ dL/dW_{M×m}), then λ and γ from dL/dU.
    """

    @staticmethod
    def forward(ctx, x, W0, bias, A, B, lam, gam, scale, small_is_input):
        dtype = _compute_dtype(x)
        with torch.autocast(x.device.type, enabled=False):
            W = _adapted_weight(W0, A, B, lam, gam, scale, small_is_input, dtype)
            y = F.linear(x.to(dtype), W, None if bias is None else bias.to(dtype))
        ctx.save_for_backward(x, W0, bias, A, B, lam, gam)
        ctx.scale, ctx.small_is_input, ctx.dtype = scale, small_is_input, dtype
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, W0, bias, A, B, lam, gam = ctx.saved_tensors
        dtype, scale = ctx.dtype, ctx.scale
        g = grad_y.to(dtype)
        grad_x = grad_bias = g_lam = g_gam = None
        with torch.autocast(x.device.type, enabled=False):
            if ctx.needs_input_grad[0]:
                W = _adapted_weight(W0, A, B, lam, gam, scale, ctx.small_is_input, dtype)
                grad_x = (g @ W).to(x.dtype)
                del W
            g2 = g.reshape(-1, g.shape[-1])
            if ctx.needs_input_grad[5] or ctx.needs_input_grad[6]:
                G = torch.mm(g2.t(), x.reshape(-1, x.shape[-1]).to(dtype))  # dL/dW, (d_out × d_in)
                Bd = B.to(dtype)
                grad_U = torch.mm(Bd.t(), G) if ctx.small_is_input else torch.mm(G, Bd).t()
                del G
                g_lam, g_gam = _param_grads(grad_U.mul_(scale), A, lam, gam)
            if bias is not None and ctx.needs_input_grad[2]:
                grad_bias = g2.sum(0).to(bias.dtype)
        return grad_x, None, grad_bias, None, None, g_lam, g_gam, None, None
