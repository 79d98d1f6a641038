"""The Gaussian math shared by both render backends and by the rest of the project.

Quaternions are (w, x, y, z) and need not be unit: they are normalised where a rotation is
built, as gsplat does. Everything here is plain differentiable torch and runs on any device.

The EWA projection follows gsplat 1.5.3's pinhole ``fully_fused_projection`` (CUDA kernel
``projection_ewa_3dgs_fused_fwd_kernel``) exactly, so that the torch backend and the gsplat
backend start from the same 2D Gaussians:

* camera-space mean ``t = R x + t0``; culled unless ``near_plane <= t_z <= far_plane``;
* Jacobian of the perspective map with ``t_x/t_z`` and ``t_y/t_z`` clamped to 1.3x the
  image's half-extent (the 3DGS guard against huge splats at the frustum edges);
* ``cov2d = J W Sigma W^T J^T + eps2d * I`` (the 0.3 px dilation), conic = its inverse;
* opacity-aware 3-sigma radius per axis: ``extend = min(3.33, sqrt(2 ln(255 opacity)))``,
  ``radius = ceil(extend * sqrt(cov2d_ii))``; culled when opacity < 1/255, when the blurred
  determinant is not positive, or when the box lies outside the image.

Inside that box every pixel with alpha >= 1/255 is found (the box bounds the ellipse where
``opacity * exp(-power) >= 1/255``), so the radius only prunes work, never changes pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import camera_centers
from ..geometry import quat_to_rotmat

__all__ = [
    "ALPHA_THRESHOLD",
    "MAX_ALPHA",
    "TRANSMITTANCE_EPS",
    "Projected",
    "covariance_3d",
    "project_gaussians",
    "sh_basis",
    "eval_sh",
    "sh_to_rgb",
    "num_sh_bases",
    "view_colors",
]

ALPHA_THRESHOLD = 1.0 / 255.0  # a Gaussian with alpha below this is skipped at a pixel
MAX_ALPHA = 0.999  # alpha is clamped to this (keeps 1 - alpha invertible)
TRANSMITTANCE_EPS = 1e-4  # a pixel stops when its next transmittance would be <= this
# gsplat's cap on the box half-size in standard deviations. 255 * exp(-3.33^2/2) ~= 0.998,
# so even where the cap binds, alpha at the box edge is below 1/255: the box always bounds
# every pixel that a Gaussian reaches.
RADIUS_SIGMAS = 3.33


# --------------------------------------------------------------------------------------
# Covariances (rotation maths: humansplat.geometry)
# --------------------------------------------------------------------------------------
def covariance_3d(quats: Tensor, scales: Tensor) -> Tensor:
    """World covariances [...,3,3] = R diag(s^2) R^T from quats [...,4] and scales [...,3]."""
    M = quat_to_rotmat(quats) * scales[..., None, :]  # R S
    return M @ M.transpose(-1, -2)


# --------------------------------------------------------------------------------------
# EWA projection
# --------------------------------------------------------------------------------------
@dataclass
class Projected:
    """Gaussians projected into C cameras.

    means2d: [C,N,2] pixel coordinates (pixel centres at +0.5).
    conics:  [C,N,3] (a, b, c) of the inverse 2D covariance; power = a dx^2/2 + b dx dy + c dy^2/2.
    depths:  [C,N]   camera-space z.
    radii:   [C,N,2] int32 box half-sizes in pixels (x, y); 0 where culled.
    cov2d:   [C,N,3] (xx, xy, yy) of the dilated 2D covariance.
    """

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor
    cov2d: Tensor

    @property
    def visible(self) -> Tensor:
        """[C,N] bool: projected into the image (both radii > 0)."""
        return (self.radii > 0).all(dim=-1)


def project_gaussians(means: Tensor, quats: Tensor, scales: Tensor, viewmats: Tensor,
                      Ks: Tensor, width: int, height: int, *, opacities: Tensor | None = None,
                      eps2d: float = 0.3, near_plane: float = 0.01, far_plane: float = 1e10,
                      radius_clip: float = 0.0) -> Projected:
    """EWA-project N Gaussians into C pinhole cameras (see the module docstring).

    means [N,3], quats [N,4] (w,x,y,z, any norm), scales [N,3], viewmats [C,4,4]
    (world-to-camera, OpenCV), Ks [C,3,3]; opacities [N] (optional) tighten the radius as in
    gsplat 1.5.3's ``rasterization``. Differentiable w.r.t. means, quats and scales through
    ``means2d``, ``conics``, ``depths`` (radii are integers)."""
    R = viewmats[:, :3, :3]  # [C,3,3]
    t = viewmats[:, :3, 3]  # [C,3]
    mc = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]  # [C,N,3] camera space
    x, y, z = mc.unbind(-1)
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C,1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]

    valid_z = (z >= near_plane) & (z <= far_plane)
    # Keep the math finite for culled Gaussians (their values are masked out below).
    z_safe = torch.where(valid_z, z, torch.ones_like(z))
    rz = 1.0 / z_safe
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)  # [C,N,2]

    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + 0.3 * tan_fovx
    lim_x_neg = cx / fx + 0.3 * tan_fovx
    lim_y_pos = (height - cy) / fy + 0.3 * tan_fovy
    lim_y_neg = cy / fy + 0.3 * tan_fovy
    tx = z_safe * torch.minimum(lim_x_pos, torch.maximum(-lim_x_neg, x * rz))
    ty = z_safe * torch.minimum(lim_y_pos, torch.maximum(-lim_y_neg, y * rz))
    rz2 = rz * rz
    zero = torch.zeros_like(rz)
    # J [C,N,2,3]: rows d(u)/d(cam xyz) and d(v)/d(cam xyz)
    J = torch.stack([torch.stack([fx * rz, zero, -fx * tx * rz2], -1),
                     torch.stack([zero, fy * rz, -fy * ty * rz2], -1)], dim=-2)
    T = J @ R[:, None]  # [C,N,2,3] = J W
    M = quat_to_rotmat(quats) * scales[:, None, :]  # [N,3,3] = R_g S
    TM = T @ M[None]  # [C,N,2,3]
    cxx = (TM[..., 0, :] * TM[..., 0, :]).sum(-1) + eps2d
    cxy = (TM[..., 0, :] * TM[..., 1, :]).sum(-1)
    cyy = (TM[..., 1, :] * TM[..., 1, :]).sum(-1) + eps2d
    det = cxx * cyy - cxy * cxy
    valid = valid_z & (det > 0)
    det_safe = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([cyy / det_safe, -cxy / det_safe, cxx / det_safe], dim=-1)

    with torch.no_grad():
        extend = torch.full_like(z, RADIUS_SIGMAS)
        if opacities is not None:
            op = opacities.detach()[None].expand_as(z)
            valid = valid & (op >= ALPHA_THRESHOLD)
            extend = torch.minimum(
                extend, torch.sqrt(2.0 * torch.log(op.clamp_min(ALPHA_THRESHOLD)
                                                   / ALPHA_THRESHOLD)))
        rx = torch.ceil(extend * torch.sqrt(cxx.detach().clamp_min(0)))
        ry = torch.ceil(extend * torch.sqrt(cyy.detach().clamp_min(0)))
        valid = valid & ~((rx <= radius_clip) & (ry <= radius_clip))
        m2 = means2d.detach()
        inside = ((m2[..., 0] + rx > 0) & (m2[..., 0] - rx < width)
                  & (m2[..., 1] + ry > 0) & (m2[..., 1] - ry < height))
        valid = valid & inside
        radii = torch.stack([rx, ry], -1)
        radii = torch.where(valid[..., None], radii, torch.zeros_like(radii)).to(torch.int32)

    cov2d = torch.stack([cxx, cxy, cyy], dim=-1)
    return Projected(means2d, conics, z, radii, cov2d)


# --------------------------------------------------------------------------------------
# Spherical harmonics (real, 3DGS/gsplat sign convention, degree <= 3)
# --------------------------------------------------------------------------------------
def num_sh_bases(degree: int) -> int:
    return (degree + 1) ** 2


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """Real SH basis [..., (degree+1)^2] at unit directions dirs [...,3] (DC first)."""
    if not 0 <= degree <= 3:
        raise ValueError(f"sh_degree must be in 0..3, got {degree}")
    out = [torch.full_like(dirs[..., 0], 0.28209479177387814)]
    if degree >= 1:
        x, y, z = dirs.unbind(-1)
        c1 = 0.4886025119029199
        out += [-c1 * y, c1 * z, -c1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [1.0925484305920792 * x * y, -1.0925484305920792 * y * z,
                0.31539156525252005 * (2 * zz - xx - yy), -1.0925484305920792 * x * z,
                0.5462742152960396 * (xx - yy)]
    if degree >= 3:
        out += [-0.5900435899266435 * y * (3 * xx - yy), 2.890611442640554 * x * y * z,
                -0.4570457994644658 * y * (4 * zz - xx - yy),
                0.3731763325901154 * z * (2 * zz - 3 * xx - 3 * yy),
                -0.4570457994644658 * x * (4 * zz - xx - yy),
                1.445305721320277 * z * (xx - yy), -0.5900435899266435 * x * (xx - 3 * yy)]
    return torch.stack(out, dim=-1)


def eval_sh(degree: int, sh: Tensor, dirs: Tensor) -> Tensor:
    """SH radiance [...,3] = sum_k basis_k(dirs/|dirs|) sh[...,k,:], using the first
    (degree+1)^2 of the K coefficients of sh [...,K,3]."""
    k = num_sh_bases(degree)
    if sh.shape[-2] < k:
        raise ValueError(f"sh has {sh.shape[-2]} coefficients, degree {degree} needs {k}")
    basis = sh_basis(degree, F.normalize(dirs, dim=-1))  # [...,k]
    return (basis[..., None] * sh[..., :k, :]).sum(dim=-2)


def sh_to_rgb(degree: int, sh: Tensor, dirs: Tensor) -> Tensor:
    """Colours [...,3] of SH Gaussians sh [...,K,3] seen along dirs [...,3] (Gaussian mean
    minus camera centre, any length): ``max(eval_sh + 0.5, 0)`` exactly as gsplat's
    ``rasterization`` does for ``sh_degree`` set."""
    return torch.clamp_min(eval_sh(degree, sh, dirs) + 0.5, 0.0)


def view_colors(colors: Tensor, sh_degree: int | None, means: Tensor, viewmats: Tensor,
                cam_ids: Tensor, gauss_ids: Tensor) -> Tensor:
    """Per-(camera, Gaussian) colours [M,D] for M pairs (cam_ids [M], gauss_ids [M]).

    colors [N,D] are used as they are when ``sh_degree`` is None; otherwise colors are SH
    coefficients [N,K,3] evaluated along the ray from each camera centre to the mean."""
    if sh_degree is None:
        return colors[gauss_ids]
    campos = camera_centers(viewmats)  # [C,3]
    dirs = means[gauss_ids] - campos[cam_ids]
    return sh_to_rgb(sh_degree, colors[gauss_ids], dirs)


def render_meta(backend: str, proj: "Projected", width: int, height: int, tile_size: int,
                tiles_x: int, tiles_y: int, n_isects: int, busy_counts: Tensor) -> dict:
    """The ``meta`` dict both backends return. busy_counts: [T] Gaussians per non-empty tile."""
    busy = busy_counts
    return {
        "backend": backend,
        "radii": proj.radii,
        "means2d": proj.means2d,
        "depths": proj.depths,
        "conics": proj.conics,
        "n_visible": proj.visible.sum(dim=1),
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "tiles_x": tiles_x,
        "tiles_y": tiles_y,
        "n_isects": n_isects,
        "n_busy_tiles": int(busy.numel()),
        "max_per_tile": int(busy.max()) if busy.numel() else 0,
        "mean_per_tile": float(busy.float().mean()) if busy.numel() else 0.0,
    }
