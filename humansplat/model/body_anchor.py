"""Body anchors: where the fitted body lies along each pixel's ray, per view.

An addition to the paper (``ModelConfig.body_anchor``), made so a small model trained for an
hour on a CPU starts where the structure prior already is: every view's body depth map

- enters the view tokenizer as 2 extra channels (normalised depth, coverage), and
- is the point each pixel-aligned Gaussian starts from along its ray: the head predicts a
  bounded residual ``t = t_body + anchor_range * tanh(raw)`` instead of a depth in
  [near, far].

The map is built from the body's vertices only (no faces, so any body model works): each
vertex is splatted into the cell it projects to, keeping the nearest (camera z), holes are
closed by a few min-pool passes (coverage decays with each pass: 1, 0.75, 0.5, ...), and cells
still empty take the depth of the body's centroid (coverage 0). Depths are converted from
camera z to distance along the cell centre's ray, the head's parametrisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import project_points
from .window_attention import MIN_DEPTH

__all__ = ["BodyAnchors", "body_anchor_maps", "ANCHOR_DEPTH_SCALE"]

# metres per unit of the tokenizer's depth channel (a body is ~0.5 m deep)
ANCHOR_DEPTH_SCALE = 0.5


@dataclass
class BodyAnchors:
    """Per-view body maps at one grid resolution G."""

    ray_depth: Tensor  # [B,V,G,G] distance along the cell centre's ray to the body (metres)
    coverage: Tensor  # [B,V,G,G] in [0,1]: 1 = a vertex hit the cell, 0 = far from the body
    centre_depth: Tensor  # [B,V] camera z of the body centroid

    def channels(self, size: int) -> Tensor:
        """[B,V,2,size,size] tokenizer channels: (z - centroid z) / 0.5 m, coverage."""
        B, V, G, _ = self.ray_depth.shape
        d = (self.ray_depth - self.centre_depth[..., None, None]) / ANCHOR_DEPTH_SCALE
        x = torch.stack([d, self.coverage], dim=2).flatten(0, 1)  # [BV,2,G,G]
        if size != G:
            x = F.interpolate(x, size=(size, size), mode="nearest" if size > G else "area")
        return x.reshape(B, V, 2, size, size)


def _ray_scale(Ks: Tensor, G: int) -> Tensor:
    """[N,G,G] |K^-1 (u, v, 1)| at cell centres: ray distance = camera z * this."""
    dev, dt = Ks.device, Ks.dtype
    c = torch.arange(G, device=dev, dtype=dt) + 0.5
    v, u = torch.meshgrid(c, c, indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], -1).reshape(1, -1, 3)
    d = pix @ torch.linalg.inv(Ks).transpose(-1, -2)  # [N,GG,3]
    return d.norm(dim=-1).reshape(-1, G, G)


@torch.no_grad()
def body_anchor_maps(points: Tensor, viewmats: Tensor, Ks: Tensor, image_size: int, grid: int,
                     fill_passes: int = 4) -> BodyAnchors:
    """points [B,L,3] world; viewmats [B,V,4,4]; Ks [B,V,3,3] for the ``image_size`` image;
    ``grid`` = G cells per side. No gradient flows (the body is an input, not a prediction)."""
    B, L, _ = points.shape
    V = viewmats.shape[1]
    G = grid
    vm = viewmats.reshape(B * V, 4, 4).float()
    K = Ks.reshape(B * V, 3, 3).float().clone()
    K[:, :2] *= G / image_size  # intrinsics of the G x G grid
    pts = points.float()[:, None].expand(B, V, L, 3).reshape(B * V, L, 3)
    uv, z = project_points(pts, vm, K)  # [BV,L,2], [BV,L]
    ij = uv.floor().long()
    ok = (z > MIN_DEPTH) & (ij >= 0).all(-1) & (ij < G).all(-1)
    cell = (ij[..., 1] * G + ij[..., 0]).clamp(0, G * G - 1)
    inf = torch.finfo(z.dtype).max
    depth = torch.full((B * V, G * G), inf, device=z.device, dtype=z.dtype)
    depth.scatter_reduce_(1, cell, torch.where(ok, z, torch.full_like(z, inf)), "amin")
    depth = depth.reshape(B * V, 1, G, G)
    cov = (depth < inf).float()

    # Close holes: a min-pool (max-pool of -z) over 3x3, only into empty cells.
    for k in range(1, fill_passes + 1):
        empty = depth >= inf
        if not bool(empty.any()):
            break
        neg = torch.where(empty, torch.full_like(depth, -inf), -depth)
        filled = -F.max_pool2d(neg, 3, stride=1, padding=1)
        newly = empty & (filled < inf)
        depth = torch.where(newly, filled, depth)
        cov = torch.where(newly, torch.full_like(cov, 1.0 - k / (fill_passes + 1)), cov)

    centre = project_points(points.float().mean(1, keepdim=True)[:, None].expand(
        B, V, 1, 3).reshape(B * V, 1, 3), vm, K)[1][:, 0]  # [BV]
    depth = torch.where(depth >= inf, centre.view(-1, 1, 1, 1).expand_as(depth), depth)
    ray = depth[:, 0] * _ray_scale(K, G)
    return BodyAnchors(ray_depth=ray.reshape(B, V, G, G), coverage=cov.reshape(B, V, G, G),
                       centre_depth=centre.reshape(B, V))
