"""The UV atlas and the colour texture baked from the splat.

Atlas: the body model's own UV layout (Anny's, from MakeHuman: one non-overlapping chart set
covering ~63% of the square). The clothed mesh keeps the body's topology, so every face keeps
its UV triangle; a vertex on a UV seam becomes one exported vertex per UV it has.

Baking: every texel inside a UV triangle is a point on the clothed surface. Each view of the
splat that sees that point (inside its silhouette, not behind the surface it shows there)
votes for the colour it renders there, weighted by how squarely it faces the point
(cosine^8: the best-facing view dominates, neighbours blend in near the hand-over so no hard
seam appears). Texels no view sees take the colour of the surface around them (per-vertex
colours, filled across the mesh), and texels outside every triangle are filled from the
inside (pull-push) so that filtering and mipmaps do not bleed background into the seams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import HumanSplatError
from .surface import ClothedSurface, harmonic_fill, vertex_adjacency
from .views import SplatView, sample_image

__all__ = ["NoUVLayoutError", "TexturedMesh", "uv_layout", "textured_mesh", "texel_raster",
           "bake_texture", "pull_push_fill", "sample_texture"]


class NoUVLayoutError(HumanSplatError, ValueError):
    """The body model has no UV layout to bake a texture into."""


@dataclass
class TexturedMesh:
    """The exported mesh: one vertex per (surface vertex, UV) pair.

    positions [N,3], normals [N,3] (world, the fitted pose), uv [N,2] in the image
    convention (u right, v down, as glTF), faces [F,3] int64, body_index [N] int64 (the body
    vertex each one comes from: its skinning weights), body_faces [F] (the body face each
    face is)."""

    positions: Tensor
    normals: Tensor
    uv: Tensor
    faces: Tensor
    body_index: Tensor
    body_faces: Tensor


def uv_layout(body_model) -> tuple[Tensor, Tensor]:
    """(uv [U,2] in the OBJ convention (v up), face_uv [F,3] int64) of the body model."""
    inner = getattr(body_model, "_anny", None)
    uv = getattr(inner, "texture_coordinates", None)
    fuv = getattr(inner, "face_texture_coordinate_indices", None)
    if uv is None or fuv is None or fuv.shape[0] != body_model.faces.shape[0]:
        raise NoUVLayoutError(f"the {body_model.name} body model has no UV layout to bake a "
                              "texture into; export needs the Anny body model")
    return uv.detach().float().cpu(), fuv.detach().long().cpu()


def textured_mesh(surface: ClothedSurface, uv: Tensor, face_uv: Tensor) -> TexturedMesh:
    """Split the clothed surface's vertices along the UV seams (see :class:`TexturedMesh`)."""
    bf = surface.body_faces
    fp = surface.faces  # [F,3] into surface.vertices
    fu = face_uv[bf]  # [F,3] into uv
    key = fp.reshape(-1) * (int(uv.shape[0]) + 1) + fu.reshape(-1)
    uniq, inv = torch.unique(key, return_inverse=True)
    vid = uniq // (int(uv.shape[0]) + 1)
    uid = uniq % (int(uv.shape[0]) + 1)
    st = uv[uid]
    return TexturedMesh(positions=surface.vertices[vid], normals=surface.normals[vid],
                        uv=torch.stack([st[:, 0], 1.0 - st[:, 1]], 1), faces=inv.reshape(-1, 3),
                        body_index=surface.body_index[vid], body_faces=bf)


_RASTER_CACHE: dict = {}


def texel_raster(uv: Tensor, face_uv: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """(face [S,S] int64, -1 outside every triangle; bary [S,S,3]) of the UV layout at
    ``size`` texels a side: which body face each texel centre lies in (triangles filled
    conservatively, so seam texels belong to a face) and where. Cached: it depends on the
    layout only."""
    import cv2

    key = (uv.data_ptr(), tuple(uv.shape), face_uv.data_ptr(), int(size))
    if key in _RASTER_CACHE:
        return _RASTER_CACHE[key]
    shift = 4
    px = np.stack([uv[:, 0].numpy() * size, (1.0 - uv[:, 1].numpy()) * size], 1) - 0.5
    tri = np.round(px[face_uv.numpy()] * (1 << shift)).astype(np.int32)  # [F,3,2]
    face = np.full((size, size), -1, np.int32)
    for f in range(len(tri)):
        cv2.fillConvexPoly(face, tri[f], int(f), lineType=cv2.LINE_8, shift=shift)
    face_t = torch.as_tensor(face.astype(np.int64))
    ys, xs = torch.nonzero(face_t >= 0, as_tuple=True)
    fid = face_t[ys, xs]
    corners = torch.as_tensor(px, dtype=torch.float64)[face_uv[fid]]  # [M,3,2]
    p = torch.stack([xs, ys], 1).double()
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    cross = lambda u, v: u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]  # noqa: E731
    area = cross(b - a, c - a)
    area = torch.where(area.abs() > 1e-12, area, torch.full_like(area, 1e-12))
    w1 = cross(p - a, c - a) / area
    w2 = cross(b - a, p - a) / area
    bary = torch.stack([1 - w1 - w2, w1, w2], 1).clamp_min(0)
    bary = bary / bary.sum(1, keepdim=True).clamp_min(1e-12)
    bary_img = torch.zeros(size, size, 3)
    bary_img[ys, xs] = bary.float()
    _RASTER_CACHE.clear()  # one layout and size at a time is all a run uses
    _RASTER_CACHE[key] = (face_t, bary_img)
    return face_t, bary_img


