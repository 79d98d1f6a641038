"""Fit a body model to one photo, SMPLify style.

Given 2D keypoints (COCO-17 + foot, with confidences) and a person mask in a square crop,
optimise the body's global orientation, position, scale, pose and shape so that its
keypoints project onto the detections (robust Geman-McClure loss, confidence weights) and
its silhouette, rendered with our differentiable renderer, matches the mask; a pose prior
(joint-angle limits: knees and elbows bend one way; an L2 pull toward a relaxed standing
pose) and a shape prior keep the body plausible. Where the crop reaches past the photo's
edge (``fit_body``'s ``valid``, an upper-body photo's cut) nothing is known: the silhouette
is not scored there and keypoints the detector places there are ignored. How far the body
leans toward the camera a single photo cannot show (the scale absorbs the foreshortening);
optional priors (``w_upright``, ``w_upright_hidden``) hold it upright.

The camera is fixed and the body moves: the input camera is the orbit camera at azimuth 0,
elevation 0 (on +z, looking at the origin) at ``FitConfig.camera_radius`` with the
pipeline's fov (``cameras.DEFAULT_FOVY_DEG``), principal point at the crop centre. The
body's root (pelvis) stays at depth z = 0 and ``scale`` absorbs the size/distance
ambiguity, so the fitted person stands near the world origin, +y up, facing the camera.

Stages (Adam throughout, cheap iterations):
  1. global: orientation (8 yaw hypotheses in one batch), xy translation and scale against
     the keypoints of the rest body;
  2. pose: + joint rotations and shape against the keypoints, for all 8 hypotheses of
     stage 1 in one batch (a side view is nearly ambiguous front/back until the limbs are
     posed); the best is kept. No vertices are needed: the body models regress keypoints
     without skinning the mesh;
  3. silhouette: + the rendered silhouette of ~1,500 surface points (isotropic Gaussians)
     at low resolution.
"""

from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..cameras import DEFAULT_FOVY_DEG, Cameras, orbit_cameras, project_points
from ..config import check_field_types
from ..errors import ConfigError, NoPersonError
from ..geometry import axis_angle_to_matrix, quat_multiply, quat_to_axis_angle
from ..metrics import mask_iou
from .body import BodyModel
from .parts import KEYPOINT_NAMES, NUM_PARTS, PART_NAMES

__all__ = [
    "FitConfig",
    "BodyFit",
    "fit_body",
    "fit_preprocessed",
    "depth_lean",
    "input_camera",
    "SurfacePoints",
    "surface_points",
    "render_body",
    "SyntheticView",
    "synthetic_view",
    "procrustes_align",
    "sample_pose",
    "INPUT_CAMERA_RADIUS",
]

# Same as cameras.orbit_cameras' default radius: the input view is one of the pipeline's
# orbit views. At fovy 39.6 deg it sees 1.87 m at the origin.
INPUT_CAMERA_RADIUS = 2.6


