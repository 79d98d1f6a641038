"""Transformer blocks: pre-norm self-attention and projection-aware cross-attention.

All attention goes through ``torch.nn.functional.scaled_dot_product_attention`` so CUDA
picks the flash / memory-efficient kernels (and CPU its fused kernel)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .window_attention import WindowIndex, windowed_attention

__all__ = ["MLP", "SelfAttentionBlock", "WindowCrossAttention", "CrossAttentionBlock",
           "init_weights"]


def init_weights(module: nn.Module) -> None:
    """Truncated-normal linear weights, zero biases, unit LayerNorms (ViT practice)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class MLP(nn.Module):
    def __init__(self, dim: int, ratio: float = 4.0, out_dim: int | None = None,
                 in_dim: int | None = None):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(in_dim or dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SelfAttentionBlock(nn.Module):
    """x + SelfAttention(LN(x)); x + FFN(LN(x)). x [B,N,d]."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:
        B, N, D = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(B, N, 3, self.heads, D // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B,h,N,dh]
        a = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(a.transpose(1, 2).reshape(B, N, D))
        return x + self.mlp(self.norm2(x))


class WindowCrossAttention(nn.Module):
    """View tokens (queries) attend to body tokens (keys/values).

    With a :class:`WindowIndex` each view token sees only the body tokens in its window; a
    token whose window is empty comes out exactly unchanged. Without one (``k_win=None``,
    the authors' released behaviour) every view token sees every body token.
    Returns x + update, x [B,N,d], body [B,L,d]."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, body: Tensor, index: WindowIndex | None) -> Tensor:
        B, N, D = x.shape
        L = body.shape[1]
        h, dh = self.heads, D // self.heads
        q = self.q(self.norm_q(x))
        kv = self.kv(self.norm_kv(body)).reshape(B, L, 2, h, dh)  # keys, then values
        if index is None:
            k, v = kv.permute(2, 0, 3, 1, 4)  # [B,h,L,dh] each
            a = F.scaled_dot_product_attention(q.reshape(B, N, h, dh).transpose(1, 2), k, v)
            return x + self.proj(a.transpose(1, 2).reshape(B, N, D))
        out, ids = windowed_attention(q.reshape(B * N, h, dh), kv.reshape(B * L, 2, h, dh),
                                      index)
        update = self.proj(out.reshape(-1, D))  # only the tokens that saw a body token
        return x.reshape(B * N, D).index_add(0, ids, update.to(x.dtype)).reshape(B, N, D)


class CrossAttentionBlock(nn.Module):
    """Inter-attention block (paper Eq. 4): projection-aware cross-attention, then FFN."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.attn = WindowCrossAttention(dim, heads)
        self.norm = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio)

    def forward(self, x: Tensor, body: Tensor, index: WindowIndex | None) -> Tensor:
        x = self.attn(x, body, index)
        return x + self.mlp(self.norm(x))
