"""Exact triangle z-buffer for meshes (bodies, dressed synthetic subjects, overlays).

One rasterizer for every mesh picture in the package: the projection synthesizer's views, the
synthetic training renders, the fitted-body overlay and the fit's silhouette IoU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import project_points

__all__ = ["MeshRaster", "rasterize_mesh"]


@dataclass
class MeshRaster:
    """A triangle mesh rasterised into one camera (pixel centres at +0.5, as everywhere).

    face_ids:  [H,W] int64 nearest face at each pixel centre, -1 where none.
    bary:      [H,W,3] perspective-correct barycentric weights of that face's corners.
    depth:     [H,W] camera-space z of the nearest surface, +inf where empty.
    depth_far: [H,W] camera-space z of the farthest surface (the back of the body), -inf
               where empty.
    """

    face_ids: Tensor
    bary: Tensor
    depth: Tensor
    depth_far: Tensor

    @property
    def coverage(self) -> Tensor:
        """[H,W] bool: pixels whose centre a face covers."""
        return self.face_ids >= 0


def _cross2(a: Tensor, b: Tensor) -> Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


@torch.no_grad()
def rasterize_mesh(vertices: Tensor, faces: Tensor, viewmat: Tensor, K: Tensor, width: int,
                   height: int, *, near_plane: float = 0.01,
                   max_candidates: int = 1 << 22) -> MeshRaster:
    """Exact z-buffer of a triangle mesh: vertices [N,3] (world), faces [F,3] int64,
    viewmat [4,4] world-to-camera (OpenCV), K [3,3]. Faces with a corner nearer than
    ``near_plane`` are skipped (no clipping: meant for bodies in front of the camera).

    Vectorised: every face lists the pixel centres of its bounding box, all are tested at once
    (in chunks of ``max_candidates``) with edge functions, and the nearest wins per pixel."""
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be [N,3], got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be [F,3], got {tuple(faces.shape)}")
    dev = vertices.device
    v = vertices.float()
    uv, z = project_points(v, viewmat[None].float(), K[None].float())
    uv, z = uv[0], z[0]
    f = faces.long()
    fz = z[f]  # [F,3]
    fuv = uv[f]  # [F,3,2]
    lo = fuv.min(dim=1).values
    hi = fuv.max(dim=1).values
    # pixel centres c + 0.5 inside [lo, hi]
    x0 = torch.ceil(lo[:, 0] - 0.5).clamp(min=0)
    x1 = torch.floor(hi[:, 0] - 0.5).clamp(max=width - 1)
    y0 = torch.ceil(lo[:, 1] - 0.5).clamp(min=0)
    y1 = torch.floor(hi[:, 1] - 0.5).clamp(max=height - 1)
    area = _cross2(fuv[:, 1] - fuv[:, 0], fuv[:, 2] - fuv[:, 0])
    ok = (fz > near_plane).all(dim=1) & (area.abs() > 1e-12) & (x1 >= x0) & (y1 >= y0)
    nx = torch.where(ok, x1 - x0 + 1, torch.zeros_like(x0)).long()
    ny = torch.where(ok, y1 - y0 + 1, torch.zeros_like(y0)).long()
    counts = nx * ny
    fids = counts.nonzero().squeeze(1)

    HW = width * height
    depth = torch.full((HW,), math.inf, device=dev)
    depth_far = torch.full((HW,), -math.inf, device=dev)
    face_ids = torch.full((HW,), -1, dtype=torch.long, device=dev)
    bary = torch.zeros(HW, 3, device=dev)
    if fids.numel() == 0:
        return MeshRaster(face_ids.view(height, width), bary.view(height, width, 3),
                          depth.view(height, width), depth_far.view(height, width))
    # chunks of faces whose candidate pixels fit in max_candidates (at least one face each)
    cum = torch.cumsum(counts[fids], 0)
    start = 0
    while start < fids.numel():
        done = int(cum[start - 1]) if start else 0
        stop = int(torch.searchsorted(cum, done + max_candidates, right=True))
        stop = max(stop, start + 1)
        chunk = fids[start:stop]
        start = stop
        c = counts[chunk]
        rep = torch.repeat_interleave(torch.arange(chunk.numel(), device=dev), c)
        local = torch.arange(int(c.sum()), device=dev) - (torch.cumsum(c, 0) - c)[rep]
        fi = chunk[rep]
        w = nx[fi]
        px = x0[fi].long() + local % w
        py = y0[fi].long() + local // w
        p = torch.stack([px, py], -1).float() + 0.5
        a, b, cc = fuv[fi, 0], fuv[fi, 1], fuv[fi, 2]
        w0 = _cross2(b - p, cc - p) / area[fi]
        w1 = _cross2(cc - p, a - p) / area[fi]
        w2 = 1.0 - w0 - w1
        bw = torch.stack([w0, w1, w2], -1)
        inside = (bw >= -1e-6).all(dim=1)
        if not bool(inside.any()):
            continue
        bw, fi = bw[inside], fi[inside]
        pix = (py * width + px)[inside]
        q = bw / fz[fi]  # perspective-correct: 1/z is affine in screen space
        zc = 1.0 / q.sum(dim=1)
        bw = q * zc[:, None]
        depth_far.scatter_reduce_(0, pix, zc, "amax")
        new_min = torch.full((HW,), math.inf, device=dev).scatter_reduce_(0, pix, zc, "amin")
        improved = new_min < depth
        win = (zc == new_min[pix]) & improved[pix]
        # one winner per pixel among equal depths (shared edges): the highest candidate
        cand = win.nonzero().squeeze(1)
        best = torch.full((HW,), -1, dtype=torch.long, device=dev).scatter_reduce_(
            0, pix[cand], cand, "amax")
        sel = best[best >= 0]
        tp = pix[sel]
        depth[tp] = zc[sel]
        face_ids[tp] = fi[sel]
        bary[tp] = bw[sel]
    return MeshRaster(face_ids.view(height, width), bary.view(height, width, 3),
                      depth.view(height, width), depth_far.view(height, width))


