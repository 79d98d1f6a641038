"""Clothed geometry for the hidden sides: the fitted (naked) body grown out to the person's
silhouette, with volume all round.

The body fit says where the person is; the person mask says how far clothes, hair and held
things reach beyond that body. Seen from the side a skirt is about as deep as it is wide, a
coat stands off the back, hair has volume; a naked body has none of it, so views generated from
it (and Gaussians anchored on it) lose them. :func:`clothe_body` moves every body vertex out
along its normal by an offset read from the input view and spread over the mesh:

1. **Rim.** The body is rasterised at the input camera (at ``resolution`` px). A vertex is on
   the rim when it is not hidden, its normal is within ``rim_facing`` (|cos| to the view axis)
   of perpendicular to the view, and the pixel just beyond it along the normal's image
   direction is not covered by the body.
2. **Reach.** From there the march goes on through mask pixels the body does not cover. The
   run length (pixels at the vertex's depth, in metres) is how far the person reaches beyond
   the body there: a run ending on background or the image edge is a measurement (0: tight
   clothes); a run ending on another part of the body is shared by two limbs (the gap between
   the legs under a skirt) and each takes ``shared_gap`` of it; a rim whose next pixel is body
   (an arm over the torso) says nothing. The face (head vertices facing the camera) is pinned
   at 0: the photo shows it, and hair does not grow in front of it. With ``max_shrink`` > 0
   a rim vertex that lies outside the mask (the fit came out wider than the person) takes
   minus the run back in to the mask.
3. **Spread.** Offsets d are one sparse solve on the mesh graph,
   ``(L + w D + decay I) d = w D d_rim`` (L the graph Laplacian, D the rim data mask): smooth,
   soft at the rim, so the front and back of a leg under a skirt move out as far as its sides
   (the thickness assumption: cloth adds depth as it adds width) and parts far from any rim
   stay on the body.
4. **Result.** ``v + d n``, clamped to [-``max_shrink``, ``max_offset``]: the same vertex
   order, faces and labels as the body, so every consumer of a fitted body (the view
   synthesizer, the model's body anchors, the prior baselines) takes it unchanged.

An addition to the paper (its SMPL prior is naked; its diffusion views carry the clothes).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import Cameras
from ..config import check_field_types
from ..errors import ConfigError
from ..geometry import mesh_adjacency, vertex_normals
from ..image_filters import gaussian_blur

__all__ = ["ClothingConfig", "ClothedBody", "clothe_body", "clothe_fit", "EXTREMITIES"]

# parts capped by ClothingConfig.extremity_max
EXTREMITIES = ("left_foot", "right_foot", "left_toe_base", "right_toe_base", "left_hand",
               "right_hand", "left_hand_index", "right_hand_index")
# parts whose reach ClothingConfig.colour_stop does not end: hair is not the skin's colour
COLOUR_EXEMPT = ("head", "neck")


@dataclass
class ClothingConfig:
    """Settings of :func:`clothe_body` (module docs). ``enabled=False`` keeps the naked body.

    resolution: side (px) of the input-view raster the reach is measured in.
    rim_facing: a rim vertex's normal has |cos| to the view axis below this.
    max_offset: metres a vertex may move out (also the longest march).
    shared_gap: the share of a gap between two body parts each of them takes.
    data_weight: strength of the rim data against the mesh smoothness.
    decay: pull of every offset towards 0 (parts far from a rim stay on the body).
    pin_face: head vertices facing the camera keep offset 0.
    max_shrink: metres a rim vertex outside the mask may move in (the fit made the body
        wider than the person; 0 = grow only).
    extremity_max, head_max: caps (metres) on hands and feet (which would otherwise swell
        into whatever they hold or touch) and on the head (hair).
    colour_stop: a march ends where the photo's colour (blurred by ``colour_blur`` px) differs
        from the body's own just inside the rim by more than this (RGB distance in [0,1];
        0 = off): clothing beyond the body is the garment the body wears, so a held helmet
        or bag beside a hip ends the reach there instead of swelling the hip into it.
        Needs the image (:func:`clothe_body`'s ``image``); the parts in ``COLOUR_EXEMPT``
        march as before (hair beside a face or a neck is not the skin's colour).
    """

    enabled: bool = True
    resolution: int = 256
    rim_facing: float = 0.5
    max_offset: float = 0.3
    shared_gap: float = 1.0
    data_weight: float = 10.0
    decay: float = 1e-3
    pin_face: bool = True
    max_shrink: float = 0.0
    extremity_max: float = 0.03
    head_max: float = 0.1
    colour_stop: float = 0.0
    colour_blur: float = 1.5

    def __post_init__(self) -> None:
        check_field_types(self, "clothing")  # settings also come from pipeline.json
        if self.resolution < 32:
            raise ConfigError(f"clothing.resolution must be >= 32, got {self.resolution}")
        if not 0.0 < self.rim_facing <= 1.0:
            raise ConfigError(f"clothing.rim_facing must be in (0, 1], got {self.rim_facing}")
        if not 0.0 <= self.shared_gap <= 1.0:
            raise ConfigError(f"clothing.shared_gap must be in [0, 1], got {self.shared_gap}")
        for name in ("max_offset", "data_weight", "decay", "extremity_max", "head_max",
                     "max_shrink", "colour_stop", "colour_blur"):
            if getattr(self, name) < 0:
                raise ConfigError(f"clothing.{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: "dict | ClothingConfig | None") -> "ClothingConfig":
        """From a config dict (unknown keys are a ConfigError); None = the defaults."""
        if isinstance(d, ClothingConfig):
            return d
        d = dict(d or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown clothing setting(s) {unknown}; known: {sorted(names)}")
        return cls(**d)


@dataclass
class ClothedBody:
    """vertices [N,3] (world) = body + offsets [N] (metres) x normals [N,3]; rim [N] bool: the
    vertices that carried data (step 2); stats: counts."""

    vertices: Tensor
    offsets: Tensor
    normals: Tensor
    rim: Tensor
    stats: dict


def _march(free: Tensor, body: Tensor, start: Tensor, direction: Tensor, steps: int,
           colour: tuple[Tensor, Tensor, Tensor] | None = None
           ) -> tuple[Tensor, Tensor, Tensor]:
    """Walk ``steps`` 1-px steps from ``start`` [M,2] (px) along unit ``direction`` [M,2] over
    the [R,R] bool maps. Returns (first [M] bool: the first step is free or background (the rim
    faces out), run [M] float: free steps before the first non-free one, ends_on_body [M]).
    ``colour`` (image [3,R,R], reference [M,3], limit [M]): a step whose colour is further
    than its march's limit from its reference is not free either."""
    R = free.shape[-1]
    k = torch.arange(steps + 1, dtype=start.dtype)  # step 0 = the first pixel beyond the rim
    pts = start[:, None, :] + k[None, :, None] * direction[:, None, :]  # [M,K,2]
    ij = pts.floor().long()
    inside = (ij >= 0).all(-1) & (ij < R).all(-1)
    ijc = ij.clamp(0, R - 1)
    f = free[ijc[..., 1], ijc[..., 0]] & inside  # [M,K]
    b = body[ijc[..., 1], ijc[..., 0]] & inside
    if colour is not None:
        img, ref, limit = colour
        col = img[:, ijc[..., 1], ijc[..., 0]]  # [3,M,K]
        f = f & ((col - ref.T[:, :, None]).norm(dim=0) <= limit[:, None])
    stop = ~f
    # index of the first non-free step (steps + 1 when the run never stops)
    first_stop = torch.where(stop.any(1), stop.float().argmax(1), torch.full_like(
        stop[:, 0], steps + 1, dtype=torch.long))
    run = first_stop.to(start.dtype)
    at = first_stop.clamp(max=steps)
    ends_on_body = b.gather(1, at[:, None])[:, 0] & (first_stop <= steps)
    return ~b[:, 0], run, ends_on_body


def clothe_body(vertices: Tensor, faces: Tensor, labels: Tensor, camera: Cameras,
                mask: Tensor, config: ClothingConfig | None = None,
                part_names: tuple[str, ...] | None = None,
                image: Tensor | None = None) -> ClothedBody:
    """Grow a fitted body to the person (module docs).

    vertices [N,3] world, faces [F,3], labels [N] (part ids); camera: the one input camera;
    mask [1,S,S] or [S,S] in [0,1] for that camera's image; part_names: the name of each
    label id (for the face pin, the caps and ``COLOUR_EXEMPT``; None = none of them);
    image [3,S,S] in [0,1]: the photo, for ``config.colour_stop`` (None: no colour stop)."""
    from ..render.mesh import rasterize_mesh

    cfg = config or ClothingConfig()
    v = vertices.float()
    normals = vertex_normals(v, faces)
    if not cfg.enabled or cfg.max_offset == 0:
        return ClothedBody(v.clone(), torch.zeros(len(v)), normals,
                           torch.zeros(len(v), dtype=torch.bool), {"rim_vertices": 0})
    R = cfg.resolution
    cam = camera.resized(R, R)
    vm, K = cam.viewmats[0].float(), cam.Ks[0].float()
    m = mask.float().reshape(1, 1, *mask.shape[-2:])
    m = F.interpolate(m, size=(R, R), mode="area")[0, 0] > 0.5  # [R,R]
    ras = rasterize_mesh(v, faces, vm, K, R, R)
    body = ras.face_ids >= 0
    free = m & ~body

    Xc = v @ vm[:3, :3].T + vm[:3, 3]  # [N,3] camera space
    z = Xc[:, 2].clamp(min=1e-3)
    uv = torch.stack([K[0, 0] * Xc[:, 0] / z + K[0, 2], K[1, 1] * Xc[:, 1] / z + K[1, 2]], -1)
    nc = normals @ vm[:3, :3].T  # camera-space normals
    ray = F.normalize(Xc, dim=-1)
    facing = (nc * ray).sum(-1)  # < 0: faces the camera
    d2 = nc[:, :2]
    d2n = d2.norm(dim=-1).clamp(min=1e-6)
    direction = d2 / d2n[:, None]
    # not hidden: no surface nearer than the vertex (a few cm) at its own pixel
    ij = uv.floor().long().clamp(0, R - 1)
    zbuf = ras.depth[ij[:, 1], ij[:, 0]]
    in_img = (uv >= 0).all(-1) & (uv < R).all(-1)
    seen = in_img & (~torch.isfinite(zbuf) | (z <= zbuf + 0.03))
    cand = seen & (facing.abs() < cfg.rim_facing)
    idx = torch.nonzero(cand)[:, 0]
    px_per_m = float(K[0, 0]) / z  # [N] pixels per metre at each vertex's depth
    steps = int(np.ceil(cfg.max_offset * float(px_per_m[idx].max()))) if len(idx) else 0
    data = torch.zeros(len(v))
    has = torch.zeros(len(v), dtype=torch.bool)
    if len(idx):
        start = uv[idx] + 1.0 * direction[idx]  # the first pixel beyond the rim
        colour = None
        if cfg.colour_stop > 0 and image is not None:
            colour = _rim_colours(image, m, cfg.colour_blur, uv[idx], direction[idx],
                                  labels[idx], part_names, cfg.colour_stop)
        faces_out, run, on_body = _march(free, body, start, direction[idx], steps, colour)
        reach = run / px_per_m[idx]
        reach = torch.where(on_body, cfg.shared_gap * reach, reach)
        # along the normal: an in-plane reach needs a longer step when the normal tilts
        reach = reach / d2n[idx].clamp(min=0.5)
        ok = faces_out & ~(on_body & (run == 0))
        data[idx[ok]] = reach[ok].clamp(max=cfg.max_offset)
        has[idx[ok]] = True
        if cfg.max_shrink > 0:
            # a rim outside the mask: the body is wider than the person there (fit error);
            # the run back inward to the mask is how much to take off
            out_px = ~m[ij[idx, 1], ij[idx, 0]] & ok & (run == 0)
            if bool(out_px.any()):
                k = torch.nonzero(out_px)[:, 0]
                nb = torch.zeros_like(m)
                _, back, _ = _march(~m, nb, uv[idx[k]], -direction[idx[k]],
                                    int(np.ceil(cfg.max_shrink * float(px_per_m[idx].max()))))
                shrink = back / px_per_m[idx[k]] / d2n[idx[k]].clamp(min=0.5)
                data[idx[k]] = -shrink.clamp(max=cfg.max_shrink)
    cap = torch.full((len(v),), cfg.max_offset)
    if part_names is not None:
        lab = labels.long()
        for name in EXTREMITIES:
            if name in part_names:
                cap[lab == part_names.index(name)] = min(cfg.extremity_max, cfg.max_offset)
        if "head" in part_names:
            head = lab == part_names.index("head")
            cap[head] = min(cfg.head_max, cfg.max_offset)
            if cfg.pin_face:
                face = head & seen & (facing < -0.3)
                data[face] = 0.0
                has |= face
    data = torch.minimum(data, cap)
    offsets = torch.minimum(_spread(faces, len(v), data, has, cfg), cap)
    out = v + offsets[:, None] * normals
    stats = {"rim_vertices": int(has.sum()), "offset_max_m": float(offsets.max()),
             "offset_mean_m": float(offsets.mean())}
    return ClothedBody(out, offsets, normals, has, stats)


def _rim_colours(image: Tensor, mask: Tensor, blur: float, uv: Tensor, direction: Tensor,
                 labels: Tensor, part_names: tuple[str, ...] | None, limit: float
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """The colour stop's inputs for :func:`_march`: the photo at the [R,R] bool ``mask``'s
    size, blurred by ``blur`` px inside it [3,R,R]; each rim vertex's reference colour [M,3]
    (the photo 2 px inside its rim: what the body wears there); limit [M] (infinite for the
    ``COLOUR_EXEMPT`` parts)."""
    R = mask.shape[-1]
    mask = mask.float().reshape(1, 1, R, R)
    img = F.interpolate(image.float().reshape(1, 3, *image.shape[-2:]), size=(R, R),
                        mode="area")
    if blur > 0:
        # within the mask only: the background must not tint the person's edge
        x = gaussian_blur(torch.cat([img * mask, mask], 1)[0], blur)[None]
        img = torch.where(mask > 0, x[:, :3] / x[:, 3:].clamp(min=1e-6), img)
    img = img[0]
    ij = (uv - 2.0 * direction).floor().long().clamp(0, R - 1)
    ref = img[:, ij[:, 1], ij[:, 0]].T  # [M,3]
    lim = torch.full((len(uv),), float(limit))
    if part_names is not None:
        exempt = [part_names.index(p) for p in COLOUR_EXEMPT if p in part_names]
        lim[torch.isin(labels.long(), torch.tensor(exempt, dtype=torch.long))] = float("inf")
    return img, ref, lim


def _spread(faces: Tensor, n: int, data: Tensor, has: Tensor, cfg: ClothingConfig) -> Tensor:
    """[N] offsets: (L + w D + decay I) d = w D data, clamped to [-max_shrink, max_offset]."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    if not bool(has.any()):
        return torch.zeros(n)
    A = mesh_adjacency(faces, n)
    deg = np.asarray(A.sum(axis=1)).ravel()
    w = cfg.data_weight * has.numpy().astype(np.float64)
    M = sp.diags(deg + w + cfg.decay) - A
    d = spla.spsolve(M.tocsc(), w * data.numpy().astype(np.float64))
    return torch.from_numpy(d).float().clamp(-cfg.max_shrink, cfg.max_offset)


def clothe_fit(fit, mask: Tensor, config: ClothingConfig | None = None,
               image: Tensor | None = None):
    """A copy of the :class:`~humansplat.prior.fit.BodyFit` ``fit`` with clothed vertices
    (``diagnostics["clothing"]`` holds the stats); ``fit`` itself when clothing is off.
    ``image`` [3,S,S]: the photo, for ``config.colour_stop``."""
    from .parts import PART_NAMES

    cfg = config or ClothingConfig()
    if not cfg.enabled:
        return fit
    res = clothe_body(fit.vertices, fit.faces, fit.part_labels, fit.cameras, mask, cfg,
                      part_names=PART_NAMES, image=image)
    diag = dict(fit.diagnostics)
    diag["clothing"] = res.stats
    return dataclasses.replace(fit, vertices=res.vertices.to(fit.vertices.dtype),
                               diagnostics=diag)