@dataclass
class FitConfig:
    """Settings of :func:`fit_body`. Loss weights are relative to the keypoint term."""

    fovy_deg: float = DEFAULT_FOVY_DEG
    camera_radius: float = INPUT_CAMERA_RADIUS
    iters_global: int = 60
    iters_pose: int = 140
    iters_silhouette: int = 60
    lr: float = 0.04
    yaw_hypotheses: int = 8
    pose_hypotheses: int = 8  # the best global fits that all go through the pose stage
    prune_every: int = 35  # pose-stage iterations between drops of hopeless hypotheses; 0: never
    prune_factor: float = 3.0  # dropped: loss > prune_factor x the best's + 0.01
    min_confidence: float = 0.1  # keypoints below are ignored (mediapipe visibility)
    kp_sigma: float = 0.04  # Geman-McClure scale, fraction of the image size
    silhouette_res: int = 96  # px, square
    silhouette_points: int = 1500
    w_silhouette: float = 2.0
    w_pose_prior: float = 0.02
    w_limits: float = 10.0
    w_shape: float = 0.01
    # the body's up axis leaning toward or away from the camera, w * sin^2(lean): from one
    # photo such a lean only foreshortens the body, which the scale absorbs, so without a
    # prior the legs an upper-body photo hides swing 20-55 degrees in depth
    w_upright: float = 0.0
    # the same prior times the share of the lower body's 12 keypoints (hips, knees, ankles,
    # feet) the photo does not show: a full-body photo's foreshortened legs tell the lean,
    # an upper-body photo's do not (mediapipe has no small toes: a real photo's share is
    # at least 2/12)
    w_upright_hidden: float = 0.0
    # a lean in depth past this many degrees costs like a joint past its limit (w_limits):
    # people in photos stand, sit or bend, they do not lie toward the camera; within it
    # nothing changes (90: no limit)
    max_lean_deg: float = 90.0
    # what lies beyond the photo's edge (``fit_body``'s ``valid``) is unknown, not
    # background: the silhouette is not scored there (else the legs an upper-body photo
    # cuts off fold toward the camera to stay inside it), and a keypoint the detector puts
    # there (or outside the crop the fit sees) is its guess at what the photo does not
    # show, ignored (unless fewer than 4 body keypoints would remain)
    ignore_beyond_photo: bool = True
    fit_shape: bool = True

    def __post_init__(self) -> None:
        check_field_types(self, "FitConfig")  # settings also come from pipeline.json
        if self.prune_factor < 1.0:
            raise ConfigError(f"FitConfig.prune_factor must be >= 1, got {self.prune_factor}")
        for name in ("iters_global", "iters_pose", "iters_silhouette", "prune_every",
                     "w_upright", "w_upright_hidden"):
            if getattr(self, name) < 0:
                raise ConfigError(f"FitConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.max_lean_deg <= 90.0:
            raise ConfigError(f"FitConfig.max_lean_deg must be in (0, 90], got "
                              f"{self.max_lean_deg}")
        if not 1.0 < self.fovy_deg < 170.0:
            raise ConfigError(f"FitConfig.fovy_deg must be in (1, 170), got {self.fovy_deg}")
        if self.camera_radius <= 0:
            raise ConfigError(f"FitConfig.camera_radius must be > 0, got {self.camera_radius}")
        if self.silhouette_res < 16:
            raise ConfigError(f"FitConfig.silhouette_res must be >= 16, got {self.silhouette_res}")
        for name in ("yaw_hypotheses", "pose_hypotheses"):
            if getattr(self, name) < 1:
                raise ConfigError(f"FitConfig.{name} must be >= 1, got {getattr(self, name)}")


#: FitConfig settings doing about a quarter of the default's work (~1.6 s instead of ~6 s on
#: one core; keypoints within ~6 px of a 256 px crop on the examples): for smoke runs and
#: tests of wiring, never for results (``PipelineConfig(body_fit=QUICK_FIT)``)
QUICK_FIT = {"iters_global": 30, "iters_pose": 50, "iters_silhouette": 20,
             "yaw_hypotheses": 4, "pose_hypotheses": 2}


@dataclass
class BodyFit:
    """A body fitted to one image, in world space (metres, +y up).

    vertices [V,3], faces [F,3], joints [J,3], keypoints [23,3] (``parts.KEYPOINT_NAMES``),
    part_labels [V] (0..23), params: body_pose [J-1,3] / smpl_pose [24,3] axis-angle, shape
    [S], global_orient [3], transl [3], scale [] (feed them back to ``model.forward``),
    viewmat [4,4] / K [3,3] the input camera (OpenCV, world-to-camera) for the image of
    ``image_size`` (width, height), diagnostics: kp_err_px_median, kp_err_frac (of the image
    size), silhouette_iou (None without a mask), iterations, seconds, yaw_deg (initial
    hypothesis kept), hypotheses_after_pruning (of the pose stage's), model.
    """

    vertices: Tensor
    faces: Tensor
    joints: Tensor
    keypoints: Tensor
    part_labels: Tensor
    params: dict[str, Tensor]
    viewmat: Tensor
    K: Tensor
    image_size: tuple[int, int]
    diagnostics: dict = field(default_factory=dict)

    @property
    def lean_deg(self) -> float:
        """How far the body's up axis leans toward the input camera, degrees (negative: away;
        :func:`depth_lean`)."""
        return math.degrees(math.asin(float(depth_lean(self.params["global_orient"]))))

    @property
    def cameras(self) -> Cameras:
        """The input camera as a one-camera :class:`Cameras`."""
        w, h = self.image_size
        return Cameras(self.viewmat[None], self.K[None], w, h, torch.zeros(1), torch.zeros(1))

    def project(self, points: Tensor) -> Tensor:
        """World points [N,3] -> pixels [N,2] of the input image."""
        uv, _ = project_points(points, self.viewmat[None], self.K[None])
        return uv[0]

    @property
    def keypoints_2d(self) -> Tensor:
        """[23,2] the fitted keypoints projected into the input image."""
        return self.project(self.keypoints)

    def save_obj(self, path, *, part_colors: bool = True) -> Path:
        """Write the fitted mesh as OBJ (vertex colours = part colours unless disabled)."""
        from ..io.mesh import save_obj

        colors = None
        if part_colors:
            from .parts import PART_COLORS

            colors = np.asarray(PART_COLORS, np.uint8)[self.part_labels.cpu().numpy()]
        return save_obj(path, self.vertices, self.faces, colors)


def input_camera(width: int, height: int, *, fovy_deg: float = DEFAULT_FOVY_DEG,
                 radius: float = INPUT_CAMERA_RADIUS) -> Cameras:
    """The input view: orbit camera at azimuth 0, elevation 0 (see the module docstring)."""
    return orbit_cameras([0.0], 0.0, radius, fovy_deg=fovy_deg, width=width, height=height)


# ----------------------------------------------------------------------------------------
# rendering helpers (through humansplat.render)
# ----------------------------------------------------------------------------------------
@dataclass
class SurfacePoints:
    """Evenly spread points on a body's surface, for splat rendering.

    Point k lies on a face: sum_i bary[k,i] * vertex vertex_ids[index[k,i]], so it follows
    the body through pose and shape. vertex_ids [m] (the vertices involved), index [n,3],
    bary [n,3], normals [n,3] outward face normals in rest space (default shape), sigma:
    isotropic Gaussian std in metres (body scale 1)."""

    vertex_ids: Tensor
    index: Tensor
    bary: Tensor
    normals: Tensor
    sigma: float

    def __len__(self) -> int:
        return int(self.index.shape[0])


_POINT_CACHE: "weakref.WeakKeyDictionary[BodyModel, dict[int, SurfacePoints]]" = \
    weakref.WeakKeyDictionary()


def surface_points(model: BodyModel, n: int = 1500, *, seed: int = 0) -> SurfacePoints:
    """``n`` points spread evenly over the rest body's surface (farthest-point sampling of
    an area-uniform dense sample, so coarse and fine regions of the mesh get the same
    density), with a splat size that leaves no holes. Cached per model and n."""
    per_model = _POINT_CACHE.setdefault(model, {})
    if n in per_model:
        return per_model[n]
    with torch.no_grad():
        rest = model().rest_vertices[0].detach().cpu().double()
    faces = model.faces.cpu()
    tri = rest[faces]  # [F,3,3]
    cross = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    area = 0.5 * cross.norm(dim=-1)
    rng = np.random.default_rng(seed)
    dense = max(10 * n, 15000)
    f = rng.choice(len(faces), size=dense, p=(area / area.sum()).numpy())
    u, v = rng.random(dense), rng.random(dense)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    bary = np.stack([1 - u - v, u, v], 1)
    pts = np.einsum("ki,kid->kd", bary, tri[f].numpy()).astype(np.float32)
    chosen = np.empty(n, np.int64)
    chosen[0] = int(np.argmax(pts[:, 1]))
    d = np.linalg.norm(pts - pts[chosen[0]], axis=1)
    for i in range(1, n):
        chosen[i] = int(np.argmax(d))
        d = np.minimum(d, np.linalg.norm(pts - pts[chosen[i]], axis=1))
    fc = torch.as_tensor(f[chosen])
    vids, index = torch.unique(faces[fc], return_inverse=True)
    dev, dt = model.device, model.dtype
    normals = torch.nn.functional.normalize(cross[fc], dim=-1)
    # sigma = 0.6 x the covering radius of the surface: neighbouring splats overlap.
    sp = SurfacePoints(vids.to(dev), index.to(dev), torch.as_tensor(bary[chosen]).to(dev, dt),
                       normals.to(dev, dt), 0.6 * float(np.max(d)))
    per_model[n] = sp
    return sp


def render_body(model: BodyModel, out, points: SurfacePoints, cameras: Cameras, *,
                scale: Tensor | float = 1.0, colors: Tensor | None = None,
                backgrounds: Tensor | None = None):
    """Render a posed body (``out``: ``model(..., vertex_ids=points.vertex_ids)``, batch 1)
    as isotropic Gaussians at ``points`` with our differentiable renderer.

    Each splat sits ``sigma + 0.5 px`` inside the surface along its normal (offset in rest
    space, then skinned): the renderer's alpha then ends on the mesh's outline instead of a
    splat radius (and the 2D low-pass) outside it, so silhouettes match masks without bias.
    Returns (colors [C,H,W,D], alphas [C,H,W,1]); colors default to white."""
    from ..render import rasterize

    dt, dev = model.dtype, model.device
    scale = torch.as_tensor(scale, dtype=dt, device=dev).reshape(())
    with torch.no_grad():  # world size of half a pixel at the body, first camera
        depth = (out.vertices[0] @ cameras.viewmats[0, :3, :3].T +
                 cameras.viewmats[0, :3, 3])[:, 2].mean().clamp_min(1e-3)
        half_px = 0.5 * depth / cameras.Ks[0, 1, 1]
    inward = points.sigma + half_px / scale.detach()
    # the three corners of each point's face, pushed inward, skinned, then interpolated
    rest = out.rest_vertices[0][points.index] - inward * points.normals[:, None]  # [n,3,3]
    T = model.vertex_transforms(out.bone_transforms, points.vertex_ids)[0][points.index]
    corners = (T[..., :3] @ rest[..., None]).squeeze(-1) + T[..., 3]
    means = (points.bary[..., None] * corners).sum(1)
    N = means.shape[0]
    quats = torch.zeros(N, 4, dtype=dt, device=dev)
    quats[:, 0] = 1.0
    scales = (points.sigma * scale).expand(N, 3)
    opacities = torch.ones(N, dtype=dt, device=dev)
    if colors is None:
        colors = torch.ones(N, 1, dtype=dt, device=dev)
    rgb, alpha, _ = rasterize(means, quats, scales, opacities, colors, cameras.viewmats,
                              cameras.Ks, cameras.width, cameras.height,
                              backgrounds=backgrounds)
    return rgb, alpha


# ----------------------------------------------------------------------------------------
# priors
# ----------------------------------------------------------------------------------------
# Hinge joints: (joint, child joint, flexion direction of the child segment at rest). The
# rotation vector is read in a frame (twist along the segment, flexion, side) with bounds.
_HINGES = {
    "left_leg": ("left_foot", (0.0, 0.0, -1.0), (-0.3, 0.0, -0.15), (0.3, 2.5, 0.15)),
    "right_leg": ("right_foot", (0.0, 0.0, -1.0), (-0.3, 0.0, -0.15), (0.3, 2.5, 0.15)),
    "left_forearm": ("left_hand", (0.0, 0.0, 1.0), (-1.2, 0.0, -0.3), (1.2, 2.6, 0.3)),
    "right_forearm": ("right_hand", (0.0, 0.0, 1.0), (-1.2, 0.0, -0.3), (1.2, 2.6, 0.3)),
}
# Other joints: the largest rotation angle (radians) away from the rest pose.
_MAX_ANGLE = {
    "left_up_leg": 2.2, "right_up_leg": 2.2, "spine": 0.6, "spine1": 0.5, "spine2": 0.5,
    "left_foot": 0.8, "right_foot": 0.8, "neck": 0.7, "left_shoulder": 0.5,
    "right_shoulder": 0.5, "head": 0.8, "left_arm": 2.6, "right_arm": 2.6,
    "left_hand": 1.2, "right_hand": 1.2,
}
# Pull toward the natural pose, per joint (the torso and head are stiffer than the limbs).
_PRIOR_WEIGHT = {
    "spine": 2.0, "spine1": 2.0, "spine2": 2.0, "neck": 1.0, "head": 0.5,
    "left_shoulder": 3.0, "right_shoulder": 3.0, "left_foot": 1.0, "right_foot": 1.0,
    "left_hand": 1.0, "right_hand": 1.0,
}
_LIMB_PRIOR = 0.2
# Keypoint weights: the five face points share one head's worth of weight.
_FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
_TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
_BELOW_HIPS = ("knee", "ankle", "toe", "heel")
_LOWER_BODY = tuple(n for n in KEYPOINT_NAMES if n.split("_")[-1] in ("hip",) + _BELOW_HIPS)


class _PosePrior:
    """Joint-angle limits and the natural-pose L2 prior for one body model."""

    def __init__(self, model: BodyModel):
        dt, dev = model.dtype, model.device
        smpl_joints = model.smpl_joints.tolist()
        # Fitted joints: the SMPL joints the model has, except the root (global orientation),
        # toes and fingers (too small to see reliably).
        skip = {"hips", "left_toe_base", "right_toe_base", "left_hand_index",
                "right_hand_index"}
        self.active = torch.tensor([j >= 0 and PART_NAMES[i] not in skip
                                    for i, j in enumerate(smpl_joints)], device=dev)
        with torch.no_grad():
            rest_joints = model().joints[0]
        w = torch.full((NUM_PARTS,), _LIMB_PRIOR, dtype=dt, device=dev)
        for name, v in _PRIOR_WEIGHT.items():
            w[PART_NAMES.index(name)] = v
        self.prior_w = w * self.active
        self.natural = model.natural_smpl_pose.to(dt)
        max_angle = torch.full((NUM_PARTS,), math.pi, dtype=dt, device=dev)
        for name, v in _MAX_ANGLE.items():
            max_angle[PART_NAMES.index(name)] = v
        self.max_angle = max_angle
        # Hinge frames from the rest skeleton.
        self.hinge_idx, frames, lo, hi = [], [], [], []
        for name, (child, flex_dir, lo_, hi_) in _HINGES.items():
            i, c = PART_NAMES.index(name), PART_NAMES.index(child)
            if smpl_joints[i] < 0 or smpl_joints[c] < 0:
                continue
            u = torch.nn.functional.normalize(
                rest_joints[smpl_joints[c]] - rest_joints[smpl_joints[i]], dim=0)
            d = torch.tensor(flex_dir, dtype=dt, device=dev)
            f = torch.nn.functional.normalize(torch.linalg.cross(u, d), dim=0)
            s = torch.linalg.cross(u, f)
            self.hinge_idx.append(i)
            frames.append(torch.stack([u, f, s]))  # rows: twist, flexion, side axes
            lo.append(lo_)
            hi.append(hi_)
        self.hinge_idx = torch.tensor(self.hinge_idx, dtype=torch.long, device=dev)
        self.frames = torch.stack(frames) if frames else torch.zeros(0, 3, 3, dtype=dt)
        self.lo = torch.tensor(lo, dtype=dt, device=dev).reshape(-1, 3)
        self.hi = torch.tensor(hi, dtype=dt, device=dev).reshape(-1, 3)
        self.is_hinge = torch.zeros(NUM_PARTS, dtype=torch.bool, device=dev)
        self.is_hinge[self.hinge_idx] = True

    def sample(self, generator: torch.Generator, strength: float) -> Tensor:
        """A random pose inside the limits [24,3]: hinges flex in [0, strength x max],
        other joints turn about a random axis by up to strength x their largest angle."""
        dt = self.max_angle.dtype
        axis = torch.nn.functional.normalize(torch.randn(NUM_PARTS, 3, generator=generator,
                                                         dtype=dt), dim=-1)
        angle = torch.rand(NUM_PARTS, generator=generator, dtype=dt) * strength * \
            self.max_angle.clamp(max=1.2)
        pose = axis * angle[:, None]
        u = torch.rand(len(self.hinge_idx), 3, generator=generator, dtype=dt)
        comps = self.lo * 0.5 * strength + u * (self.hi - self.lo * 0.5) * strength
        comps[:, 1] = u[:, 1] * self.hi[:, 1] * strength  # flexion only one way
        pose[self.hinge_idx] = torch.einsum("hij,hi->hj", self.frames, comps)
        return pose * self.active[:, None] + self.natural * self.active[:, None]

    def __call__(self, pose: Tensor) -> tuple[Tensor, Tensor]:
        """pose [B,24,3] -> (natural-pose prior [B], limit penalty [B])."""
        prior = (self.prior_w[:, None] * (pose - self.natural) ** 2).sum((-1, -2))
        comps = torch.einsum("hij,bhj->bhi", self.frames, pose[:, self.hinge_idx])
        lim = (torch.relu(comps - self.hi) ** 2 + torch.relu(self.lo - comps) ** 2).sum((-1, -2))
        angle = pose.norm(dim=-1)
        over = torch.relu(angle - self.max_angle) * (~self.is_hinge)
        lim = lim + (over ** 2).sum(-1)
        return prior, lim


# ----------------------------------------------------------------------------------------
# the fitter
# ----------------------------------------------------------------------------------------
def _gmof(r2: Tensor, sigma: float) -> Tensor:
    """Geman-McClure on squared residuals, normalised so that small residuals cost r2/s^2."""
    s2 = sigma * sigma
    return r2 / (s2 + r2)


def _yaw_axis_angle(yaw: Tensor) -> Tensor:
    return torch.stack([torch.zeros_like(yaw), yaw, torch.zeros_like(yaw)], -1)


def depth_lean(global_orient: Tensor) -> Tensor:
    """sin of the angle by which the body's up axis leans toward the input camera (+z):
    global_orient [...,3] axis-angle -> [...]. Negative: leaning away."""
    return axis_angle_to_matrix(global_orient)[..., 2, 1]  # z of R @ (0, 1, 0)


def _check_inputs(keypoints_xy, keypoint_conf, mask, image_size):
    kp = torch.as_tensor(np.asarray(keypoints_xy, np.float32) if not isinstance(
        keypoints_xy, Tensor) else keypoints_xy, dtype=torch.float32)
    conf = torch.as_tensor(np.asarray(keypoint_conf, np.float32) if not isinstance(
        keypoint_conf, Tensor) else keypoint_conf, dtype=torch.float32)
    K = len(KEYPOINT_NAMES)
    if kp.shape != (K, 2):
        raise ValueError(f"keypoints_xy must be [{K},2] in parts.KEYPOINT_NAMES order, got "
                         f"{tuple(kp.shape)}")
    if conf.shape != (K,):
        raise ValueError(f"keypoint_conf must be [{K}], got {tuple(conf.shape)}")
    if not torch.isfinite(kp).all() or not torch.isfinite(conf).all():
        raise ValueError("keypoints_xy and keypoint_conf must be finite")
    m = None
    if mask is not None:
        m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, Tensor) else mask)
        if m.ndim != 2:
            raise ValueError(f"mask must be [H,W], got {tuple(m.shape)}")
        m = m.float()
        if m.max() > 1.0:
            m = m / 255.0
        if image_size is None:
            image_size = (m.shape[1], m.shape[0])
        elif (m.shape[1], m.shape[0]) != tuple(image_size):
            raise ValueError(f"mask is {m.shape[1]}x{m.shape[0]} but image_size is "
                             f"{image_size[0]}x{image_size[1]}")
    if image_size is None:
        raise ValueError("image_size (width, height) is needed when no mask is given")
    W, H = (int(v) for v in image_size)
    if W < 16 or H < 16:
        raise ValueError(f"image_size must be at least 16x16, got {W}x{H}")
    return kp, conf, m, (W, H)