def _view_colours(views: list[SplatView], points: Tensor, normals: Tensor, *,
                  tol: float, power: float = 8.0, first_weight: float = 4.0
                  ) -> tuple[Tensor, Tensor]:
    """Colour [M,3] of surface points (normals [M,3]) from the views that see them, and the
    total vote weight [M] (0: no view sees the point). The first view (the photo's camera:
    what the reconstruction saw best) counts ``first_weight`` times."""
    col = torch.zeros(points.shape[0], 3)
    wsum = torch.zeros(points.shape[0])
    for k, v in enumerate(views):
        uv, z = v.project(points)
        inframe = (uv[:, 0] >= 0) & (uv[:, 0] < v.width) & (uv[:, 1] >= 0) & \
            (uv[:, 1] < v.height) & (z > 0)
        a = sample_image(v.alpha, uv)
        d = sample_image(v.depth.clamp(max=1e6), uv, mode="nearest")
        cos = (F.normalize(v.eye[None] - points, dim=-1) * normals).sum(-1)
        w = (inframe & (a > 0.3) & (z <= d + tol)).float() * cos.clamp_min(0) ** power
        if k == 0:
            w = w * first_weight
        rgb = sample_image(v.rgb, uv) / a.clamp_min(1e-3)[:, None]  # un-premultiply
        col += w[:, None] * rgb.clamp(0, 1)
        wsum += w
    return col / wsum.clamp_min(1e-12)[:, None], wsum


def pull_push_fill(img: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill the texels where ``known`` is False from the known ones (a pull-push pyramid:
    each unknown texel takes the average of the known ones at the finest level that has
    any nearby). img [H,W,C] float, known [H,W] bool."""
    import cv2

    levels = []
    c, w = img * known[..., None], known.astype(np.float32)
    while True:
        levels.append((c, w))
        if min(c.shape[:2]) <= 1:
            break
        h2, w2 = (c.shape[0] + 1) // 2, (c.shape[1] + 1) // 2
        c = cv2.resize(c, (w2, h2), interpolation=cv2.INTER_AREA) * 4
        w = cv2.resize(w, (w2, h2), interpolation=cv2.INTER_AREA) * 4
        if c.ndim == 2:
            c = c[..., None]
        cs = c / np.maximum(w, 1e-6)[..., None]
        c, w = cs * np.minimum(w, 1)[..., None], np.minimum(w, 1)
    filled = levels[-1][0] / np.maximum(levels[-1][1], 1e-6)[..., None]
    for c, w in reversed(levels[:-1]):
        up = cv2.resize(filled, (c.shape[1], c.shape[0]), interpolation=cv2.INTER_LINEAR)
        if up.ndim == 2:
            up = up[..., None]
        ww = np.minimum(w, 1)[..., None]
        filled = c / np.maximum(w, 1e-6)[..., None] * ww + up * (1 - ww)
    return np.where(known[..., None], img, filled)


@torch.no_grad()
def bake_texture(mesh: TexturedMesh, surface: ClothedSurface, uv: Tensor, face_uv: Tensor,
                 views: list[SplatView], *, size: int = 512, depth_tolerance: float = 0.03,
                 body_scale: float = 1.0) -> tuple[np.ndarray, dict]:
    """The colour texture (uint8 [size,size,3]) of ``mesh`` baked from ``views`` (see the
    module docstring), and statistics (share of the surface's texels some view saw)."""
    tol = depth_tolerance * float(body_scale)
    face_img, bary_img = texel_raster(uv, face_uv, size)
    # body face -> the clothed surface's face (dropped faces: none)
    nb = int(face_uv.shape[0])
    to_surf = torch.full((nb,), -1, dtype=torch.long)
    to_surf[surface.body_faces] = torch.arange(len(surface.body_faces))
    ys, xs = torch.nonzero(face_img >= 0, as_tuple=True)
    sf = to_surf[face_img[ys, xs]]
    ok = sf >= 0
    ys, xs, sf = ys[ok], xs[ok], sf[ok]
    bary = bary_img[ys, xs]  # [M,3]
    corners = surface.faces[sf]  # [M,3]
    P = (bary[..., None] * surface.vertices[corners]).sum(1)
    Nn = F.normalize((bary[..., None] * surface.normals[corners]).sum(1), dim=-1)
    col, w = _view_colours(views, P, Nn, tol=tol)
    # per-vertex colours, filled across the mesh, for what no view saw
    vcol, vw = _view_colours(views, surface.vertices, surface.normals, tol=tol)
    A = vertex_adjacency(surface.faces, surface.vertices.shape[0])
    vcol = torch.as_tensor(harmonic_fill(vcol.double().numpy(), (vw > 1e-6).numpy(), A),
                           dtype=torch.float32)
    fallback = (bary[..., None] * vcol[corners]).sum(1)
    seen = w > 1e-6
    col = torch.where(seen[:, None], col, fallback)
    img = np.zeros((size, size, 3), np.float32)
    known = np.zeros((size, size), bool)
    img[ys.numpy(), xs.numpy()] = col.numpy()
    known[ys.numpy(), xs.numpy()] = True
    img = pull_push_fill(img, known)
    tex = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    return tex, {"texels": int(len(ys)), "texels_seen_share": float(seen.float().mean())}


def sample_texture(texture: np.ndarray, uv: Tensor) -> Tensor:
    """Bilinear texture lookup: uv [M,2] in the image convention -> colours [M,3] in [0,1]."""
    t = torch.as_tensor(np.array(texture)).float() / 255.0
    S_h, S_w = t.shape[:2]
    px = torch.stack([uv[:, 0] * S_w, uv[:, 1] * S_h], 1)
    return sample_image(t, px)

