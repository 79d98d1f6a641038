"""The splat seen from several cameras: colour, silhouette and depth per view, the evidence
the clothed surface is carved from and the texture is baked from.

One render per image size gives colour and the expected surface position at once: the
Gaussians carry ``[r, g, b, x, y, z]`` as colour, so a pixel holds the alpha-weighted mean
colour and world position of what it sees (camera depth is affine in the position, so the
depth of that mean is the mean depth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import DEFAULT_FOVY_DEG, Cameras, orbit_cameras, project_points
from ..gaussians import Gaussians

__all__ = ["SplatView", "render_splat_views", "export_cameras", "sample_image"]

# orbit views around the splat: (azimuths, elevation) rings; the input camera comes first
ORBIT_RINGS = (((0, 45, 90, 135, 180, 225, 270, 315), 5.0),
               ((22.5, 112.5, 202.5, 292.5), 50.0))


@dataclass
class SplatView:
    """One camera's view of the splat.

    viewmat [4,4] world-to-camera (OpenCV), K [3,3], width/height in px;
    rgb [H,W,3] colour on black (premultiplied by alpha), alpha [H,W] in [0,1],
    depth [H,W] camera z of the mean surface (+inf where alpha < 0.05)."""

    viewmat: Tensor
    K: Tensor
    width: int
    height: int
    rgb: Tensor
    alpha: Tensor
    depth: Tensor

    @property
    def eye(self) -> Tensor:
        """[3] the camera centre in the world."""
        R, t = self.viewmat[:3, :3], self.viewmat[:3, 3]
        return -R.T @ t

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """points [...,3] -> pixel coordinates [...,2] (x, y) and camera z [...]."""
        shp = points.shape[:-1]
        uv, z = project_points(points.reshape(-1, 3), self.viewmat[None], self.K[None])
        return uv[0].reshape(*shp, 2), z[0].reshape(shp)


def export_cameras(g: Gaussians, size: int = 128, margin: float = 1.25,
                   fovy_deg: float = DEFAULT_FOVY_DEG) -> Cameras:
    """Orbit cameras (``ORBIT_RINGS``) that hold every visible Gaussian with a margin, so
    that leaving a view's frame means leaving the splat."""
    keep = g.opacities.detach().cpu() >= 0.05
    means = g.means.detach().float().cpu()
    means = means[keep] if int(keep.sum()) > 0 else means
    lo, hi = means.min(0).values, means.max(0).values
    target = ((lo + hi) / 2).tolist()
    half = float((hi - lo).norm()) / 2  # a sphere around the bounds: safe at any elevation
    radius = margin * half / math.sin(math.radians(fovy_deg) / 2)
    az = [a for ring, _ in ORBIT_RINGS for a in ring]
    el = [e for ring, e in ORBIT_RINGS for _ in ring]
    return orbit_cameras(az, el, radius, target=target, fovy_deg=fovy_deg, width=size,
                         height=size)


@torch.no_grad()
def render_splat_views(g: Gaussians, viewmats: Tensor, Ks: Tensor, width: int,
                       height: int) -> list[SplatView]:
    """Render the splat ``g`` into C cameras (viewmats [C,4,4], Ks [C,3,3]) of one size."""
    from ..render import rasterize

    dev = g.means.device
    colors = torch.cat([g.rgb.float(), g.means.float()], 1)  # [N,6]
    vm = viewmats.to(dev, torch.float32)
    Ks_ = Ks.to(dev, torch.float32)
    img, alpha, _ = rasterize(g.means.float(), g.quats.float(), g.scales.float(),
                              g.opacities.float(), colors, vm, Ks_, int(width), int(height),
                              backgrounds=torch.zeros(len(vm), 6, device=dev))
    img, alpha = img.float().cpu(), alpha[..., 0].float().cpu()
    out = []
    for c in range(len(vm)):
        a = alpha[c]
        pos = img[c, ..., 3:] / a[..., None].clamp_min(1e-6)
        V = viewmats[c].float().cpu()
        z = pos @ V[2, :3] + V[2, 3]
        z = torch.where(a > 0.05, z, torch.full_like(z, math.inf))
        out.append(SplatView(V, Ks[c].float().cpu(), int(width), int(height),
                             img[c, ..., :3].clamp(0, 1), a, z))
    return out


def sample_image(img: Tensor, uv: Tensor, mode: str = "bilinear") -> Tensor:
    """Sample an image [H,W] or [H,W,C] at pixel coordinates uv [N,2] (pixel centres at
    +0.5; outside the frame: the border value). Returns [N] or [N,C]."""
    squeeze = img.ndim == 2
    x = img[None, None] if squeeze else img.permute(2, 0, 1)[None]
    H, W = x.shape[-2:]
    grid = torch.stack([uv[:, 0] / W * 2 - 1, uv[:, 1] / H * 2 - 1], -1)[None, None]
    s = F.grid_sample(x.float(), grid.float(), mode=mode, padding_mode="border",
                      align_corners=False)[0, :, 0]  # [C,N]
    return s[0] if squeeze else s.T
