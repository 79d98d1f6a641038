"""Render a dressed subject (:class:`~humansplat.data.synthetic_humans.SubjectMesh`) into
cameras: RGB on white, antialiased mask and 24-part label maps.

Rasterisation is :func:`humansplat.synth.projection.rasterize_mesh` (exact z-buffer: face
id and perspective-correct barycentrics per sample) at ``supersample`` x the resolution.
Each covered sample interpolates its surface point's canonical (rest-pose) coordinates and
posed normal; its material (skin, fabric pattern, hair) is evaluated there and lit by one
fixed world light (Lambert + ambient). The lighting depends only on the surface, never on
the camera, so a set of Gaussians can represent it exactly. Samples are averaged per pixel
(colour on the white background, coverage = mask); a pixel's part is the most frequent
part among its covered samples, -1 where the mask is below one half.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import Cameras
from ..prior.parts import NUM_PARTS
from .synthetic_humans import Material, SubjectMesh

__all__ = ["LIGHT_DIRECTION", "AMBIENT", "DIFFUSE", "RenderedViews", "render_subject",
           "shade_materials"]

# Key light from the front-left, above (world, unit); ambient + diffuse <= ~1.05 (clipped).
LIGHT_DIRECTION = (0.35, 0.75, 0.56)
AMBIENT = 0.42
DIFFUSE = 0.62


@dataclass
class RenderedViews:
    """rgb [C,3,R,R] float in [0,1] on white; alpha [C,1,R,R] coverage; parts [C,R,R] int64
    (0..23, -1 background)."""

    rgb: Tensor
    alpha: Tensor
    parts: Tensor


# ----------------------------------------------------------------------------------------
# procedural patterns (deterministic hashes: same on every machine)
# ----------------------------------------------------------------------------------------
def _hash(i: Tensor, j: Tensor, k: Tensor, salt: int = 0) -> Tensor:
    """Integer lattice coordinates -> uniform [0,1) (int64 arithmetic, wraps identically
    everywhere)."""
    h = (i * 73856093) ^ (j * 19349663) ^ (k * 83492791) ^ (salt * 2654435761)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF).double() / float(0x1000000)


def _value_noise(p: Tensor, freq: float, salt: int = 0) -> Tensor:
    """Smooth 3D value noise in [0,1] at points [M,3] (trilinear over a lattice of 1/freq)."""
    q = p.double() * freq
    q0 = torch.floor(q)
    f = q - q0
    f = f * f * (3 - 2 * f)
    i0 = q0.long()
    out = torch.zeros(p.shape[0], dtype=torch.float64)
    for dx in (0, 1):
        wx = f[:, 0] if dx else 1 - f[:, 0]
        for dy in (0, 1):
            wy = f[:, 1] if dy else 1 - f[:, 1]
            for dz in (0, 1):
                wz = f[:, 2] if dz else 1 - f[:, 2]
                out += wx * wy * wz * _hash(i0[:, 0] + dx, i0[:, 1] + dy, i0[:, 2] + dz, salt)
    return out


def _smooth_band(x: Tensor, duty: float, soft: float = 0.08) -> Tensor:
    """Periodic band in [0,1]: ~1 on a ``duty`` fraction of each period (x in periods),
    with soft edges (supersampling does the rest of the antialiasing)."""
    fr = x - torch.floor(x)
    d = torch.minimum(fr, 1 - fr)  # distance to the band's centre line at 0
    return torch.clamp((0.5 * duty - d) / soft + 0.5, 0, 1)


def _c(rgb) -> Tensor:
    return torch.tensor(rgb, dtype=torch.float64)


def _eval_material(m: Material, p: Tensor) -> Tensor:
    """Albedo [M,3] (float64) of material ``m`` at canonical points ``p`` [M,3]."""
    p = p.double()
    c1, c2, c3 = _c(m.color), _c(m.color2), _c(m.color3)
    kind = m.kind
    fine = _value_noise(p, 60.0, 7)[:, None]  # fabric grain
    if kind == "solid":
        return c1 * (0.96 + 0.08 * fine)
    if kind == "denim":
        return c1 * (0.88 + 0.24 * fine) * (0.95 + 0.1 * _value_noise(p, 9.0, 3)[:, None])
    if kind == "stripes":
        d = _c(m.direction)
        t = _smooth_band((p @ d) / m.period, m.duty)[:, None]
        return (c1 + (c2 - c1) * t) * (0.96 + 0.08 * fine)
    if kind == "checks":
        a = _smooth_band(p[:, 0] / m.period, 0.5)[:, None]
        b = _smooth_band(p[:, 1] / m.period, 0.5)[:, None]
        c = _smooth_band(p[:, 2] / m.period, 0.5)[:, None]
        horiz = torch.maximum(a, c)  # columns on the front/back (x) and the sides (z)
        w = 0.5 * (horiz + b)  # gingham: 0, 1/2 or 1 of the second colour
        out = torch.where(w > 0.75, c2, torch.where(w > 0.25, c3, c1))
        return out * (0.96 + 0.08 * fine)
    if kind == "dots":
        q = p / m.period
        cell = torch.floor(q).long()
        jit = torch.stack([_hash(cell[:, 0], cell[:, 1], cell[:, 2], s) for s in (1, 2, 3)], 1)
        centre = cell.double() + 0.25 + 0.5 * jit
        r = (q - centre).norm(dim=1)
        t = torch.clamp((m.duty - r) / 0.05 + 0.5, 0, 1)[:, None]
        return (c1 + (c2 - c1) * t) * (0.96 + 0.08 * fine)
    if kind == "blotch":
        n = _value_noise(p, 1.0 / m.period, 11)[:, None]
        n2 = _value_noise(p, 2.3 / m.period, 5)[:, None]
        out = torch.where(n > 0.55, c2, c1)
        out = torch.where(n2 > 0.72, c3, out)
        return out * (0.96 + 0.08 * fine)
    if kind == "hair":
        streak = _value_noise(p * torch.tensor([1.0, 0.08, 1.0], dtype=p.dtype), 180.0, 13)
        t = streak[:, None]
        return c2 + (c1 - c2) * (0.3 + 0.7 * t)
    if kind == "skin":
        return _skin(m, p, c1)
    raise ValueError(f"unknown material kind {kind!r}")


def _ellipse(p: Tensor, centre, rx: float, ry: float, front_z: float) -> Tensor:
    c = torch.as_tensor(centre, dtype=p.dtype)
    e = ((p[:, 0] - c[0]) / rx) ** 2 + ((p[:, 1] - c[1]) / ry) ** 2
    return (e < 1.0) & (p[:, 2] > c[2] - front_z)


def _skin(m: Material, p: Tensor, base: Tensor) -> Tensor:
    out = base * (0.97 + 0.06 * _value_noise(p, 25.0, 17)[:, None])
    pr = m.params
    if "eyes" in pr:
        for e in pr["eyes"]:
            sclera = _ellipse(p, e, 0.013, 0.0065, 0.02)
            iris = _ellipse(p, e, 0.0058, 0.0058, 0.02)
            pupil = _ellipse(p, e, 0.0026, 0.0026, 0.02)
            out[sclera] = _c((0.93, 0.91, 0.88))
            out[iris] = _c(pr["iris"])
            out[pupil] = _c((0.05, 0.04, 0.04))
            brow = _ellipse(p, (e[0] + 0.002 * np.sign(e[0]), e[1] + 0.02, e[2]),
                            0.019, 0.0035, 0.03)
            out[brow] = _c(pr["brow"])
    if "mouth" in pr:
        lips = _ellipse(p, pr["mouth"], 0.022, 0.0065, 0.03)
        out[lips] = _c(pr["lips"])
    return out


def shade_materials(materials: list[Material], mat_ids: Tensor, canonical: Tensor,
                    normals: Tensor) -> Tensor:
    """Lit colour [M,3] (float32, [0,1]) of samples with material ids [M], canonical
    points [M,3] and unit posed normals [M,3]."""
    albedo = torch.zeros(mat_ids.shape[0], 3, dtype=torch.float64)
    for k in torch.unique(mat_ids).tolist():
        sel = mat_ids == k
        albedo[sel] = _eval_material(materials[k], canonical[sel])
    light = F.normalize(torch.tensor(LIGHT_DIRECTION, dtype=torch.float64), dim=0)
    lambert = (normals.double() @ light).clamp(min=0)[:, None]
    return (albedo * (AMBIENT + DIFFUSE * lambert)).clamp(0, 1).float()


# ----------------------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------------------
@torch.no_grad()
def render_subject(mesh: SubjectMesh, cameras: Cameras, resolution: int | None = None, *,
                   supersample: int = 2, background: float = 1.0) -> RenderedViews:
    """Render ``mesh`` into every camera of ``cameras`` at ``resolution`` (default the
    cameras' width; they must be square)."""
    from ..synth.projection import rasterize_mesh

    R = int(resolution or cameras.width)
    if cameras.width != cameras.height:
        raise ValueError("render_subject renders square images")
    cams = cameras.to("cpu", torch.float32).resized(R, R)
    ss = int(supersample)
    Rs = R * ss
    V = mesh.vertices.float()
    faces = mesh.faces
    rgbs, alphas, parts = [], [], []
    for c in range(len(cams)):
        K = cams.Ks[c].clone()
        K[:2] *= ss
        r = rasterize_mesh(V, faces, cams.viewmats[c], K, Rs, Rs)
        fid = r.face_ids.reshape(-1)
        cov = fid >= 0
        col = torch.full((Rs * Rs, 3), float(background))
        lab = torch.full((Rs * Rs,), -1, dtype=torch.long)
        if bool(cov.any()):
            f = fid[cov]
            bary = r.bary.reshape(-1, 3)[cov].double()
            corners = faces[f]  # [M,3]
            w = bary[..., None]
            can = (w * mesh.canonical[corners].double()).sum(1)
            nrm = F.normalize((w * mesh.normals[corners].double()).sum(1), dim=-1)
            col[cov] = shade_materials(mesh.materials, mesh.face_material[f], can, nrm)
            lab[cov] = mesh.labels[corners.gather(1, bary.argmax(-1, keepdim=True))[:, 0]]
        img = F.avg_pool2d(col.T.reshape(1, 3, Rs, Rs), ss)[0]
        a = F.avg_pool2d(cov.float().reshape(1, 1, Rs, Rs), ss)[0]
        # the most frequent part among each pixel's covered samples
        blocks = lab.reshape(R, ss, R, ss).permute(0, 2, 1, 3).reshape(R * R, ss * ss)
        counts = torch.zeros(R * R, NUM_PARTS + 1).scatter_add_(
            1, blocks + 1, torch.ones(R * R, ss * ss))
        counts[:, 0] = 0
        p = counts.argmax(1) - 1
        p = torch.where(a.reshape(-1) >= 0.5, p, torch.full_like(p, -1))
        rgbs.append(img)
        alphas.append(a)
        parts.append(p.reshape(R, R))
    return RenderedViews(torch.stack(rgbs), torch.stack(alphas), torch.stack(parts))