def _resize_mask(mask: Tensor, res: int) -> Tensor:
    """[H,W] -> [res,res] by area averaging (the crop is square; otherwise stretched to the
    same normalised coordinates the scaled intrinsics use)."""
    return torch.nn.functional.interpolate(mask[None, None], size=(res, res), mode="area")[0, 0]


def _soft_iou_loss(alpha: Tensor, target: Tensor) -> Tensor:
    inter = (alpha * target).sum()
    union = (alpha + target - alpha * target).sum()
    return 1.0 - inter / union.clamp_min(1e-6)


def fit_body(model: BodyModel, keypoints_xy, keypoint_conf, mask=None, *,
             image_size: tuple[int, int] | None = None,
             config: FitConfig | None = None, valid=None) -> BodyFit:
    """Fit ``model`` to one image's keypoints and (optionally) person mask.

    keypoints_xy [23,2] pixels (pixel centres at +0.5) in ``parts.KEYPOINT_NAMES`` order,
    keypoint_conf [23] in [0,1] (0 = missing), mask [H,W] in [0,1] (or uint8) of the same
    image, image_size (width, height) when no mask is given; valid [H,W] in [0,1]: where
    the mask is known (a crop reaching beyond a photo's cut edge: 0 there, so the body is
    free to go on past it; None: everywhere). Returns a :class:`BodyFit`.
    Raises NoPersonError when fewer than 4 torso/limb keypoints are confident.
    """
    cfg = config or FitConfig()
    t_start = time.perf_counter()
    kp_t, conf, mask_t, (W, H) = _check_inputs(keypoints_xy, keypoint_conf, mask, image_size)
    body_kp = [i for i, n in enumerate(KEYPOINT_NAMES) if n not in _FACE]
    valid_t = None
    if valid is not None and mask_t is not None:
        valid_t = torch.as_tensor(np.asarray(valid, np.float32))
        if valid_t.shape != mask_t.shape:
            raise ValueError(f"valid must have the mask's shape {tuple(mask_t.shape)}, got "
                             f"{tuple(valid_t.shape)}")
        if not cfg.ignore_beyond_photo:
            valid_t = None
        else:
            ij = kp_t.floor().long()
            inside = (ij[:, 0] >= 0) & (ij[:, 0] < W) & (ij[:, 1] >= 0) & (ij[:, 1] < H)
            seen = torch.zeros(len(kp_t), dtype=torch.bool)
            seen[inside] = valid_t[ij[inside, 1], ij[inside, 0]] >= 0.5
            kept = torch.where(seen, conf, torch.zeros_like(conf))
            if int((kept[body_kp] >= cfg.min_confidence).sum()) >= 4:  # else guesses or nothing
                conf = kept
    dt, dev = model.dtype, model.device
    size = float(max(W, H))
    conf = torch.where(conf >= cfg.min_confidence, conf, torch.zeros_like(conf))
    lower = [KEYPOINT_NAMES.index(n) for n in _LOWER_BODY]
    hidden = int((conf[lower] == 0).sum()) / len(lower)  # share of the lower body unseen
    w_up = cfg.w_upright + cfg.w_upright_hidden * hidden
    sin_max = math.sin(math.radians(cfg.max_lean_deg))

    def lean_cost(orient_: Tensor) -> Tensor:  # [B,3] -> [B]
        if w_up == 0.0 and cfg.max_lean_deg >= 90.0:  # no lean prior (the default): exactly 0
            return orient_.new_zeros(orient_.shape[:-1])
        s = depth_lean(orient_)
        return w_up * s ** 2 + cfg.w_limits * torch.relu(s.abs() - sin_max) ** 2

    if int((conf[body_kp] > 0).sum()) < 4:
        raise NoPersonError("too few body keypoints were detected to fit a body "
                            f"({int((conf[body_kp] > 0).sum())} of {len(body_kp)} above "
                            f"confidence {cfg.min_confidence}); try a photo showing the whole "
                            "person")
    kw = torch.ones(len(KEYPOINT_NAMES), dtype=dt)
    kw[[KEYPOINT_NAMES.index(n) for n in _FACE]] = 1.0 / len(_FACE)
    weights = (conf * kw).to(dev, dt)
    target = (kp_t / size).to(dev, dt)  # normalised pixels

    cam = input_camera(W, H, fovy_deg=cfg.fovy_deg, radius=cfg.camera_radius).to(dev, dt)
    viewmat, Kmat = cam.viewmats, cam.Ks

    def project(points: Tensor) -> Tensor:  # [B,N,3] -> [B,N,2] normalised pixels
        B = points.shape[0]
        uv, _ = project_points(points, viewmat.expand(B, 4, 4), Kmat.expand(B, 3, 3))
        return uv / size

    def kp_loss(kp3d: Tensor, w: Tensor) -> Tensor:  # [B,23,3] -> [B]
        r2 = ((project(kp3d) - target) ** 2).sum(-1)
        return (w * _gmof(r2, cfg.kp_sigma)).sum(-1) / w.sum().clamp_min(1e-6)

    prior = _PosePrior(model)
    empty = torch.zeros(0, dtype=torch.long, device=dev)
    iters = 0

    # --- stage 1: global orientation / position / scale on the rest body ------------------
    with torch.no_grad():
        rest_kp = model(vertex_ids=empty).keypoints  # [1,23,3]
    Y = cfg.yaw_hypotheses
    yaws = torch.arange(Y, dtype=dt, device=dev) * (2 * math.pi / Y)
    w_global = weights.clone()
    torso = [KEYPOINT_NAMES.index(n) for n in _TORSO]
    w_global *= 0.3
    w_global[torso] = weights[torso]
    # Closed-form start: match the spread and the centroid of the confident keypoints.
    with torch.no_grad():
        sel = weights > 0
        p0 = project(rest_kp)[0]
        spread = lambda p: (p[sel] - p[sel].mean(0)).norm(dim=-1).mean()  # noqa: E731
        s0 = (spread(target) / spread(p0).clamp_min(1e-6)).clamp(0.3, 3.0)
        f = float(Kmat[0, 1, 1]) / size
        c_img = target[sel].mean(0) - torch.tensor([W / 2, H / 2], dtype=dt, device=dev) / size
        c_body = (rest_kp[0, sel.nonzero()[:, 0], :2] * s0).mean(0)
        t0 = torch.stack([c_img[0] * cfg.camera_radius / f - c_body[0],
                          -c_img[1] * cfg.camera_radius / f - c_body[1], torch.zeros((), dtype=dt)])
    g_orient = _yaw_axis_angle(yaws).clone().requires_grad_(True)
    g_transl = t0[:2].repeat(Y, 1).clone().requires_grad_(True)
    g_logs = torch.log(s0).repeat(Y).clone().requires_grad_(True)
    opt = torch.optim.Adam([g_orient, g_transl, g_logs], lr=cfg.lr)
    zeros_z = torch.zeros(Y, 1, dtype=dt, device=dev)
    for _ in range(cfg.iters_global):
        opt.zero_grad()
        R = axis_angle_to_matrix(g_orient)
        kp3 = torch.exp(g_logs)[:, None, None] * rest_kp @ R.transpose(-1, -2) + \
            torch.cat([g_transl, zeros_z], 1)[:, None]
        loss = kp_loss(kp3, w_global) + lean_cost(g_orient)
        loss.sum().backward()
        opt.step()
    iters += cfg.iters_global
    stage_s = {"global": time.perf_counter() - t_start}
    with torch.no_grad():
        R = axis_angle_to_matrix(g_orient)
        kp3 = torch.exp(g_logs)[:, None, None] * rest_kp @ R.transpose(-1, -2) + \
            torch.cat([g_transl, zeros_z], 1)[:, None]
        # A side view leaves front/back (and so left/right) nearly ambiguous for the rest
        # pose: the best few hypotheses all go through the pose stage, batched.
        keep = torch.argsort(kp_loss(kp3, w_global))[:min(cfg.pose_hypotheses, Y)]
    B = len(keep)

    # --- stages 2 and 3: pose and shape, then the silhouette -------------------------------
    orient = g_orient[keep].detach().clone().requires_grad_(True)
    transl_xy = g_transl[keep].detach().clone().requires_grad_(True)
    log_scale = g_logs[keep].detach().clone().requires_grad_(True)
    pose = model.natural_smpl_pose[None].repeat(B, 1, 1).to(dt).requires_grad_(True)
    bounds = model.shape_bounds
    if bounds is not None:
        lo, hi = (b.to(dev, dt) for b in bounds)
        u0 = ((model.shape_default - lo) / (hi - lo)).clamp(1e-3, 1 - 1e-3)
        shape_z = torch.log(u0 / (1 - u0))[None].repeat(B, 1).requires_grad_(True)
        to_shape = lambda z: lo + (hi - lo) * torch.sigmoid(z)  # noqa: E731
        shape_reg = lambda s: (((s - model.shape_default) / (hi - lo)) ** 2).sum(-1)  # noqa
    else:
        shape_z = model.shape_default[None].repeat(B, 1).requires_grad_(True)
        to_shape = lambda z: z  # noqa: E731
        shape_reg = lambda s: ((s - model.shape_default) ** 2).sum(-1)  # noqa: E731
    active = prior.active[None, :, None].to(dt)

    def body(vertex_ids):
        shape = to_shape(shape_z)
        transl = torch.cat([transl_xy, transl_xy.new_zeros(len(transl_xy), 1)], 1)
        out = model(model.body_pose_from_smpl(pose * active), shape, orient, transl,
                    torch.exp(log_scale), vertex_ids=vertex_ids)
        return out, shape

    def regularisers(shape):
        p, lim = prior(pose * active)
        reg = cfg.w_pose_prior * p + cfg.w_limits * lim + lean_cost(orient)
        if cfg.fit_shape:
            reg = reg + cfg.w_shape * shape_reg(shape)
        return reg

    def optimiser():
        groups = [{"params": [orient, transl_xy, log_scale], "lr": cfg.lr * 0.5},
                  {"params": [pose], "lr": cfg.lr}]
        if cfg.fit_shape:
            groups.append({"params": [shape_z], "lr": cfg.lr * 2})
        return torch.optim.Adam(groups)

    opt = optimiser()
    for it in range(cfg.iters_pose):
        if cfg.prune_every and it and it % cfg.prune_every == 0 and len(orient) > 1:
            # hypotheses far behind the best can no longer win: stop paying for them
            with torch.no_grad():
                ahead = (loss <= cfg.prune_factor * loss.min() + 0.01).nonzero()[:, 0]
            if len(ahead) < len(orient):
                old = (orient, transl_xy, log_scale, pose, shape_z)
                orient, transl_xy, log_scale, pose, shape_z = (
                    t[ahead].detach().clone().requires_grad_(True) for t in old)
                keep = keep[ahead]
                state = [opt.state.get(t, {}) for t in old]
                opt = optimiser()  # Adam's moments of the hypotheses kept carry over
                for t, st in zip((orient, transl_xy, log_scale, pose, shape_z), state):
                    if st:
                        opt.state[t] = {k: v[ahead].clone() if v.ndim else v.clone()
                                        for k, v in st.items()}
        opt.zero_grad()
        out, shape = body(empty)
        loss = kp_loss(out.keypoints, weights) + regularisers(shape)
        loss.sum().backward()
        opt.step()
    iters += cfg.iters_pose
    use_mask = mask_t is not None and cfg.iters_silhouette > 0
    if use_mask:
        pts = surface_points(model, cfg.silhouette_points)
        res = cfg.silhouette_res
        sil_cam = cam.resized(res, res)
        target_mask = _resize_mask(mask_t.to(dev, dt), res)
        known = None if valid_t is None else _resize_mask(valid_t.to(dev, dt), res)

        def silhouette_loss(out, i: int = 0) -> Tensor:
            _, alpha = render_body(model, out[i], pts, sil_cam, scale=torch.exp(log_scale[i]))
            alpha = alpha[0, ..., 0]
            if known is not None:  # beyond the photo's edge the body may go on unseen
                alpha = alpha * known
            return _soft_iou_loss(alpha, target_mask)

    with torch.no_grad():
        # Keep the hypothesis that explains the keypoints best; the mask only breaks near
        # ties (mirror-image poses of a side view fit keypoints equally well, while on real
        # photos the mask also holds objects and clothes).
        out, shape = body(pts.vertex_ids if use_mask else empty)
        kp = kp_loss(out.keypoints, weights)
        total = kp + regularisers(shape)
        if use_mask:
            total = total + cfg.w_silhouette * torch.stack(
                [silhouette_loss(out, i) for i in range(len(orient))])
        total[kp > 1.5 * kp.min() + 0.005] = math.inf
        best = int(torch.argmin(total))
    orient, transl_xy, log_scale, pose, shape_z = (
        t[best:best + 1].detach().clone().requires_grad_(True)
        for t in (orient, transl_xy, log_scale, pose, shape_z))
    opt = optimiser()
    stage_s["pose"] = time.perf_counter() - t_start - sum(stage_s.values())

    if use_mask:
        for _ in range(cfg.iters_silhouette):
            opt.zero_grad()
            out, shape = body(pts.vertex_ids)
            loss = kp_loss(out.keypoints, weights) + regularisers(shape) + \
                cfg.w_silhouette * silhouette_loss(out)
            loss.sum().backward()
            opt.step()
        iters += cfg.iters_silhouette
    stage_s["silhouette"] = time.perf_counter() - t_start - sum(stage_s.values())

    # --- result --------------------------------------------------------------------------
    with torch.no_grad():
        shape = to_shape(shape_z)
        smpl_pose = (pose * active)[0]
        body_pose = model.body_pose_from_smpl(smpl_pose[None])[0]
        transl = torch.cat([transl_xy[0], torch.zeros(1, dtype=dt, device=dev)])
        scale = torch.exp(log_scale[0])
        out = model(body_pose[None], shape, orient, transl[None], scale[None])
        uv = project(out.keypoints)[0] * size
        err = (uv - kp_t.to(dev, dt)).norm(dim=-1)[weights > 0]
        med = float(err.median()) if err.numel() else float("nan")
        iou = None
        if mask_t is not None:
            from .overlay import mesh_silhouette

            sil = mesh_silhouette(out.vertices[0], model.faces, viewmat[0], Kmat[0], W, H)
            sil = torch.as_tensor(sil, dtype=torch.float32)
            iou = mask_iou(sil if valid_t is None else sil * (valid_t > 0.5), mask_t)
    diagnostics = {
        "kp_err_px_median": med,
        "kp_err_frac": med / size,
        "lower_body_hidden": hidden,
        "silhouette_iou": iou,
        "iterations": iters,
        "seconds": time.perf_counter() - t_start,
        "stage_seconds": {**stage_s, "result": time.perf_counter() - t_start - sum(
            stage_s.values())},
        "yaw_deg": float(torch.rad2deg(yaws[keep[best]])),
        "hypotheses_after_pruning": len(keep),
        "model": model.name,
    }
    return BodyFit(
        vertices=out.vertices[0], faces=model.faces, joints=out.joints[0],
        keypoints=out.keypoints[0], part_labels=model.part_labels,
        params={"body_pose": body_pose, "smpl_pose": smpl_pose, "shape": shape[0],
                "global_orient": orient.detach()[0], "transl": transl, "scale": scale},
        viewmat=viewmat[0], K=Kmat[0], image_size=(W, H), diagnostics=diagnostics)


