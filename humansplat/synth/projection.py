"""The offline view synthesizer: colour the fitted body from the photo, fill what the photo
does not show, render the views. CPU only, no weights, about half a second at 256 px.

Steps (:meth:`ProjectionSynthesizer.texture`, then :meth:`~ProjectionSynthesizer.render`):

1. **Geometry.** The fitted body (``BodyFit``: posed vertices, faces, part labels and the
   camera it was fitted in) is moved into the world of ``SynthInput.input_camera`` (identity
   when, as in the pipeline, both are the orbit camera at azimuth 0).
2. **Visibility.** A surface point takes the photo's colour when it projects inside the
   image, its normal faces the camera (cosine above ``min_cos``), its depth matches the
   body's z-buffer there (an exact triangle z-buffer, :func:`rasterize_mesh`, within
   ``depth_tol``) and it lies inside the person mask, a pixel or two away from its border
   and from the body's occlusion edges (so bilinear colours never mix in the background or
   an arm in front of the torso).
3. **Seeds for the unseen vertices** (``fill="full"``), weighted by confidence (the source's
   facing cosine): *front/back*: the seen vertex of the **same body part** nearest in the
   input camera's (x, y) plane (for a back vertex: the front vertex straight in front of it),
   so the back of a shirt takes the shirt's colour, not the skin of an arm in front of it;
   *mirror*: the seen vertex mirroring it left/right on the body model
   (``BodyModel.symmetry``), when the synthesizer knows the model. Source colours are
   low-passed over the mesh first (``source_smoothing``). The head takes no front/back seeds
   (``front_back_exclude``): the back of a head is not a face.
4. **Fill.** Harmonic inpainting over the mesh graph: seen vertices fixed, the seeds as soft
   data terms of strength ``seed_strength``, one sparse solve (scipy). ``fill="harmonic"``
   skips the seeds and ``fill="grey"`` paints the unseen vertices grey (the benchmark's
   ablations).
5. **Beyond the body** (``extras``): hair and loose clothes put mask pixels outside the
   naked body's silhouette. Each such pixel (every ``extra_stride``-th) becomes one
   Gaussian on its camera ray at the mid-depth of the nearest body pixel, stretched along the
   camera axis over that body's thickness there (front to back surface), coloured from the
   photo (nearest pixel inside the eroded mask) and labelled with that body pixel's part.
   From the back or the side the hair or skirt is still there, in the colour the photo
   shows: the simplest geometry that stays closed and never floats away from the body.
6. **Views** (``renderer="mesh"``, the default). Each target is rasterised with
   :func:`rasterize_mesh` (``supersample`` x ``supersample`` samples per pixel) and every
   sample is coloured at full photo resolution: the photo where it shows the point (step 2),
   else where it shows the mirrored point, else the photo straight in front of it when the
   body part there is the same (front/back, as in step 3), without that part's rare colours
   (``back_lowpass``: a back continues its garment and its stripes, it does not copy a logo
   or a badge; on the torso, ``back_wrap``, rare means rare at the torso's sides: an open
   jacket's shirt or a tie stays on the front), else the filled vertex colours.
   The extras are splatted with :func:`humansplat.render.rasterize` and composited by depth.
   A target at the input view gets the input photo itself (composited on the background)
   unless ``replace_input_view=False``.

   Why not splat the whole body: one Gaussian per vertex gives soft, bloated silhouettes
   and ~2 cm colour detail (Anny's torso edges are ~2 cm), and is several times slower on
   the CPU. With the true per-vertex colours of a textured body, splatting reached 19.3 dB
   on its back view where the same colours through the mesh renderer (2x2 samples) reached
   32.6 dB (128 px, the frontal case of ``benchmarks/synth_quality.py``): splatting could
   not even beat flipping the photo (21.4 dB).
   ``renderer="gaussians"`` renders the splats instead.

The textured body as Gaussians (one flat disc per vertex in its tangent plane, std =
``disc_scale`` x its incident edges' spread, plus the extras, part labels set) is
:meth:`ProjectionSynthesizer.prior_gaussians`: the "prior-only" baseline of the evaluation.
Features are in the synthesizer's ``space`` (:class:`PixelSpace` by default: the views).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import Cameras, project_points
from ..errors import ConfigError
from ..gaussians import Gaussians
from ..image_filters import gaussian_blur
from .base import ProgressCallback, SynthInput, SynthOutput, ViewSynthesizer, same_angle
from ..latent_space import LatentSpace, PixelSpace, resize_images

if TYPE_CHECKING:
    from ..prior.body import BodyModel

__all__ = [
    "FILL_MODES",
    "RENDERERS",
    "PhotoView",
    "ProjectionConfig",
    "ProjectionSynthesizer",
    "TexturedBody",
    "MeshRaster",
    "rasterize_mesh",
    "mesh_edges",
    "body_gaussians",
    "part_lowpass",
]

FILL_MODES = ("full", "harmonic", "grey")
RENDERERS = ("mesh", "gaussians")
_GREY = 0.5


# ----------------------------------------------------------------------------------------
# mesh helpers
# ----------------------------------------------------------------------------------------
# The exact triangle z-buffer lives with the other rasterizers (humansplat.render.mesh).
from ..geometry import mesh_adjacency, rotmat_to_quat, vertex_normals  # noqa: E402
from ..render.mesh import MeshRaster, rasterize_mesh  # noqa: E402,F401


def mesh_edges(faces: Tensor) -> Tensor:
    """[E,2] int64 unique undirected edges (i < j) of a triangle mesh."""
    f = faces.long()
    e = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 0)
    e = torch.sort(e, dim=1).values
    return torch.unique(e, dim=0)


def _tangent_frames(normals: Tensor) -> Tensor:
    """[N,3,3] rotations whose third column is the normal (any tangent basis)."""
    n = normals
    helper = torch.zeros_like(n)
    use_y = n[:, 0].abs() > 0.9
    helper[use_y, 1] = 1.0
    helper[~use_y, 0] = 1.0
    t1 = F.normalize(torch.linalg.cross(helper, n, dim=-1), dim=-1)
    t2 = torch.linalg.cross(n, t1, dim=-1)
    return torch.stack([t1, t2, n], dim=-1)


# Edges are cached per mesh topology (the faces never change within a body model).
_EDGE_CACHE: dict[str, Tensor] = {}


def _cached_edges(faces: Tensor, n_vertices: int) -> Tensor:
    key = hashlib.blake2b(faces.detach().cpu().long().numpy().tobytes(), digest_size=16)
    key = f"{n_vertices}:{key.hexdigest()}"
    e = _EDGE_CACHE.get(key)
    if e is None:
        e = mesh_edges(faces.cpu())
        if len(_EDGE_CACHE) > 8:
            _EDGE_CACHE.clear()
        _EDGE_CACHE[key] = e
    return e


def body_gaussians(vertices: Tensor, faces: Tensor, colors: Tensor,
                   labels: Optional[Tensor] = None, *, disc_scale: float = 0.35,
                   flatness: float = 0.25, opacity: float = 0.98,
                   normals: Optional[Tensor] = None) -> Gaussians:
    """One flat Gaussian disc per vertex: vertices [N,3], faces [F,3], colors [N,3] in [0,1],
    labels [N]. The disc's tangent covariance is ``disc_scale``^2 x twice the covariance of the
    vertex's incident edges in its tangent plane (for a regular ring of edges of length L:
    std ``disc_scale`` x L each way), normal std = ``flatness`` x their mean, so
    neighbouring discs overlap into a closed surface even where the mesh is stretched one way
    (a clothed body's leg grows round, not long: :mod:`humansplat.prior.clothing`)."""
    v = vertices.float()
    N = v.shape[0]
    if colors.shape != (N, 3):
        raise ValueError(f"colors must be [{N},3], got {tuple(colors.shape)}")
    e = _cached_edges(faces, N).to(v.device)
    n = vertex_normals(v, faces) if normals is None else normals.float()
    frames = _tangent_frames(n)  # [N,3,3], columns t1, t2, n
    ends = torch.cat([e, e.flip(1)])  # both directions: (vertex, neighbour)
    d = v[ends[:, 1]] - v[ends[:, 0]]  # [2E,3]
    d2 = torch.einsum("ek,ekj->ej", d, frames[ends[:, 0], :, :2])  # tangent coordinates
    cov = torch.zeros(N, 2, 2, device=v.device).index_add_(
        0, ends[:, 0], d2[:, :, None] * d2[:, None, :])
    deg = torch.zeros(N, device=v.device).index_add_(0, ends[:, 0],
                                                     torch.ones(len(ends), device=v.device))
    cov = cov / deg.clamp(min=1)[:, None, None]
    lam, vec = torch.linalg.eigh(cov + 1e-12 * torch.eye(2, device=v.device))  # [N,2], [N,2,2]
    sig = disc_scale * (2 * lam.clamp(min=0)).sqrt()  # [N,2]
    if bool((deg == 0).any()) and bool((deg > 0).any()):  # isolated vertices: a typical size
        sig = torch.where((deg > 0)[:, None], sig, sig[deg > 0].median())
    sig = sig.clamp(min=1e-4)
    t = torch.einsum("nij,njk->nik", frames[:, :, :2], vec)  # eigenvectors in world
    rot = torch.cat([t, n[:, :, None]], dim=2)
    rot = torch.where((torch.linalg.det(rot) < 0)[:, None, None],
                      torch.cat([t[:, :, 1:], t[:, :, :1], n[:, :, None]], dim=2), rot)
    sig = torch.where((torch.linalg.det(torch.cat([t, n[:, :, None]], 2)) < 0)[:, None],
                      sig.flip(1), sig)
    quats = rotmat_to_quat(rot)
    scales = torch.cat([sig, flatness * sig.mean(1, keepdim=True)], dim=-1)
    return Gaussians(means=v.clone(), quats=quats, scales=scales,
                     opacities=torch.full((N,), float(opacity), device=v.device),
                     colors=colors.float().clamp(0, 1).clone(),
                     labels=None if labels is None else labels.long().clone())


def _adjacency(faces: Tensor, n_vertices: int):
    """Symmetric 0/1 vertex adjacency of a mesh (scipy CSR, float64). Plain graph weights:
    inverse-edge-length weights (a more geometric diffusion on Anny's ~5x denser face) scored
    0.1 dB lower on ``benchmarks/synth_quality.py``, so the simplest graph stays."""
    return mesh_adjacency(faces, n_vertices)


def _safe_to_sample(mask: Tensor, depth: Tensor, radius: int, jump: float) -> Tensor:
    """[S,S] bool: pixels whose colour belongs to the surface there: inside the person mask
    and away from occlusion edges of the body (neighbouring depths differing by more than
    ``jump``, e.g. an arm in front of the torso), both eroded by ``radius`` pixels, so
    bilinear samples never mix the background, or an occluder, into a surface's colour."""
    bad = ~mask
    if jump > 0:
        finite = torch.isfinite(depth)
        d = torch.where(finite, depth, torch.zeros(()))
        edge = torch.zeros_like(mask)
        for a, b in (((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
                     ((slice(1, None), slice(None)), (slice(None, -1), slice(None)))):
            step = finite[a] & finite[b] & ((d[a] - d[b]).abs() > jump)
            edge[a] |= step
            edge[b] |= step
        bad = bad | edge
    if radius > 0:
        bad = F.max_pool2d(bad.float()[None, None], 2 * radius + 1, 1, radius)[0, 0] > 0
    return ~bad


#: colour histogram bins per channel, and the share of a part's pixels below which a
#: colour counts as a detail (fully at RARE[0], not at all from RARE[1])
_COLOUR_BINS = 8
_RARE = (0.03, 0.10)


def _side_band(labels: Tensor, own: Tensor, band: float) -> Tensor:
    """[M] bool over the ``own`` pixels: within ``band`` (a fraction of the width) of the
    left or right end of their part's run of pixels on their row."""
    S = labels.shape[-1]
    rows, cols = own.nonzero(as_tuple=True)
    key = labels[own] * S + rows
    n = int(key.max()) + 1
    lo = torch.full((n,), S, dtype=torch.long).scatter_reduce(0, key, cols, "amin")
    hi = torch.full((n,), -1, dtype=torch.long).scatter_reduce(0, key, cols, "amax")
    t = (cols - lo[key]).float() / (hi[key] - lo[key]).clamp(min=1).float()
    return (t <= band) | (t >= 1.0 - band)


def part_lowpass(image: Tensor, labels: Tensor, mask: Tensor, sigma: float,
                 size: int = 128, wrap_parts: tuple[int, ...] = (),
                 side_band: float = 0.15) -> Tensor:
    """What a back takes from the front of each body part: [3,S,S] from image [3,S,S],
    labels [S,S] (part per pixel, -1 none) and mask [S,S] bool (pixels to use).

    A colour common in its part (a garment, its stripes or checks: at least 10 % of the
    part's pixels in its colour-histogram bin) is kept as the photo shows it, so patterns
    continue; a rare one (under 3 %: a badge, a logo, a strap, a print) is replaced by the
    part's common colours around it (their Gaussian blur of std ``sigma`` x the side,
    computed at ``size`` px), so it is neither copied onto the back nor smeared into a blob.
    For the ``wrap_parts`` (part ids) the frequencies are counted over the part's sides only
    (within ``side_band`` of its width from either end of its run on each row), so a
    colour only its middle shows is rare there however large it is. Pixels of no part are
    returned as they are."""
    S = image.shape[-1]
    img = image.float()
    out = img.clone()
    own = (labels >= 0) & mask
    if not bool(own.any()):
        return out
    parts, pidx = torch.unique(labels[own], return_inverse=True)  # [P], [M]
    B = _COLOUR_BINS
    q = (img[:, own].T * B).long().clamp(0, B - 1)  # [M,3]
    key = pidx * B ** 3 + (q[:, 0] * B + q[:, 1]) * B + q[:, 2]
    counts = torch.bincount(key, minlength=len(parts) * B ** 3).float()
    n_part = torch.bincount(pidx, minlength=len(parts)).float()
    freq = counts[key] / n_part[pidx]
    if wrap_parts:
        # a garment wraps around the torso: what its sides show continues onto the back,
        # what only its middle shows (an open jacket's shirt, a tie, a print) does not
        side = _side_band(labels, own, side_band)
        c_side = torch.bincount(key[side], minlength=len(parts) * B ** 3).float()
        n_side = torch.bincount(pidx[side], minlength=len(parts)).float()
        wrap = torch.isin(parts, torch.tensor(wrap_parts, dtype=parts.dtype)) & (n_side >= 20)
        freq = torch.where(wrap[pidx], c_side[key] / n_side[pidx].clamp(min=1), freq)
    common = torch.zeros(S, S)
    common[own] = ((freq - _RARE[0]) / (_RARE[1] - _RARE[0])).clamp(0, 1)

    s = min(int(size), S)
    small = lambda x: F.interpolate(x[None].float(), size=(s, s), mode="area")[0]  # noqa
    img_s = small(img)
    lab_s = F.interpolate(labels[None, None].float(), size=(s, s), mode="nearest")[0, 0].long()
    sd = max(float(sigma) * s, 0.5)
    # per part: the blur of its common pixels only
    w = torch.stack([small(((labels == p) & mask).float()[None] * common[None])[0]
                     for p in parts.tolist()])  # [P,s,s]
    num = gaussian_blur((img_s[None] * w[:, None]).reshape(-1, s, s), sd)
    num = num.reshape(len(parts), 3, s, s)
    den = gaussian_blur(w, sd)  # [P,s,s]
    fill_s = img_s.clone()
    for i, p in enumerate(parts.tolist()):
        at = (lab_s == p) & (den[i] > 1e-4)
        fill_s[:, at] = num[i][:, at] / den[i][at]
    fill = F.interpolate(fill_s[None], size=(S, S), mode="bilinear", align_corners=False)[0]
    blend = own.float() * (1.0 - common)
    return (out * (1 - blend) + fill * blend).clamp(0, 1)


# ----------------------------------------------------------------------------------------
# the photo, as seen from the body
# ----------------------------------------------------------------------------------------
@dataclass
class PhotoView:
    """The input photo with what is needed to look surface points up in it.

    image [3,S,S] in [0,1]; mask [S,S] bool (safe to sample: see ``_safe_to_sample``);
    raster: the body's :class:`MeshRaster` in the input camera; labels [S,S] int64 part label
    of the body surface at each pixel (-1 where none); viewmat [4,4], K [3,3]: the input
    camera at S px, in the world of the textured body; lowpass [3,S,S] or None: the photo
    without the details of each body part (:func:`part_lowpass`), what a back takes from
    the front.
    """

    image: Tensor
    mask: Tensor
    raster: MeshRaster
    labels: Tensor
    viewmat: Tensor
    K: Tensor
    lowpass: Optional[Tensor] = None

    @property
    def size(self) -> int:
        return int(self.image.shape[-1])

    @property
    def centre(self) -> Tensor:
        return torch.linalg.inv(self.viewmat)[:3, 3]

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """World points [M,3] -> (pixels [M,2], depth [M])."""
        uv, z = project_points(points, self.viewmat[None], self.K[None])
        return uv[0], z[0]

    def _pixel(self, uv: Tensor) -> tuple[Tensor, Tensor]:
        p = uv.floor().long().clamp(0, self.size - 1)
        return p[:, 1], p[:, 0]

    def inside(self, uv: Tensor, z: Tensor) -> Tensor:
        S = self.size
        return (uv[:, 0] >= 0) & (uv[:, 0] < S) & (uv[:, 1] >= 0) & (uv[:, 1] < S) & (z > 0)

    def in_mask(self, uv: Tensor) -> Tensor:
        py, px = self._pixel(uv)
        return self.mask[py, px]

    def label_at(self, uv: Tensor) -> Tensor:
        py, px = self._pixel(uv)
        return self.labels[py, px]

    def sample(self, uv: Tensor, *, lowpass: bool = False) -> Tensor:
        """Bilinear colours [M,3] at pixels uv [M,2] (pixel centres at +0.5) of the photo,
        or of its part-wise low-pass (``lowpass``, when there is one)."""
        src = self.lowpass if lowpass and self.lowpass is not None else self.image
        grid = (uv / self.size * 2.0 - 1.0)[None, None]  # normalised: any source resolution
        return F.grid_sample(src[None], grid, mode="bilinear", padding_mode="border",
                             align_corners=False)[0, :, 0].T

    def to_camera(self, points: Tensor) -> Tensor:
        """World points [M,3] -> camera-space points [M,3] (OpenCV)."""
        return points @ self.viewmat[:3, :3].T + self.viewmat[:3, 3]

    def front_of(self, points: Tensor, iterations: int = 2) -> tuple[Tensor, Tensor]:
        """Where the photo shows the body surface straight in front of each point [M,3]:
        the surface point with the same camera-space (x, y) nearest the camera (an
        orthographic front/back correspondence; following the pixel ray instead would slide
        down the body by ~2 cm per 20 cm of thickness). Returns (pixels [M,2], found [M] bool:
        the photo's body z-buffer covers them)."""
        cam = self.to_camera(points)
        uv, _ = self.project(points)
        found = torch.zeros(points.shape[0], dtype=torch.bool)
        for _ in range(iterations):
            py, px = self._pixel(uv)
            zf = self.raster.depth[py, px]
            found = torch.isfinite(zf)
            zf = torch.where(found, zf, cam[:, 2])
            front = torch.cat([cam[:, :2], zf[:, None]], -1)
            uvw = front @ self.K.T
            uv = uvw[:, :2] / uvw[:, 2:].clamp(min=1e-6)
        return uv, found & self.inside(uv, torch.ones_like(uv[:, 0]))

    def seen(self, points: Tensor, normals: Tensor, min_cos: float,
             depth_tol: float) -> tuple[Tensor, Tensor, Tensor]:
        """Which surface points [M,3] (normals [M,3]) the photo shows: inside the image,
        facing the camera (cosine > min_cos), not behind the z-buffer by more than
        ``depth_tol`` and on a pixel safe to sample. Returns (seen [M] bool, cosine [M], uv)."""
        uv, z = self.project(points)
        cos = (normals * F.normalize(self.centre - points, dim=-1)).sum(-1)
        # depth of the 2x2 pixel centres around the projection: the farthest finite one, so
        # a point on its own surface's rim is not hidden by a neighbouring occluder
        S, depth = self.size, self.raster.depth
        base = torch.floor(uv - 0.5).long()
        zref = torch.full_like(z, -math.inf)
        for dy in (0, 1):
            for dx in (0, 1):
                d = depth[(base[:, 1] + dy).clamp(0, S - 1), (base[:, 0] + dx).clamp(0, S - 1)]
                zref = torch.maximum(zref, torch.where(torch.isfinite(d), d, zref))
        ok = self.inside(uv, z) & (cos > min_cos) & (z <= zref + depth_tol) & self.in_mask(uv)
        return ok, cos, uv


# ----------------------------------------------------------------------------------------
# the textured body
# ----------------------------------------------------------------------------------------
@dataclass
class TexturedBody:
    """The fitted body coloured from the photo, in the world of the input camera.

    vertices [N,3], faces [F,3], labels [N] (part 0..23), normals [N,3], colors [N,3] in
    [0,1]; visible [N] bool (coloured from the photo), seeded [N] bool (unseen, with a
    front/back or mirror seed), confidence [N] (facing cosine of the visible ones, seed
    weight of the seeded ones, 0 elsewhere); extras: the Gaussians beyond the body (hair,
    loose clothes) or None; photo: the :class:`PhotoView` for per-pixel look-ups; symmetry
    [N] or None; stats: counts and timings.
    """

    vertices: Tensor
    faces: Tensor
    labels: Tensor
    normals: Tensor
    colors: Tensor
    visible: Tensor
    seeded: Tensor
    confidence: Tensor
    extras: Optional[Gaussians]
    photo: PhotoView
    symmetry: Optional[Tensor] = None
    stats: dict = field(default_factory=dict)


@dataclass
class ProjectionConfig:
    """Settings of :class:`ProjectionSynthesizer` (see the module docs for each step).

    resolution: side of the returned views; None = the input image's side.
    background: RGB (or one grey level) the views are rendered on.
    fill: "full" (seeds + harmonic fill), "harmonic" (no seeds) or "grey" (unseen = grey).
    renderer: "mesh" (the coloured body through the triangle rasterizer, photo looked up per
        pixel, extras splatted with :func:`humansplat.render.rasterize` and composited by
        depth) or "gaussians" (the prior Gaussians through ``rasterize`` alone).
    supersample: samples per pixel side of the mesh renderer (antialiasing).
    min_cos: a point is seen only when its normal faces the camera by more than this cosine.
    depth_tol: metres a point may lie behind the z-buffer and still count as seen.
    occlusion_jump: a depth step (metres) between neighbouring pixels that marks an occlusion
        edge of the body; colours are not sampled within ``mask_erode_px`` of one (0: off).
    mask_erode_px: pixels the mask is eroded by before sampling colours (None: S/128, >= 1).
    front_back_radius: search radius (metres, across the view) of the vertex front/back seed.
    front_back_weight, mirror_weight: seed weights (x the source's confidence); 0 disables.
    front_back_exclude: parts that take no front/back colours (the back of a head is not a
        face); they are filled from their seen neighbours and mirror.
    source_smoothing: low-pass passes over the seed sources' colours.
    back_lowpass: what a point the photo does not show takes from the photo straight in
        front of it (front/back) is the photo without its part's rare colours (a badge, a
        logo: replaced by the part's common colours blurred with a Gaussian of this std, a
        fraction of the image side; :func:`part_lowpass`), so garments and their patterns
        continue onto backs and badges do not; 0 copies the photo pixel as it is.
    back_wrap: parts whose colours count as common only when the part's left and right
        sides show them (the outer 15 % of its width on each row): a garment wraps around
        the torso, so what its sides show continues onto the back, what only its middle
        shows (an open jacket's shirt, a tie, a print) does not. () : the whole part counts.
    seed_strength: weight of a seed against the fill's smoothness (per unit confidence).
    extras: add Gaussians for mask pixels outside the body's silhouette.
    extra_stride: pixel stride of those (None: S/256, >= 1).
    disc_scale, flatness, opacity: the body's Gaussians (see :func:`body_gaussians`).
    replace_input_view: a target at the input view returns the input photo itself.

    Torch's thread count is not a setting here: a run never changes process-wide state
    (concurrent runs share the process); it is fixed once at start-up
    (:func:`humansplat.runtime.fix_threads`).
    """

    resolution: Optional[int] = None
    background: float | Sequence[float] = 1.0
    fill: str = "full"
    renderer: str = "mesh"
    supersample: int = 2
    min_cos: float = 0.1
    depth_tol: float = 0.02
    occlusion_jump: float = 0.05
    mask_erode_px: Optional[int] = None
    front_back_radius: float = 0.1
    front_back_weight: float = 1.0
    mirror_weight: float = 1.0
    front_back_exclude: tuple[str, ...] = ("head",)
    source_smoothing: int = 2
    back_lowpass: float = 0.03
    back_wrap: tuple[str, ...] = ("hips", "spine", "spine1", "spine2")
    seed_strength: float = 20.0
    extras: bool = True
    extra_stride: Optional[int] = None
    disc_scale: float = 0.35  # 0.6 before the clothed body: its discs rendered puffy
    flatness: float = 0.25
    opacity: float = 0.98
    replace_input_view: bool = True

    def __post_init__(self) -> None:
        from ..prior.parts import PART_NAMES

        if self.fill not in FILL_MODES:
            raise ConfigError(f"ProjectionConfig.fill must be one of {FILL_MODES}, "
                              f"got {self.fill!r}")
        if self.renderer not in RENDERERS:
            raise ConfigError(f"ProjectionConfig.renderer must be one of {RENDERERS}, "
                              f"got {self.renderer!r}")
        if self.resolution is not None and (not isinstance(self.resolution, int)
                                            or self.resolution < 8):
            raise ConfigError(f"ProjectionConfig.resolution must be None or an int >= 8, "
                              f"got {self.resolution!r}")
        if not isinstance(self.supersample, int) or not 1 <= self.supersample <= 4:
            raise ConfigError(f"ProjectionConfig.supersample must be an int in 1..4, "
                              f"got {self.supersample!r}")
        bg = self.background_rgb
        if any(not 0.0 <= c <= 1.0 for c in bg):
            raise ConfigError(f"ProjectionConfig.background must be in [0,1], "
                              f"got {self.background!r}")
        if not -1.0 <= self.min_cos < 1.0:
            raise ConfigError(f"ProjectionConfig.min_cos must be in [-1,1), got {self.min_cos}")
        for name in ("depth_tol", "occlusion_jump", "front_back_radius", "front_back_weight",
                     "mirror_weight", "seed_strength", "disc_scale", "flatness",
                     "back_lowpass"):
            if getattr(self, name) < 0:
                raise ConfigError(f"ProjectionConfig.{name} must be >= 0, "
                                  f"got {getattr(self, name)}")
        if not 0.0 < self.opacity <= 1.0:
            raise ConfigError(f"ProjectionConfig.opacity must be in (0,1], got {self.opacity}")
        if self.mask_erode_px is not None and (not isinstance(self.mask_erode_px, int)
                                               or self.mask_erode_px < 0):
            raise ConfigError(f"ProjectionConfig.mask_erode_px must be None or an int >= 0, "
                              f"got {self.mask_erode_px!r}")
        if self.extra_stride is not None and (not isinstance(self.extra_stride, int)
                                              or self.extra_stride < 1):
            raise ConfigError(f"ProjectionConfig.extra_stride must be None or an int >= 1, "
                              f"got {self.extra_stride!r}")
        if not isinstance(self.source_smoothing, int) or self.source_smoothing < 0:
            raise ConfigError(f"ProjectionConfig.source_smoothing must be an int >= 0, "
                              f"got {self.source_smoothing!r}")
        for name in ("front_back_exclude", "back_wrap"):
            setattr(self, name, tuple(getattr(self, name)))
            bad = [p for p in getattr(self, name) if p not in PART_NAMES]
            if bad:
                raise ConfigError(f"ProjectionConfig.{name}: unknown part(s) {bad}; "
                                  f"parts are humansplat.prior.parts.PART_NAMES")

    @property
    def background_rgb(self) -> tuple[float, float, float]:
        b = self.background
        if isinstance(b, (int, float)):
            return (float(b),) * 3
        b = tuple(float(x) for x in b)
        if len(b) != 3:
            raise ConfigError(f"ProjectionConfig.background must be a float or 3 floats, got {b!r}")
        return b

    def back_wrap_ids(self) -> tuple[int, ...]:
        from ..prior.parts import PART_NAMES

        return tuple(PART_NAMES.index(p) for p in self.back_wrap)

    def front_back_parts(self) -> Tensor:
        """[24] bool: the parts that take front/back colours."""
        from ..prior.parts import NUM_PARTS, PART_NAMES

        ok = torch.ones(NUM_PARTS, dtype=torch.bool)
        for p in self.front_back_exclude:
            ok[PART_NAMES.index(p)] = False
        return ok


class ProjectionSynthesizer(ViewSynthesizer):
    """The offline default synthesizer (see the module docs).

    body_model: the :class:`~humansplat.prior.body.BodyModel` the fit used, for its
        left/right symmetry map (mirror seeds); without it (or when its vertex count does
        not match the fit) the mirror seeds are skipped and ``info["mirror"]`` says so.
    symmetry: [N] int64 vertex -> mirrored vertex, instead of a model.
    space: the reconstruction space of ``features`` (default :class:`PixelSpace`).
    config: a :class:`ProjectionConfig`; keyword arguments override its fields.
    """

    name = "projection"
    default_steps = None
    default_guidance = None

    def __init__(self, body_model: Optional["BodyModel"] = None, *,
                 symmetry: Optional[Tensor] = None, space: Optional[LatentSpace] = None,
                 config: Optional[ProjectionConfig] = None, **overrides: Any):
        base = config if config is not None else ProjectionConfig()
        if not isinstance(base, ProjectionConfig):
            raise ValueError(f"config must be a ProjectionConfig, got {type(base).__name__}")
        if overrides:
            unknown = set(overrides) - set(ProjectionConfig.__dataclass_fields__)
            if unknown:
                raise ValueError(f"unknown ProjectionSynthesizer option(s): {sorted(unknown)}")
            base = ProjectionConfig(**{**base.__dict__, **overrides})
        self.config = base
        if space is not None and not isinstance(space, LatentSpace):
            raise ValueError(f"space must be a LatentSpace, got {type(space).__name__}")
        self.space = space if space is not None else PixelSpace()
        if symmetry is not None:
            symmetry = torch.as_tensor(symmetry, dtype=torch.long).cpu()
            if symmetry.ndim != 1 or (symmetry.numel() and (
                    int(symmetry.min()) < 0 or int(symmetry.max()) >= symmetry.numel())):
                raise ValueError("symmetry must be [N] int64 indices in 0..N-1")
        if symmetry is None and body_model is not None:
            symmetry = body_model.symmetry.detach().cpu()  # cached on the model after once
        self._symmetry = symmetry

    # -- helpers --------------------------------------------------------------------------
    def _symmetry_for(self, n_vertices: int) -> Optional[Tensor]:
        s = self._symmetry
        if s is None or s.numel() != n_vertices:
            return None
        return s

    @staticmethod
    def _body_in_input_world(inp: SynthInput) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(vertices [N,3] in the input camera's world, faces [F,3], labels [N], input
        viewmat [4,4], K [3,3] at S px), with clear errors for a malformed fit."""
        fit = inp.body_fit
        if fit is None:
            raise ValueError("ProjectionSynthesizer needs SynthInput.body_fit (the fitted body); "
                             "fit one with humansplat.prior.fit.fit_preprocessed")
        for name in ("vertices", "faces", "part_labels", "viewmat", "K", "image_size"):
            if not hasattr(fit, name):
                raise ValueError(f"SynthInput.body_fit has no {name!r}: expected a BodyFit")
        V = fit.vertices.detach().float().cpu()
        if V.ndim != 2 or V.shape[1] != 3 or V.shape[0] < 4:
            raise ValueError(f"body_fit.vertices must be [N,3], got {tuple(V.shape)}")
        if not bool(torch.isfinite(V).all()):
            raise ValueError("body_fit.vertices contain NaN or Inf")
        faces = fit.faces.detach().long().cpu()
        if faces.ndim != 2 or faces.shape[1] != 3 or faces.numel() == 0 \
                or int(faces.min()) < 0 or int(faces.max()) >= V.shape[0]:
            raise ValueError(f"body_fit.faces must be [F,3] indices into the {V.shape[0]} vertices")
        labels = fit.part_labels.detach().long().cpu()
        if labels.shape != (V.shape[0],):
            raise ValueError(f"body_fit.part_labels must be [{V.shape[0]}], "
                             f"got {tuple(labels.shape)}")
        S = inp.size
        Vfit = fit.viewmat.detach().float().cpu()
        Kfit = fit.K.detach().float().cpu().clone()
        w, h = fit.image_size
        Kfit[0] *= S / float(w)  # the fit may have run on another size of the same crop
        Kfit[1] *= S / float(h)
        Vin = inp.input_camera.viewmats[0].detach().float().cpu()
        M = torch.linalg.inv(Vin) @ Vfit  # fit world -> input-camera world (usually identity)
        verts = V @ M[:3, :3].T + M[:3, 3]
        return verts, faces, labels, Vin, Kfit

    # -- texturing ------------------------------------------------------------------------
    def texture(self, inp: SynthInput) -> TexturedBody:
        """Colour the fitted body from ``inp`` (steps 1-5 of the module docs)."""
        if not isinstance(inp, SynthInput):
            raise ValueError(f"inp must be a SynthInput, got {type(inp).__name__}")
        with torch.no_grad():
            return self._texture(inp)

    def _texture(self, inp: SynthInput) -> TexturedBody:
        cfg = self.config
        t0 = time.perf_counter()
        verts, faces, labels, viewmat, K = self._body_in_input_world(inp)
        N, S = verts.shape[0], inp.size
        image = inp.image.detach().float().cpu().clamp(0, 1)
        mask = inp.mask.detach().float().cpu().clamp(0, 1)

        # -- visibility ------------------------------------------------------------------
        normals = vertex_normals(verts, faces)
        raster = rasterize_mesh(verts, faces, viewmat, K, S, S)
        r = cfg.mask_erode_px if cfg.mask_erode_px is not None else max(1, round(S / 128))
        safe = _safe_to_sample(mask[0] >= 0.5, raster.depth, r, cfg.occlusion_jump)
        pix_labels = torch.full((S, S), -1, dtype=torch.long)
        cov = raster.coverage
        corner = raster.bary[cov].argmax(-1, keepdim=True)
        pix_labels[cov] = labels[faces[raster.face_ids[cov]].gather(1, corner)[:, 0]]
        lowpass = (part_lowpass(image, pix_labels, safe, cfg.back_lowpass,
                                wrap_parts=cfg.back_wrap_ids())
                   if cfg.fill == "full" and cfg.front_back_weight > 0 and cfg.back_lowpass > 0
                   else None)
        photo = PhotoView(image, safe, raster, pix_labels, viewmat, K, lowpass)
        visible, cos, uv = photo.seen(verts, normals, cfg.min_cos, cfg.depth_tol)
        sampled = photo.sample(uv)
        conf_vis = torch.where(visible, cos.clamp(min=0.05, max=1.0), torch.zeros_like(cos))
        t_vis = time.perf_counter()

        # -- fill -------------------------------------------------------------------------
        sym = self._symmetry_for(N) if cfg.fill == "full" and cfg.mirror_weight > 0 else None
        # what a back takes from the front: the part-wise low-pass, not the photo's details
        behind = photo.sample(uv, lowpass=True) if photo.lowpass is not None else None
        colors, seeded, conf, fill_stats = self._fill(
            sampled, visible, conf_vis, photo.to_camera(verts)[:, :2], labels, faces, sym,
            behind)
        t_fill = time.perf_counter()

        # -- beyond the body ---------------------------------------------------------------
        extras = self._extras(photo, mask, faces, labels) if cfg.extras else None
        t_end = time.perf_counter()
        stats = {
            "vertices": N,
            "visible": int(visible.sum()),
            "seeded": int(seeded.sum()),
            "extra_gaussians": 0 if extras is None else len(extras),
            "mask_erode_px": r,
            "seconds_visibility": t_vis - t0,
            "seconds_fill": t_fill - t_vis,
            "seconds_extras": t_end - t_fill,
            **fill_stats,
        }
        return TexturedBody(verts, faces, labels, normals, colors, visible, seeded, conf,
                            extras, photo, sym, stats)

    def _fill(self, sampled: Tensor, visible: Tensor, conf_vis: Tensor, cam_xy: Tensor,
              labels: Tensor, faces: Tensor, sym: Optional[Tensor],
              behind: Optional[Tensor] = None):
        """Colours of all vertices [N,3], seeded [N] bool, confidence [N], stats.
        behind [N,3]: the colours front/back seeds take from the seen vertices (default:
        ``sampled``, low-passed like the mirror seeds)."""
        cfg = self.config
        N = sampled.shape[0]
        colors = sampled.clone()
        seeded = torch.zeros(N, dtype=torch.bool)
        conf = conf_vis.clone()
        stats: dict[str, Any] = {"fill": cfg.fill, "mirror": sym is not None,
                                 "front_back_seeds": 0, "mirror_seeds": 0}
        unseen = ~visible
        if not bool(unseen.any()):
            return colors, seeded, conf, stats
        if not bool(visible.any()):
            # nothing of the body is seen (a fit that misses the mask): flat grey
            colors[:] = _GREY
            stats["fill"] = "grey (no visible vertex)"
            return colors, seeded, conf, stats
        if cfg.fill == "grey":
            colors[unseen] = _GREY
            return colors, seeded, conf, stats

        import scipy.sparse as sp
        from scipy.sparse.linalg import spsolve

        A = _adjacency(faces, N)
        vis_np = visible.numpy()
        known = np.flatnonzero(vis_np)
        unknown = np.flatnonzero(~vis_np)
        c = colors.double().numpy()
        wk = conf_vis.double().numpy()
        seed_col = np.zeros((N, 3))
        seed_w = np.zeros(N)
        if cfg.fill == "full":
            def smoothed(x: np.ndarray) -> np.ndarray:
                # confidence-weighted average over seen neighbours of the same part: a
                # low-pass of the photo that does not blend a shirt with the arm beside it
                if cfg.source_smoothing <= 0:
                    return x
                lab = labels.numpy()
                Ac = A.tocoo()
                same = lab[Ac.row] == lab[Ac.col]
                Ak = sp.csr_matrix((Ac.data[same], (Ac.row[same], Ac.col[same])),
                                   shape=A.shape)[:, known]
                for _ in range(cfg.source_smoothing):
                    num = x * wk[:, None] + Ak @ (x[known] * wk[known, None])
                    den = wk + Ak @ wk[known]
                    x = np.where(den[:, None] > 0, num / np.maximum(den, 1e-12)[:, None], x)
                return x

            src = smoothed(c.copy())
            if cfg.front_back_weight > 0 and cfg.front_back_radius > 0:
                # the seen vertex of the same part nearest across the view
                from scipy.spatial import cKDTree

                # camera-space (x, y): orthographic, like PhotoView.front_of
                xy = cam_xy.double().numpy()
                radius = cfg.front_back_radius
                big = 10.0 * (np.abs(xy).max() + radius)  # parts apart by more than any search
                pts = np.concatenate([xy, labels.double().numpy()[:, None] * big], 1)
                allowed = cfg.front_back_parts().numpy()[labels.numpy()]
                tgt_all = unknown[allowed[unknown]]
                if len(tgt_all):
                    d, j = cKDTree(pts[known]).query(pts[tgt_all], distance_upper_bound=radius)
                    hit = np.isfinite(d)
                    src_ids, tgt = known[j[hit]], tgt_all[hit]
                    w = cfg.front_back_weight * wk[src_ids] * (1.0 - d[hit] / radius)
                    fb = src if behind is None else smoothed(behind.double().numpy())
                    seed_col[tgt] += w[:, None] * fb[src_ids]
                    seed_w[tgt] += w
                    stats["front_back_seeds"] = int(hit.sum())
            if sym is not None:
                # the left/right counterpart on the body model
                m = sym.numpy()[unknown]
                ok = vis_np[m]
                tgt, src_ids = unknown[ok], m[ok]
                w = cfg.mirror_weight * wk[src_ids]
                seed_col[tgt] += w[:, None] * src[src_ids]
                seed_w[tgt] += w
                stats["mirror_seeds"] = int(ok.sum())
            has = seed_w > 0
            seed_col[has] /= seed_w[has, None]
            seeded = torch.from_numpy(has)
            conf = torch.where(seeded, torch.from_numpy(np.minimum(seed_w, 1.0)).float(), conf)

        # Harmonic fill: min sum_edges (c_i - c_j)^2 + lam sum_u w_u (c_u - seed_u)^2
        # + eps sum_u (c_u - mean)^2 over the unseen vertices u, the seen ones fixed. The tiny
        # eps keeps pieces of the mesh that touch neither a seen vertex nor a seed (inner
        # mouth, eyeballs) well posed: they get the mean seen colour.
        deg = np.asarray(A.sum(axis=1)).ravel()
        L = (sp.diags(deg) - A).tocsr()
        L_u = L[unknown]
        lam = cfg.seed_strength * seed_w[unknown]
        eps = 1e-6 * max(1.0, float(deg.mean()))
        mean = (c[known] * wk[known, None]).sum(0) / max(float(wk[known].sum()), 1e-12)
        M = (L_u[:, unknown] + sp.diags(lam + eps)).tocsc()
        rhs = lam[:, None] * seed_col[unknown] - L_u[:, known] @ c[known] + eps * mean[None]
        x = np.asarray(spsolve(M, rhs)).reshape(len(unknown), 3)
        colors[torch.from_numpy(unknown)] = torch.from_numpy(x).float().clamp(0, 1)
        return colors, seeded, conf, stats

    def _extras(self, photo: PhotoView, mask: Tensor, faces: Tensor,
                labels: Tensor) -> Optional[Gaussians]:
        """Gaussians for the mask pixels outside the body's silhouette (see module docs)."""
        from scipy.ndimage import distance_transform_edt

        cfg = self.config
        S, raster = photo.size, photo.raster
        covered = raster.coverage
        if not bool(covered.any()):
            return None
        stride = cfg.extra_stride if cfg.extra_stride is not None else max(1, round(S / 256))
        # the body's silhouette grown by a pixel: its rim is the body, not an extra
        grown = F.max_pool2d(covered.float()[None, None], 3, 1, 1)[0, 0] > 0
        want = (mask[0] >= 0.5) & ~grown
        sub = torch.zeros_like(want)
        sub[stride // 2::stride, stride // 2::stride] = True
        want &= sub
        if not bool(want.any()):
            return None
        py, px = want.nonzero(as_tuple=True)
        pyn, pxn = py.numpy(), px.numpy()
        _, (iy, ix) = distance_transform_edt(~covered.numpy(), return_indices=True)
        by, bx = torch.from_numpy(iy[pyn, pxn]), torch.from_numpy(ix[pyn, pxn])
        z_front, z_back = raster.depth[by, bx], raster.depth_far[by, bx]
        z_mid = 0.5 * (z_front + z_back)
        half = 0.5 * (z_back - z_front)
        # colour from the nearest pixel well inside the mask (no background bleed)
        src = photo.mask if bool(photo.mask.any()) else mask[0] >= 0.5
        _, (cy, cx) = distance_transform_edt(~src.numpy(), return_indices=True)
        rgb = photo.image[:, torch.from_numpy(cy[pyn, pxn]), torch.from_numpy(cx[pyn, pxn])].T
        lab = labels[faces[raster.face_ids[by, bx], 0]]
        # on the pixel's ray at mid-depth, stretched along the camera axis over the thickness
        pts = torch.stack([px.float() + 0.5, py.float() + 0.5, torch.ones_like(z_mid)], -1)
        cam = (pts @ torch.linalg.inv(photo.K).T) * z_mid[:, None]
        R, t = photo.viewmat[:3, :3], photo.viewmat[:3, 3]
        means = (cam - t) @ R  # R^T (x - t)
        s_plane = 0.6 * stride * z_mid / photo.K[0, 0]  # ~ the pixel footprint at that depth
        s_depth = torch.maximum(0.6 * half, s_plane)
        n = means.shape[0]
        quats = rotmat_to_quat(R.T[None].expand(n, 3, 3))  # local axes = camera axes
        return Gaussians(means=means, quats=quats,
                         scales=torch.stack([s_plane, s_plane, s_depth], -1),
                         opacities=torch.full((n,), float(cfg.opacity)), colors=rgb.clamp(0, 1),
                         labels=lab)

    # -- Gaussians ------------------------------------------------------------------------
    def gaussians_of(self, body: TexturedBody) -> Gaussians:
        """The textured body as Gaussians (body discs + extras), part labels set."""
        cfg = self.config
        g = body_gaussians(body.vertices, body.faces, body.colors, body.labels,
                           disc_scale=cfg.disc_scale, flatness=cfg.flatness,
                           opacity=cfg.opacity, normals=body.normals)
        return g if body.extras is None else Gaussians.cat([g, body.extras])

    def prior_gaussians(self, inp: SynthInput) -> Gaussians:
        """The "prior-only" Gaussians: the fitted body textured from the photo (+ extras),
        in the world of ``inp.input_camera``, with part labels."""
        return self.gaussians_of(self.texture(inp))

    # -- rendering ------------------------------------------------------------------------
    def _background(self, n: int) -> Tensor:
        return torch.tensor(self.config.background_rgb).expand(n, 3).contiguous()

    def render(self, body: TexturedBody, cameras: Cameras, resolution: int, *,
               with_alpha: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Render the textured body into ``cameras`` at resolution^2 on the background, with
        the configured renderer: [V,3,R,R] in [0,1] (``with_alpha``: and its coverage
        [V,R,R])."""
        if not isinstance(body, TexturedBody):
            raise ValueError(f"body must be a TexturedBody, got {type(body).__name__}")
        if not isinstance(cameras, Cameras) or len(cameras) < 1:
            raise ValueError("cameras must be a Cameras with at least 1 camera")
        if not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"resolution must be a positive int, got {resolution!r}")
        with torch.no_grad():
            rgb, alpha = self._render(body, cameras, resolution)
        return (rgb, alpha) if with_alpha else rgb

    def _render(self, body: TexturedBody, cameras: Cameras, resolution: int
                ) -> tuple[Tensor, Tensor]:
        """(views [V,3,R,R] on the background, their alphas [V,R,R])."""
        cams = cameras.to("cpu", torch.float32).resized(resolution, resolution)
        if self.config.renderer == "gaussians":
            rgb, alpha = _splat(self.gaussians_of(body), cams, self._background(len(cams)))[:2]
            return rgb, alpha[:, 0]
        views = [self._render_mesh_view(body, cams[c]) for c in range(len(cams))]
        return torch.stack([v[0] for v in views]), torch.stack([v[1] for v in views])

    def _surface_colors(self, body: TexturedBody, face_ids: Tensor, bary: Tensor) -> Tensor:
        """Colours [M,3] of surface points (faces [M], barycentrics [M,3]): the photo where it
        shows the point, else (fill "full") where it shows the mirrored point, else the photo
        at the point's position in the input view when the body part there is the same
        (front/back), else the filled vertex colours."""
        cfg = self.config
        corners = body.faces[face_ids]  # [M,3]
        w = bary[..., None]
        base = (w * body.colors[corners]).sum(1)
        pts = (w * body.vertices[corners]).sum(1)
        nrm = F.normalize((w * body.normals[corners]).sum(1), dim=-1)
        photo = body.photo
        seen, _, uv = photo.seen(pts, nrm, cfg.min_cos, cfg.depth_tol)
        out = torch.where(seen[:, None], photo.sample(uv), base)
        if cfg.fill != "full":
            return out
        todo = ~seen
        if body.symmetry is not None and bool(todo.any()):
            mc = body.symmetry[corners[todo]]
            wt = w[todo]
            mp = (wt * body.vertices[mc]).sum(1)
            mn = F.normalize((wt * body.normals[mc]).sum(1), dim=-1)
            mseen, _, muv = photo.seen(mp, mn, cfg.min_cos, cfg.depth_tol)
            idx = todo.nonzero().squeeze(1)[mseen]
            out[idx] = photo.sample(muv[mseen])
            todo[idx] = False
        if cfg.front_back_weight > 0 and bool(todo.any()):
            part = body.labels[corners[todo].gather(1, bary[todo].argmax(-1, keepdim=True))[:, 0]]
            fuv, found = photo.front_of(pts[todo])
            ok = found & photo.in_mask(fuv) & (photo.label_at(fuv) == part) & \
                cfg.front_back_parts()[part]
            idx = todo.nonzero().squeeze(1)[ok]
            out[idx] = photo.sample(fuv[ok], lowpass=True)
        return out

    def _render_mesh_view(self, body: TexturedBody, cam: Cameras) -> tuple[Tensor, Tensor]:
        """One view [3,R,R]: the mesh (supersampled, photo looked up per sample) and the
        extras (splatted), composited by depth on the background; and its alpha [R,R]."""
        cfg = self.config
        R, ss = cam.width, cfg.supersample
        K = cam.Ks[0].clone()
        K[:2] *= ss
        raster = rasterize_mesh(body.vertices, body.faces, cam.viewmats[0], K, R * ss, R * ss)
        cov = raster.coverage.reshape(-1)
        rgb = torch.zeros(R * ss * R * ss, 3)
        if bool(cov.any()):
            rgb[cov] = self._surface_colors(body, raster.face_ids.reshape(-1)[cov],
                                            raster.bary.reshape(-1, 3)[cov])
        alpha = cov.float().reshape(1, 1, R * ss, R * ss)
        depth = torch.where(cov, raster.depth.reshape(-1), torch.zeros(())).reshape(alpha.shape)
        # premultiplied averages over each pixel's samples
        col_m = F.avg_pool2d(rgb.T.reshape(1, 3, R * ss, R * ss), ss)[0]
        a_m = F.avg_pool2d(alpha, ss)[0]
        d_m = F.avg_pool2d(depth, ss)[0] / a_m.clamp(min=1e-6)
        bg = torch.tensor(cfg.background_rgb)[:, None, None]
        if body.extras is None or len(body.extras) == 0:
            return (col_m + (1 - a_m) * bg).clamp(0, 1), a_m[0].clamp(0, 1)
        col_e, a_e, d_e = _splat(body.extras, cam, torch.zeros(1, 3), with_depth=True)
        col_e, a_e, d_e = col_e[0] * a_e[0], a_e[0], d_e[0]  # premultiplied
        front = (d_e < d_m) | (a_m <= 0)
        over_e = col_e + (1 - a_e) * (col_m + (1 - a_m) * bg)
        over_m = col_m + (1 - a_m) * (col_e + (1 - a_e) * bg)
        alpha = (1.0 - (1.0 - a_m) * (1.0 - a_e))[0].clamp(0, 1)  # either covers the pixel
        return torch.where(front, over_e, over_m).clamp(0, 1), alpha

    # -- the interface ----------------------------------------------------------------------
    def _synthesize(self, inp: SynthInput, *, seed: int, num_steps: Optional[int],
                    guidance: Any, progress: Optional[ProgressCallback]) -> SynthOutput:
        return self._synthesize_views(inp, progress)

    def _synthesize_views(self, inp: SynthInput,
                          progress: Optional[ProgressCallback]) -> SynthOutput:
        cfg = self.config
        R = cfg.resolution if cfg.resolution is not None else inp.size
        self.space.feature_size(R)  # fail early on a size the space cannot take
        total = 3
        t0 = time.perf_counter()
        with torch.no_grad():
            body = self._texture(inp)
        if progress is not None:
            progress(1, total, "projection: textured the body")
        in_el, in_az = inp.input_angles
        tgt_el, tgt_az = inp.target_angles()
        at_input = [cfg.replace_input_view and same_angle(float(a), in_az)
                    and abs(float(e) - in_el) <= 1e-3 for a, e in zip(tgt_az, tgt_el, strict=True)]
        cams = inp.target_cameras.to("cpu", torch.float32).resized(R, R)
        previews = torch.empty(len(cams), 3, R, R)
        masks = torch.empty(len(cams), R, R)
        todo = [v for v, flag in enumerate(at_input) if not flag]
        t1 = time.perf_counter()
        if todo:
            with torch.no_grad():
                previews[todo], masks[todo] = self._render(body, cams[torch.tensor(todo)], R)
        if any(at_input):
            bg = torch.tensor(cfg.background_rgb)[:, None, None]
            m = inp.mask.detach().float().cpu().clamp(0, 1)
            photo = inp.image.detach().float().cpu().clamp(0, 1) * m + bg * (1.0 - m)
            photo = resize_images(photo[None], R, mode="bicubic").clamp(0, 1)[0]
            m_r = resize_images(m[None], R, mode="bilinear").clamp(0, 1)[0, 0]
            for v, flag in enumerate(at_input):
                if flag:
                    previews[v], masks[v] = photo, m_r
        t2 = time.perf_counter()
        if progress is not None:
            progress(2, total, "projection: rendered the views")
        features = self.space.encode(previews).float().cpu()
        if progress is not None:
            progress(3, total, "projection: encoded")
        info = {
            "component": "projection",
            "renderer": cfg.renderer,
            "resolution": R,
            "num_threads": torch.get_num_threads(),
            "input_view_replaced": [bool(x) for x in at_input],
            "background": list(cfg.background_rgb),
            "seconds_texture": t1 - t0,
            "seconds_render": t2 - t1,
            **body.stats,
        }
        return SynthOutput(features=features, previews=previews, cameras=cams,
                           space=self.space.name, info=info, masks=masks)


def _splat(g: Gaussians, cams: Cameras, backgrounds: Tensor, *, with_depth: bool = False):
    """Render Gaussians with :func:`humansplat.render.rasterize`: (colours [C,3,H,W],
    alphas [C,1,H,W], and with ``with_depth`` the alpha-normalised camera depth [C,1,H,W]).
    Colours are composited on ``backgrounds`` [C,3] (premultiplied when that is 0)."""
    from ..render import rasterize

    g = g.to("cpu", torch.float32)
    cols, alphas, depths = [], [], []
    # depth is a colour channel, so each camera (own depths) renders on its own
    for c in (range(len(cams)) if with_depth else [None]):
        sel = slice(None) if c is None else slice(c, c + 1)
        vm, Ks = cams.viewmats[sel], cams.Ks[sel]
        colors = g.rgb
        bg = backgrounds[sel] if backgrounds.shape[0] > 1 else backgrounds.expand(vm.shape[0], 3)
        if with_depth:
            z = (g.means @ vm[0, :3, :3].T + vm[0, :3, 3])[:, 2:3]
            colors = torch.cat([colors, z], -1)
            bg = torch.cat([bg, torch.zeros(bg.shape[0], 1)], -1)
        img, alpha, _ = rasterize(g.means, g.quats, g.scales, g.opacities, colors.contiguous(),
                                  vm, Ks, cams.width, cams.height, backgrounds=bg.contiguous())
        img = img.permute(0, 3, 1, 2)
        alpha = alpha.permute(0, 3, 1, 2)
        if with_depth:
            depths.append(img[:, 3:] / alpha.clamp(min=1e-6))
            img = img[:, :3] / alpha.clamp(min=1e-6)  # un-premultiply; callers re-multiply
        cols.append(img[:, :3].clamp(0, 1))
        alphas.append(alpha)
    out = (torch.cat(cols), torch.cat(alphas))
    return out + (torch.cat(depths),) if with_depth else out
