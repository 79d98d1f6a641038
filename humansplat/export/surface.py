"""The clothed surface: the fitted body's mesh pushed out (or in) along its normals until it
wraps the splat.

Each vertex searches along its normal for the splat's outer surface by space carving: a
point belongs to the splat when, in every view, it projects inside the splat's silhouette
(alpha > 0.5, the silhouette the IoU check uses) and not in front of the surface the view
sees there (the splat's mean depth, minus a tolerance). The outermost point of the first
run of such points is the vertex's clothed position. Vertices no view sees directly (armpits,
between the legs, the unseen side) take the offsets of their seen neighbours (harmonic
fill): the thickness assumption where there is no evidence. The offsets are smoothed over
the mesh, and faces that still lie outside the splat in several views (a body part the photo
cut off) are dropped, so the mesh shows what the splat shows.

The mesh keeps the body's topology (minus dropped faces): every clothed vertex is one body
vertex, so it inherits that vertex's skinning weights and UV coordinates exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..geometry import mesh_adjacency, vertex_normals
from .views import SplatView, sample_image

__all__ = ["ClothedSurface", "SurfaceConfig", "clothed_surface", "vertex_adjacency",
           "smooth_on_mesh", "harmonic_fill"]


@dataclass
class SurfaceConfig:
    """Search range along the normals (in body-scale units: metres of the unscaled body),
    number of steps, depth tolerance, smoothing, and when a vertex counts as outside."""

    min_offset: float = -0.06
    max_offset: float = 0.22
    steps: int = 33
    depth_tolerance: float = 0.03
    alpha_threshold: float = 0.5  # the first view's (the input camera's) silhouette
    hull_alpha: float = 0.15  # the other views' (their fuzz must not shrink the hull)
    max_gap: int = 2  # holes in the splat up to this many steps deep are bridged
    seen_cosine: float = 0.35  # a view sees a vertex when its normal faces it this much
    smooth_iters: int = 3
    outside_views: int = 2  # a vertex outside the silhouette in this many views is dropped
    min_component: float = 0.01  # pieces smaller than this share of the faces are dropped


@dataclass
class ClothedSurface:
    """The clothed mesh in the fitted pose (world, metres, +y up).

    vertices [V,3], faces [F,3] int64 (into vertices), normals [V,3];
    body_index [V] int64: the body vertex each vertex comes from (weights, UVs);
    body_faces [F] int64: the body face each face is (its UV triangle);
    offset [V]: how far it moved along the body normal (world units);
    seen [V] bool: some view saw it (False: filled from neighbours)."""

    vertices: Tensor
    faces: Tensor
    normals: Tensor
    body_index: Tensor
    body_faces: Tensor
    offset: Tensor
    seen: Tensor
    stats: dict = field(default_factory=dict)


def vertex_adjacency(faces: Tensor, num_vertices: int):
    """Row-normalised vertex adjacency (scipy CSR [V,V]) of a triangle mesh."""
    import scipy.sparse as sp

    A = mesh_adjacency(faces, num_vertices)
    deg = np.asarray(A.sum(1)).ravel()
    return sp.diags(1.0 / np.maximum(deg, 1)) @ A


def smooth_on_mesh(values: np.ndarray, A, iters: int, lam: float = 0.5) -> np.ndarray:
    """``iters`` steps of Laplacian smoothing ``x <- (1-lam) x + lam mean(neighbours)``."""
    x = values
    for _ in range(iters):
        x = (1 - lam) * x + lam * (A @ x)
    return x


def harmonic_fill(values: np.ndarray, known: np.ndarray, A, iters: int = 100) -> np.ndarray:
    """Values [V,...] where ``known`` is False replaced by a diffusion of the known ones
    (Jacobi iterations of the graph Laplace equation with the known values fixed); vertices
    no known one reaches get the mean of the known ones."""
    x = values.copy()
    if not known.any():
        return x
    fallback = values[known].mean(0)
    reached = known.astype(np.float64)
    x[~known] = 0
    for _ in range(iters):
        nxt_reach = A @ reached
        num = A @ (x * reached.reshape(-1, *[1] * (x.ndim - 1)))
        upd = ~known & (nxt_reach > 1e-9)
        den = nxt_reach.reshape(-1, *[1] * (x.ndim - 1))
        x = np.where(upd.reshape(-1, *[1] * (x.ndim - 1)), num / np.maximum(den, 1e-9), x)
        reached = np.where(known, 1.0, np.where(upd, 1.0, 0.0))
    x[(reached == 0) & ~known] = fallback
    return x


def _inside_along(views: list[SplatView], base: Tensor, direction: Tensor, ts: Tensor,
                  cfg: SurfaceConfig, tol: float) -> Tensor:
    """[V,T] bool: whether ``base + t direction`` (t in ``ts``) is inside the splat's
    silhouette and not in front of its surface, in every view (outside a view's frame
    counts as outside: the views hold the whole splat). Camera coordinates are affine in
    t, so each view costs one transform of the base points and directions."""
    inside = torch.ones(base.shape[0], ts.shape[0], dtype=torch.bool)
    for k, v in enumerate(views):
        thr = cfg.alpha_threshold if k == 0 else cfg.hull_alpha
        R, tr = v.viewmat[:3, :3], v.viewmat[:3, 3]
        cb = base @ R.T + tr  # [V,3]
        cd = direction @ R.T
        X = cb[:, None] + ts[None, :, None] * cd[:, None]  # [V,T,3]
        z = X[..., 2]
        zs = z.clamp_min(1e-6)
        x = (v.K[0, 0] * X[..., 0] / zs + v.K[0, 2]).floor()
        y = (v.K[1, 1] * X[..., 1] / zs + v.K[1, 2]).floor()
        inframe = (x >= 0) & (x < v.width) & (y >= 0) & (y < v.height) & (z > 0)
        flat = (y.clamp(0, v.height - 1) * v.width + x.clamp(0, v.width - 1)).long()
        occupied = (v.alpha > thr).reshape(-1)[flat]
        front = v.depth.reshape(-1)[flat] - tol
        inside &= inframe & occupied & (z >= front)
    return inside


def _outside_count(views: list[SplatView], points: Tensor, cfg: SurfaceConfig,
                   dilate_px: float = 1.5, first_is_input: bool = True) -> Tensor:
    """[V] in how many views a point lies outside the (slightly dilated) silhouette."""
    import torch.nn.functional as F

    count = torch.zeros(points.shape[0], dtype=torch.long)
    for k, v in enumerate(views):
        thr = cfg.alpha_threshold if (k == 0 and first_is_input) else cfg.hull_alpha
        sil = (v.alpha > thr).float()[None, None]
        k = int(2 * round(dilate_px) + 1)
        sil = F.max_pool2d(sil, k, stride=1, padding=k // 2)[0, 0]
        uv, z = v.project(points)
        x, y = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        inframe = (x >= 0) & (x < v.width) & (y >= 0) & (y < v.height) & (z > 0)
        s = sil[y.clamp(0, v.height - 1), x.clamp(0, v.width - 1)] > 0.5
        count += (~(inframe & s)).long()
    return count


@torch.no_grad()
def clothed_surface(body_vertices: Tensor, faces: Tensor, views: list[SplatView],
                    body_scale: float = 1.0, cfg: SurfaceConfig | None = None,
                    chunk: int = 16384) -> ClothedSurface:
    """Carve the clothed surface out of ``views`` of the splat, starting from the posed
    body (``body_vertices`` [V,3] world, ``faces`` [F,3]); ``body_scale``: the fit's global
    scale (offsets and tolerances are in unscaled-body metres). See the module docstring."""
    cfg = cfg or SurfaceConfig()
    V0 = body_vertices.detach().float().cpu()
    Fc = faces.detach().long().cpu()
    N = V0.shape[0]
    n = vertex_normals(V0, Fc)
    s = float(body_scale)
    ts = torch.linspace(cfg.min_offset, cfg.max_offset, cfg.steps) * s  # [T]
    step = float(ts[1] - ts[0])
    tol = cfg.depth_tolerance * s
    t_star = torch.zeros(N)
    supported = torch.zeros(N, dtype=torch.bool)
    idx = torch.arange(cfg.steps)
    for a in range(0, N, chunk):
        ins = _inside_along(views, V0[a:a + chunk], n[a:a + chunk], ts, cfg, tol)  # [c,T]
        if cfg.max_gap > 0:  # closing along the ray: bridge shallow holes of the splat
            k = 2 * cfg.max_gap + 1
            x = ins.float()[:, None]
            x = torch.nn.functional.max_pool1d(x, k, 1, k // 2)
            x = -torch.nn.functional.max_pool1d(-x, k, 1, k // 2)
            ins = x[:, 0] > 0.5
        has = ins.any(1)
        i0 = torch.where(has, ins.float().argmax(1), torch.zeros_like(has, dtype=torch.long))
        gap = (~ins) & (idx[None] > i0[:, None])
        i1 = torch.where(gap.any(1), gap.float().argmax(1) - 1,
                         torch.full_like(i0, cfg.steps - 1))
        t_star[a:a + chunk] = ts[i1] + 0.5 * step
        supported[a:a + chunk] = has
    # which vertices a view saw: facing it and at the depth the view sees there
    P = V0 + t_star[:, None] * n
    seen = torch.zeros(N, dtype=torch.bool)
    for v in views:
        uv, z = v.project(P)
        to_cam = torch.nn.functional.normalize(v.eye[None] - P, dim=-1)
        facing = (to_cam * n).sum(-1) > cfg.seen_cosine
        d = sample_image(v.depth.clamp(max=1e6), uv, mode="nearest")
        a = sample_image(v.alpha, uv, mode="nearest")
        seen |= supported & facing & (a > cfg.alpha_threshold) & ((z - d).abs() < 2 * tol)
    A = vertex_adjacency(Fc, N)
    t = harmonic_fill(t_star.double().numpy(), seen.numpy(), A)
    t = smooth_on_mesh(t, A, cfg.smooth_iters)
    t = torch.as_tensor(t, dtype=torch.float32)
    verts = V0 + t[:, None] * n
    # drop what lies outside the splat (a body part the photo does not show)
    # outside the input view's silhouette, or outside several of the others
    out = (_outside_count(views[:1], verts, cfg) > 0) | \
        (_outside_count(views[1:], verts, cfg, first_is_input=False) >= cfg.outside_views)
    keep_face = (~out[Fc]).sum(1) >= 2
    body_faces = keep_face.nonzero().squeeze(1)
    body_faces = body_faces[_largest_components(Fc[body_faces], N, cfg.min_component)]
    Fk = Fc[body_faces]
    used = torch.zeros(N, dtype=torch.bool)
    used[Fk.reshape(-1)] = True
    body_index = used.nonzero().squeeze(1)
    remap = torch.full((N,), -1, dtype=torch.long)
    remap[body_index] = torch.arange(len(body_index))
    faces_out = remap[Fk]
    verts_out = verts[body_index]
    normals = vertex_normals(verts_out, faces_out)
    stats = {"vertices": int(len(body_index)), "faces": int(len(faces_out)),
             "seen_share": float(seen[body_index].float().mean()) if len(body_index) else 0.0,
             "dropped_faces": int(len(Fc) - len(faces_out)),
             "offset_median": float(t[body_index].median()) if len(body_index) else 0.0}
    if len(faces_out) == 0:
        raise ValueError("the splat covers none of the fitted body: nothing to export")
    return ClothedSurface(verts_out, faces_out, normals, body_index, body_faces, t[body_index],
                          seen[body_index], stats)


def _largest_components(faces: Tensor, num_vertices: int, min_share: float) -> Tensor:
    """[F] bool: the faces of the connected pieces holding at least ``min_share`` of all
    faces."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    if len(faces) == 0:
        return torch.zeros(0, dtype=torch.bool)
    f = faces.numpy()
    i = np.concatenate([f[:, 0], f[:, 1]])
    j = np.concatenate([f[:, 1], f[:, 2]])
    G = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(num_vertices, num_vertices))
    _, label = connected_components(G, directed=False)
    fl = label[f[:, 0]]
    counts = np.bincount(fl)
    keep = counts[fl] >= max(1, min_share * len(f))
    return torch.as_tensor(keep)
