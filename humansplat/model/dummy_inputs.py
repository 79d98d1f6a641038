"""Model inputs of the right shapes and conventions, for smoke tests and benchmarks.

Not data: the views are noise and the "body" is points on the surface of a capsule figure
(1.75 m, A-pose, +y up, centred at the origin, facing +z), so body tokens spread over the
image like a real body mesh's vertices do. The camera rig is the real one: the input view
at azimuth 0 plus the generated views evenly spaced in azimuth (``orbit_cameras``)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..cameras import DEFAULT_FOVY_DEG, orbit_cameras
from ..config import ModelConfig
from .inputs import ModelInputs

__all__ = ["ModelInputs", "synthetic_inputs", "rig_azimuths", "capsule_body"]


def rig_azimuths(n_views: int) -> list[float]:
    """The input view (azimuth 0) then n_views - 1 generated views evenly spaced from 0."""
    n_gen = n_views - 1
    return [0.0] + [360.0 * i / n_gen for i in range(n_gen)] if n_gen else [0.0]


# (start, end, radius) in metres; a sphere when start == end.
_CAPSULES = (
    ((0.0, 0.0, 0.0), (0.0, 0.50, 0.0), 0.15),  # torso
    ((0.0, 0.50, 0.0), (0.0, 0.62, 0.0), 0.06),  # neck
    ((0.0, 0.74, 0.02), (0.0, 0.74, 0.02), 0.11),  # head
    ((0.19, 0.46, 0.0), (0.52, -0.02, 0.02), 0.05),  # arms (A-pose)
    ((-0.19, 0.46, 0.0), (-0.52, -0.02, 0.02), 0.05),
    ((0.10, -0.02, 0.0), (0.13, -0.85, 0.0), 0.07),  # legs
    ((-0.10, -0.02, 0.0), (-0.13, -0.85, 0.0), 0.07),
)


def capsule_body(n: int, seed: int = 0) -> Tensor:
    """[n,3] points on the surface of the capsule figure, uniform by area."""
    g = torch.Generator().manual_seed(seed)
    a = torch.tensor([c[0] for c in _CAPSULES])
    b = torch.tensor([c[1] for c in _CAPSULES])
    r = torch.tensor([c[2] for c in _CAPSULES])
    length = (b - a).norm(dim=-1)
    area = torch.where(length > 0, 2 * torch.pi * r * length, 4 * torch.pi * r ** 2)
    part = torch.multinomial(area, n, replacement=True, generator=g)
    axis = torch.where(length[:, None] > 0, (b - a) / length.clamp(min=1e-9)[:, None],
                       torch.tensor([0.0, 1.0, 0.0]))
    # Two unit vectors across each axis.
    helper = torch.where(axis[:, :1].abs() < 0.9, torch.tensor([1.0, 0, 0]),
                         torch.tensor([0, 0, 1.0]))
    u = torch.nn.functional.normalize(torch.linalg.cross(axis, helper, dim=-1), dim=-1)
    w = torch.linalg.cross(axis, u, dim=-1)
    t = torch.rand(n, generator=g)
    theta = 2 * torch.pi * torch.rand(n, generator=g)
    sphere = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    side = (a[part] + t[:, None] * (b - a)[part]
            + r[part, None] * (torch.cos(theta)[:, None] * u[part]
                               + torch.sin(theta)[:, None] * w[part]))
    return torch.where((length[part] > 0)[:, None], side, a[part] + r[part, None] * sphere)


def synthetic_inputs(config: ModelConfig, batch_size: int = 1, n_body_vertices: int = 6890,
                     radius: float = 2.6, seed: int = 0, device=None) -> ModelInputs:
    g = torch.Generator().manual_seed(seed)
    V, C, f = config.n_views, config.in_channels, config.feature_size
    cams = orbit_cameras(rig_azimuths(V), 0.0, radius, fovy_deg=DEFAULT_FOVY_DEG,
                         width=config.image_size, height=config.image_size)
    if config.space == "pixel":
        views = torch.rand(batch_size, V, C, f, f, generator=g)
    else:
        views = torch.randn(batch_size, V, C, f, f, generator=g)
    body = torch.stack([capsule_body(n_body_vertices, seed + i) for i in range(batch_size)])
    vm = cams.viewmats[None].expand(batch_size, -1, -1, -1).contiguous()
    Ks = cams.Ks[None].expand(batch_size, -1, -1, -1).contiguous()
    return ModelInputs(views, vm, Ks, body, config.input_view).to(device)
