"""Cameras: the one place for the project's camera conventions.

World: right-handed, metres, +y up, the person stands at the origin facing +z.
Cameras: OpenCV (x right, y down, z forward). ``viewmats`` are world-to-camera [C,4,4] and
``Ks`` are pinhole intrinsics [C,3,3], exactly what ``gsplat.rasterization`` takes. Pixel
(i, j) covers [i, i+1) x [j, j+1); its centre is (i + 0.5, j + 0.5), as in gsplat.

Orbit cameras: azimuth 0 sits on +z looking at the target (it sees the person's front);
azimuth grows counter-clockwise seen from above (90 deg = camera on +x, which sees the
person's left side); positive elevation puts the camera above the target, looking down.
SV3D speaks polar = 90 - elevation and azimuth relative to the input view; convert with
:func:`to_sv3d_angles` / :func:`from_sv3d_angles` at the SV3D boundary only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor

__all__ = [
    "Cameras",
    "CameraCycle",
    "look_at",
    "orbit_positions",
    "orbit_cameras",
    "orthogonal_views",
    "view_azimuths",
    "intrinsics_from_fov",
    "hierarchical_cycles",
    "plucker_rays",
    "pixel_rays",
    "project_points",
    "camera_centers",
    "to_sv3d_angles",
    "from_sv3d_angles",
    "ORTHOGONAL_AZIMUTHS",
    "DEFAULT_FOVY_DEG",
]

ORTHOGONAL_AZIMUTHS: tuple[float, ...] = (0.0, 90.0, 180.0, 270.0)
# The authors' setting (radius 1.4-1.5 for a unit-normalised scene); our bodies are ~1.7 m.
DEFAULT_FOVY_DEG = 39.6


@dataclass
class Cameras:
    """A batch of C pinhole cameras sharing one image size.

    viewmats: [C,4,4] world-to-camera (OpenCV). Ks: [C,3,3]. width/height in pixels.
    """

    viewmats: Tensor
    Ks: Tensor
    width: int
    height: int
    azimuths: Tensor | None = None  # [C] degrees, when built as an orbit
    elevations: Tensor | None = None  # [C] degrees

    def __post_init__(self) -> None:
        if self.viewmats.ndim != 3 or self.viewmats.shape[1:] != (4, 4):
            raise ValueError(f"viewmats must be [C,4,4], got {tuple(self.viewmats.shape)}")
        if self.Ks.shape != (self.viewmats.shape[0], 3, 3):
            raise ValueError(
                f"Ks must be [C,3,3] with C={self.viewmats.shape[0]}, got {tuple(self.Ks.shape)}"
            )
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

    def __len__(self) -> int:
        return self.viewmats.shape[0]

    def __getitem__(self, idx) -> "Cameras":
        sel = lambda t: None if t is None else t[idx]  # noqa: E731
        v = self.viewmats[idx]
        k = self.Ks[idx]
        if v.ndim == 2:  # an int index keeps the batch dimension
            v, k = v[None], k[None]
            sel = lambda t: None if t is None else t[idx].reshape(1)  # noqa: E731
        return Cameras(v, k, self.width, self.height, sel(self.azimuths), sel(self.elevations))

    def to(self, device=None, dtype=None) -> "Cameras":
        f = lambda t: None if t is None else t.to(device=device, dtype=dtype)  # noqa: E731
        return Cameras(f(self.viewmats), f(self.Ks), self.width, self.height,
                       f(self.azimuths), f(self.elevations))

    @property
    def centers(self) -> Tensor:
        """[C,3] camera centres in world space."""
        return camera_centers(self.viewmats)

    def resized(self, width: int, height: int) -> "Cameras":
        """The same cameras for another image size (intrinsics scaled)."""
        Ks = self.Ks.clone()
        Ks[:, 0] *= width / self.width
        Ks[:, 1] *= height / self.height
        return Cameras(self.viewmats, Ks, width, height, self.azimuths, self.elevations)

    @staticmethod
    def cat(cams: Sequence["Cameras"]) -> "Cameras":
        if not cams:
            raise ValueError("Cameras.cat needs at least one Cameras")
        w, h = cams[0].width, cams[0].height
        if any((c.width, c.height) != (w, h) for c in cams):
            raise ValueError("Cameras.cat: all cameras must share one image size")
        opt = lambda name: (  # noqa: E731
            torch.cat([getattr(c, name) for c in cams])
            if all(getattr(c, name) is not None for c in cams) else None)
        return Cameras(torch.cat([c.viewmats for c in cams]), torch.cat([c.Ks for c in cams]),
                       w, h, opt("azimuths"), opt("elevations"))


def _as_tensor(x, dtype=torch.float32, device=None) -> Tensor:
    return torch.as_tensor(x, dtype=dtype, device=device)


def intrinsics_from_fov(fovy_deg: float | Tensor, width: int, height: int,
                        fovx_deg: float | None = None, *, dtype=torch.float32,
                        device=None) -> Tensor:
    """Pinhole K [3,3] (or [C,3,3] for a tensor of fovs) with the principal point at the
    image centre. Square pixels unless ``fovx_deg`` is given."""
    fovy = torch.deg2rad(_as_tensor(fovy_deg, dtype, device))
    fy = 0.5 * height / torch.tan(0.5 * fovy)
    fx = fy if fovx_deg is None else 0.5 * width / torch.tan(
        0.5 * torch.deg2rad(_as_tensor(fovx_deg, dtype, device)))
    fx = torch.broadcast_to(fx, fy.shape)
    K = torch.zeros(*fy.shape, 3, 3, dtype=dtype, device=device)
    K[..., 0, 0] = fx
    K[..., 1, 1] = fy
    K[..., 0, 2] = 0.5 * width
    K[..., 1, 2] = 0.5 * height
    K[..., 2, 2] = 1.0
    return K


def orbit_positions(azimuth_deg, elevation_deg, radius, target=(0.0, 0.0, 0.0), *,
                    dtype=torch.float32, device=None) -> Tensor:
    """Camera centres [C,3] on an orbit around ``target`` (see the module conventions)."""
    az = torch.deg2rad(_as_tensor(azimuth_deg, dtype, device)).reshape(-1)
    el = torch.deg2rad(_as_tensor(elevation_deg, dtype, device)).reshape(-1)
    r = _as_tensor(radius, dtype, device).reshape(-1)
    az, el, r = torch.broadcast_tensors(az, el, r)
    offset = torch.stack([r * torch.cos(el) * torch.sin(az), r * torch.sin(el),
                          r * torch.cos(el) * torch.cos(az)], dim=-1)
    return offset + _as_tensor(target, dtype, device).reshape(-1, 3)


def look_at(eyes: Tensor, targets: Tensor, up=(0.0, 1.0, 0.0)) -> Tensor:
    """OpenCV world-to-camera matrices [C,4,4] for cameras at ``eyes`` [C,3] looking at
    ``targets`` [C,3] (or [3]) with world ``up``. Camera x = right, y = down, z = forward."""
    eyes = torch.as_tensor(eyes)
    targets = torch.broadcast_to(torch.as_tensor(targets, dtype=eyes.dtype, device=eyes.device),
                                 eyes.shape)
    up_t = torch.as_tensor(up, dtype=eyes.dtype, device=eyes.device).expand_as(eyes)
    fwd = torch.nn.functional.normalize(targets - eyes, dim=-1)
    right = torch.linalg.cross(fwd, up_t, dim=-1)
    # Looking straight along `up` makes right degenerate: fall back to world +x.
    degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
    right = torch.where(degenerate, torch.tensor([1.0, 0.0, 0.0], dtype=eyes.dtype,
                                                 device=eyes.device).expand_as(right), right)
    right = torch.nn.functional.normalize(right, dim=-1)
    down = torch.linalg.cross(fwd, right, dim=-1)
    R_c2w = torch.stack([right, down, fwd], dim=-1)  # columns are the camera axes
    viewmats = torch.zeros(*eyes.shape[:-1], 4, 4, dtype=eyes.dtype, device=eyes.device)
    R_w2c = R_c2w.transpose(-1, -2)
    viewmats[..., :3, :3] = R_w2c
    viewmats[..., :3, 3] = -(R_w2c @ eyes.unsqueeze(-1)).squeeze(-1)
    viewmats[..., 3, 3] = 1.0
    return viewmats


def orbit_cameras(azimuths_deg, elevations_deg=0.0, radius=2.6, *, target=(0.0, 0.0, 0.0),
                  fovy_deg: float = DEFAULT_FOVY_DEG, width: int = 512, height: int = 512,
                  dtype=torch.float32, device=None) -> Cameras:
    """Cameras on an orbit around ``target``, all looking at it."""
    eyes = orbit_positions(azimuths_deg, elevations_deg, radius, target, dtype=dtype,
                           device=device)
    tgt = _as_tensor(target, dtype, device).reshape(-1, 3).expand_as(eyes)
    viewmats = look_at(eyes, tgt)
    C = eyes.shape[0]
    K = intrinsics_from_fov(fovy_deg, width, height, dtype=dtype, device=device)
    az = torch.broadcast_to(_as_tensor(azimuths_deg, dtype, device).reshape(-1), (C,))
    el = torch.broadcast_to(_as_tensor(elevations_deg, dtype, device).reshape(-1), (C,))
    return Cameras(viewmats, K.expand(C, 3, 3).clone(), width, height, az.clone(), el.clone())


def orthogonal_views(radius: float = 2.6, elevation_deg: float = 0.0, *,
                     target=(0.0, 0.0, 0.0), fovy_deg: float = DEFAULT_FOVY_DEG,
                     width: int = 512, height: int = 512, start_azimuth_deg: float = 0.0,
                     dtype=torch.float32, device=None) -> Cameras:
    """The 4 orthogonal views (azimuth 0, 90, 180, 270 relative to ``start_azimuth_deg``)."""
    az = [start_azimuth_deg + a for a in ORTHOGONAL_AZIMUTHS]
    return orbit_cameras(az, elevation_deg, radius, target=target, fovy_deg=fovy_deg,
                         width=width, height=height, dtype=dtype, device=device)


def radius_to_fit(extent: float, fovy_deg: float, margin: float = 1.1) -> float:
    """Distance at which an object of vertical size ``extent`` fills the fov (with margin)."""
    return margin * 0.5 * extent / math.tan(math.radians(fovy_deg) / 2)


@dataclass
class CameraCycle:
    """One level of the paper's hierarchical supervision: an orbit of ``n_views`` cameras
    around ``target`` at ``radius`` (full body, upper body or face), weighted by ``weight``
    (the paper's lambda_i)."""

    name: str
    target: tuple[float, float, float]
    radius: float
    n_views: int = 36
    elevation_deg: float = 0.0
    weight: float = 1.0
    fovy_deg: float = DEFAULT_FOVY_DEG
    azimuth_offset_deg: float = 0.0
    extra: dict = field(default_factory=dict)

    def cameras(self, width: int, height: int, *, dtype=torch.float32, device=None) -> Cameras:
        az = self.azimuth_offset_deg + torch.arange(self.n_views, dtype=dtype) * (
            360.0 / self.n_views)
        return orbit_cameras(az, self.elevation_deg, self.radius, target=self.target,
                             fovy_deg=self.fovy_deg, width=width, height=height, dtype=dtype,
                             device=device)


def hierarchical_cycles(body_center=(0.0, 0.0, 0.0), body_height: float = 1.75,
                        chest=None, head=None, n_views: int = 36,
                        fovy_deg: float = DEFAULT_FOVY_DEG,
                        elevation_deg: float = 0.0) -> list[CameraCycle]:
    """The paper's three camera cycles (full body, upper body, face), evenly spaced in
    azimuth. ``chest``/``head`` default to fractions of the height above ``body_center``
    (the body's mid-height point)."""
    cx, cy, cz = (float(v) for v in body_center)
    chest = tuple(chest) if chest is not None else (cx, cy + 0.25 * body_height, cz)
    head = tuple(head) if head is not None else (cx, cy + 0.42 * body_height, cz)
    return [
        CameraCycle("full_body", (cx, cy, cz), radius_to_fit(body_height, fovy_deg, 1.15),
                    n_views, elevation_deg, 1.0, fovy_deg),
        CameraCycle("upper_body", tuple(chest), radius_to_fit(0.55 * body_height, fovy_deg, 1.1),
                    n_views, elevation_deg, 1.0, fovy_deg),
        CameraCycle("face", tuple(head), radius_to_fit(0.2 * body_height, fovy_deg, 1.2),
                    n_views, elevation_deg, 1.0, fovy_deg),
    ]


def camera_centers(viewmats: Tensor) -> Tensor:
    """[C,3] world-space centres of world-to-camera matrices [C,4,4]."""
    R = viewmats[..., :3, :3]
    t = viewmats[..., :3, 3:]
    return -(R.transpose(-1, -2) @ t).squeeze(-1)


def pixel_rays(viewmats: Tensor, Ks: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """Ray origins and unit directions through pixel centres, in world space.

    Returns (origins [C,H,W,3], dirs [C,H,W,3])."""
    C = viewmats.shape[0]
    dev, dt = viewmats.device, viewmats.dtype
    v, u = torch.meshgrid(torch.arange(height, device=dev, dtype=dt) + 0.5,
                          torch.arange(width, device=dev, dtype=dt) + 0.5, indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], dim=-1).reshape(1, -1, 3)  # [1,HW,3]
    d_cam = pix @ torch.linalg.inv(Ks).transpose(-1, -2)  # [C,HW,3]
    R_c2w = viewmats[:, :3, :3].transpose(-1, -2)
    d_world = torch.nn.functional.normalize(d_cam @ R_c2w.transpose(-1, -2), dim=-1)
    origins = camera_centers(viewmats)[:, None, :].expand(C, height * width, 3)
    return origins.reshape(C, height, width, 3), d_world.reshape(C, height, width, 3)


def plucker_rays(viewmats: Tensor, Ks: Tensor, width: int, height: int) -> Tensor:
    """Plücker ray maps [C,6,H,W]: channels (o x d, d) for the ray through each pixel centre."""
    o, d = pixel_rays(viewmats, Ks, width, height)
    return torch.cat([torch.linalg.cross(o, d, dim=-1), d], dim=-1).permute(0, 3, 1, 2)


def project_points(points: Tensor, viewmats: Tensor, Ks: Tensor,
                   eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """Project world points into each camera: ``K (R X + t)``.

    points: [N,3] (shared by all cameras) or [C,N,3]. Returns (uv [C,N,2] in pixels, with
    pixel centres at +0.5 as in gsplat, depth [C,N] = camera-space z; <= 0 means behind)."""
    if points.ndim == 2:
        points = points.unsqueeze(0).expand(viewmats.shape[0], -1, -1)
    R = viewmats[:, :3, :3]
    t = viewmats[:, :3, 3]
    cam = points @ R.transpose(-1, -2) + t[:, None, :]  # [C,N,3]
    z = cam[..., 2]
    z_safe = torch.where(z.abs() < eps, torch.full_like(z, eps), z)
    uvw = cam @ Ks.transpose(-1, -2)
    uv = uvw[..., :2] / z_safe[..., None]
    return uv, z


def view_azimuths(input_viewmat: Tensor, viewmats: Tensor) -> Tensor:
    """Azimuth (degrees, in [-180, 180)) of each camera of ``viewmats`` [T,4,4] about +y,
    relative to ``input_viewmat`` [4,4] (0: the input view, +-180: behind the person)."""
    def yaw(f):  # a camera's viewing direction (its +z axis in world) -> yaw about +y
        return torch.atan2(f[..., 0], f[..., 2])

    d = torch.rad2deg(yaw(viewmats[:, 2, :3].float()) - yaw(input_viewmat[2, :3].float()))
    return torch.remainder(d + 180.0, 360.0) - 180.0


def to_sv3d_angles(elevation_deg, azimuth_deg, input_azimuth_deg: float = 0.0):
    """Our (elevation, azimuth) -> SV3D's (polar, azimuth relative to the input view), degrees.

    SV3D's polar angle is measured from +y (90 = level); its azimuth is relative to the
    conditioning view and lies in [0, 360). SV3D's orbit turns the same way as ours
    (increasing azimuth: the camera moves to the subject's left)."""
    el = torch.as_tensor(elevation_deg, dtype=torch.float32)
    az = torch.as_tensor(azimuth_deg, dtype=torch.float32)
    return 90.0 - el, torch.remainder(az - input_azimuth_deg, 360.0)


def from_sv3d_angles(polar_deg, azimuth_deg, input_azimuth_deg: float = 0.0):
    """SV3D's (polar, relative azimuth) -> our (elevation, azimuth), degrees."""
    polar = torch.as_tensor(polar_deg, dtype=torch.float32)
    az = torch.as_tensor(azimuth_deg, dtype=torch.float32)
    return 90.0 - polar, torch.remainder(az + input_azimuth_deg, 360.0)
