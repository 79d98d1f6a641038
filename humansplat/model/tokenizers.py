"""Tokenizers: views (+ Plücker rays) -> view tokens; body vertices -> human geometric tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cameras import project_points
from .blocks import MLP, SelfAttentionBlock
from .window_attention import MIN_DEPTH

__all__ = ["ViewTokenizer", "HumanGeometricTokenizer", "patchify", "unpatchify"]


def patchify(x: Tensor, p: int) -> Tensor:
    """[N,C,H,W] -> [N, (H/p)*(W/p), C*p*p], patches row-major, each patch channel-major."""
    N, C, H, W = x.shape
    x = x.reshape(N, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(N, (H // p) * (W // p), C * p * p)


def unpatchify(x: Tensor, grid: int, r: int) -> Tensor:
    """[N, grid*grid, r*r*C] -> [N, grid*r, grid*r, C]: each token's r x r block in place."""
    N, T, D = x.shape
    C = D // (r * r)
    x = x.reshape(N, grid, grid, r, r, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(N, grid * r, grid * r, C)


class ViewTokenizer(nn.Module):
    """Paper Sec. 3.4.1: concat each view's features with its 6-channel Plücker map
    (o x d, d), cut into p x p patches, map each patch to d by one linear layer."""

    def __init__(self, in_channels: int, patch_size: int, dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear((in_channels + 6) * patch_size ** 2, dim)

    def forward(self, views: Tensor, plucker: Tensor) -> Tensor:
        """views [B,V,C,h,w], plucker [B,V,6,h,w] -> tokens [B,V,T,d]."""
        B, V = views.shape[:2]
        dt = self.proj.weight.dtype  # views may come in another precision (e.g. bf16 latents)
        x = torch.cat([views.to(dt), plucker.to(dt)], dim=2).flatten(0, 1)
        return self.proj(patchify(x, self.patch_size)).reshape(B, V, -1, self.proj.out_features)


class HumanGeometricTokenizer(nn.Module):
    """Paper Sec. 3.4.2 / Eq. 3: project the body vertices into the input view
    (K (R M + t)), bilinearly sample the input view's features there, concat the xyz (and a
    flag saying whether the vertex landed in the image in front of the camera: without it a
    zero sample is ambiguous), map to d and refine with self-attention blocks."""

    def __init__(self, in_channels: int, dim: int, heads: int, n_blocks: int,
                 mlp_ratio: float = 4.0):
        super().__init__()
        self.embed = MLP(dim, 1.0, in_dim=3 + in_channels + 1)
        self.blocks = nn.ModuleList(SelfAttentionBlock(dim, heads, mlp_ratio)
                                    for _ in range(n_blocks))

    def sample(self, points: Tensor, features: Tensor, viewmat: Tensor, K: Tensor) -> Tensor:
        """points [B,L,3]; features [B,C,h,w] of the input view; viewmat [B,4,4]; K [B,3,3]
        for the h x w feature map. Returns the embedding input [B,L,3+C+1]."""
        h, w = features.shape[-2:]
        uv, z = project_points(points.float(), viewmat.float(), K.float())  # [B,L,2], [B,L]
        size = torch.tensor([w, h], dtype=uv.dtype, device=uv.device)
        inside = ((z > MIN_DEPTH) & (uv >= 0).all(-1) & (uv < size).all(-1))
        grid = (uv / size * 2 - 1)[:, None]  # [B,1,L,2]; pixel centres at +0.5 (gsplat)
        f = F.grid_sample(features.float(), grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)[:, :, 0].transpose(1, 2)  # [B,L,C]
        f = f * inside[..., None]  # behind the camera: no image evidence
        return torch.cat([points.float(), f, inside[..., None].float()], dim=-1)

    def forward(self, points: Tensor, features: Tensor, viewmat: Tensor, K: Tensor,
                checkpoint=None) -> Tensor:
        x = self.embed(self.sample(points, features, viewmat, K))
        for blk in self.blocks:
            x = checkpoint(blk, x) if checkpoint is not None else blk(x)  # see model._ckpt
        return x