def fit_preprocessed(pre, model: BodyModel | None = None,
                     config: FitConfig | None = None) -> BodyFit:
    """Fit a body to a ``prior.preprocess.Preprocessed`` crop (its landmarks and mask).
    Uses the default :class:`~humansplat.prior.body.AnnyBody` when no model is given."""
    if pre.landmarks is None:
        raise NoPersonError("no body landmarks were found in the photo, so no body can be "
                            "fitted; try a photo showing the whole person")
    if model is None:
        from .body import AnnyBody

        model = AnnyBody()
    xy, conf = pre.landmarks.keypoints(KEYPOINT_NAMES)
    return fit_body(model, xy, conf, pre.mask, config=config, valid=pre.inside_photo())


def sample_pose(model: BodyModel, generator: torch.Generator | None = None,
                strength: float = 0.5) -> Tensor:
    """A random plausible pose for ``model``: per-SMPL-joint axis-angle [24,3] inside the
    fitter's joint limits (``strength`` in [0,1] scales how far from the natural pose).
    Feed it through ``model.body_pose_from_smpl``. For synthetic data and tests."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0,1], got {strength}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    return _PosePrior(model).sample(g, strength).to(model.device)


@dataclass
class SyntheticView:
    """A body of known parameters rendered by our renderer into the input camera.

    rgb uint8 [S,S,3] (parts coloured, white background), mask float32 [S,S] (the render's
    alpha), keypoints_xy [23,2] projected keypoints, joints [J,3] / keypoints [23,3] world,
    params as given to the model."""

    rgb: np.ndarray
    mask: np.ndarray
    keypoints_xy: Tensor
    joints: Tensor
    keypoints: Tensor
    params: dict

    def cut_at_hips(self, margin: float = 0.15) -> tuple[Tensor, np.ndarray, np.ndarray]:
        """This view as an upper-body photo, the framing kept: the keypoints below the hips
        unseen and the rows from ``margin`` x the shoulder-to-hip height below the hips down
        beyond the photo. Returns keypoint confidences [23], the mask [S,S] (0 past the cut)
        and where the photo is [S,S] (``fit_body``'s ``valid``)."""
        names = list(KEYPOINT_NAMES)
        conf = torch.ones(len(names))
        conf[[i for i, n in enumerate(names) if n.split("_")[-1] in _BELOW_HIPS]] = 0.0
        y = self.keypoints_xy[:, 1]
        hip = 0.5 * float(y[names.index("left_hip")] + y[names.index("right_hip")])
        shoulder = 0.5 * float(y[names.index("left_shoulder")] + y[names.index("right_shoulder")])
        valid = np.ones_like(self.mask)
        valid[int(hip + margin * (hip - shoulder)):] = 0.0
        return conf, self.mask * valid, valid


def synthetic_view(model: BodyModel, smpl_pose: Tensor, shape: Tensor, *,
                   azimuth_deg: float = 0.0, lean_deg: float = 0.0, size: int = 512,
                   scale: float = 0.95,
                   transl=(0.0, 0.0, 0.0), fovy_deg: float = DEFAULT_FOVY_DEG,
                   radius: float = INPUT_CAMERA_RADIUS, n_points: int = 3000) -> SyntheticView:
    """Render ``model`` in ``smpl_pose`` [24,3] / ``shape`` [S] seen from ``azimuth_deg``
    (an orbit camera there is the input camera with the body turned by -azimuth about +y),
    the body then leaning toward the camera by ``lean_deg`` about the camera's x axis (as a
    camera that far above sees an upright body, up to framing). For round-trip tests of
    the fitter and synthetic data."""
    from .parts import PART_COLORS

    half_yaw, half_lean = -0.5 * math.radians(azimuth_deg), 0.5 * math.radians(lean_deg)
    f64 = dict(dtype=torch.float64)  # so that lean 0 gives the yaw's own float32 value
    q = quat_multiply(torch.tensor([math.cos(half_lean), math.sin(half_lean), 0.0, 0.0], **f64),
                      torch.tensor([math.cos(half_yaw), 0.0, math.sin(half_yaw), 0.0], **f64))
    orient = quat_to_axis_angle(q)[None].to(model.dtype)
    params = {"body_pose": model.body_pose_from_smpl(smpl_pose[None].to(model.dtype))[0],
              "shape": shape.to(model.dtype), "global_orient": orient[0],
              "transl": torch.as_tensor(transl, dtype=model.dtype),
              "scale": torch.tensor(scale, dtype=model.dtype)}
    cam = input_camera(size, size, fovy_deg=fovy_deg, radius=radius).to(model.device,
                                                                       model.dtype)
    pts = surface_points(model, n_points)
    first = pts.vertex_ids[pts.index[:, 0]]  # a point takes its face's first vertex's part
    colors = torch.tensor(PART_COLORS, dtype=model.dtype, device=model.device)[
        model.part_labels[first]] / 255.0
    with torch.no_grad():
        args = (params["body_pose"][None], params["shape"][None], orient,
                params["transl"][None], params["scale"][None])
        out = model(*args, vertex_ids=pts.vertex_ids)
        rgb, alpha = render_body(model, out, pts, cam, scale=scale, colors=colors,
                                 backgrounds=torch.ones(1, 3, dtype=model.dtype))
        full = model(*args, vertex_ids=torch.zeros(0, dtype=torch.long, device=model.device))
        uv, _ = project_points(full.keypoints[0], cam.viewmats, cam.Ks)
    return SyntheticView(
        rgb=(rgb[0].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy(),
        mask=alpha[0, ..., 0].float().cpu().numpy(), keypoints_xy=uv[0],
        joints=full.joints[0], keypoints=full.keypoints[0], params=params)


def procrustes_align(src: Tensor, dst: Tensor) -> Tensor:
    """Similarity-align ``src`` [N,3] onto ``dst`` [N,3] (rotation, uniform scale,
    translation; Umeyama) and return the aligned ``src``. For PA-MPJPE."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    U, S, Vt = torch.linalg.svd(xd.T @ xs)
    d = torch.sign(torch.det(U @ Vt))
    D = torch.diag(torch.stack([torch.ones_like(d), torch.ones_like(d), d]))
    R = U @ D @ Vt
    s = (S * torch.diagonal(D)).sum() / (xs ** 2).sum()
    return s * xs @ R.T + mu_d

