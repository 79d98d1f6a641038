"""Pictures of a fitted body: its exact mesh silhouette and an overlay on the input photo.

The mesh goes through the package's one triangle z-buffer (:mod:`humansplat.render.mesh`),
flat shaded and coloured by body part.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

from ..render.mesh import rasterize_mesh
from .parts import PART_COLORS

__all__ = ["mesh_silhouette", "render_mesh", "overlay_fit"]


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def _check(vertices, faces, width, height):
    v, f = _np(vertices), _np(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be [V,3], got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or f.dtype.kind not in "iu":
        raise ValueError(f"faces must be integer [F,3], got {f.dtype} {f.shape}")
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    return (torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(f.astype(np.int64)))


def _raster(vertices, faces, viewmat, K, width, height):
    v, f = _check(vertices, faces, width, height)
    r = rasterize_mesh(v, f, torch.as_tensor(_np(viewmat), dtype=torch.float32),
                       torch.as_tensor(_np(K), dtype=torch.float32), int(width), int(height),
                       near_plane=1e-6)
    return v, f, r


def mesh_silhouette(vertices, faces, viewmat, K, width: int, height: int) -> np.ndarray:
    """Exact silhouette of a triangle mesh: bool [H,W] (pixel centres inside a triangle in
    front of the camera). vertices [V,3] world, faces [F,3], viewmat [4,4], K [3,3]."""
    return _raster(vertices, faces, viewmat, K, width, height)[2].coverage.numpy()


def render_mesh(vertices, faces, viewmat, K, width: int, height: int,
                face_colors=None) -> tuple[np.ndarray, np.ndarray]:
    """Flat-shaded mesh (nearest surface per pixel). face_colors uint8 [F,3] (default light
    grey). Returns (rgb uint8 [H,W,3], coverage bool [H,W])."""
    v, f, r = _raster(vertices, faces, viewmat, K, width, height)
    vm = torch.as_tensor(_np(viewmat), dtype=torch.float32)
    cam_v = v @ vm[:3, :3].T + vm[:3, 3]
    tri = cam_v[f]  # [F,3,3]
    n = torch.nn.functional.normalize(torch.linalg.cross(tri[:, 1] - tri[:, 0],
                                                         tri[:, 2] - tri[:, 0], dim=-1), dim=-1)
    view = -torch.nn.functional.normalize(tri.mean(1), dim=-1)
    shade = 0.35 + 0.65 * (n * view).sum(1).abs()  # two-sided Lambert toward the camera
    colors = torch.full((len(f), 3), 200.0) if face_colors is None else \
        torch.as_tensor(_np(face_colors), dtype=torch.float32)
    colors = colors * shade[:, None]
    cover = r.coverage
    rgb = torch.zeros(int(height), int(width), 3)
    rgb[cover] = colors[r.face_ids[cover]]
    return rgb.clamp(0, 255).round().to(torch.uint8).numpy(), cover.numpy()


def overlay_fit(image, fit, *, opacity: float = 0.6, keypoints_xy=None, keypoint_conf=None,
                min_confidence: float = 0.1) -> np.ndarray:
    """The fitted body over the input image: uint8 [H,W,3].

    image: uint8 [H,W,3] (the crop the body was fitted to); fit: ``fit.BodyFit``. The body is
    coloured by part and blended at ``opacity``; its keypoints are drawn as dots, and the
    detected ``keypoints_xy`` [23,2] (confidence >= ``min_confidence``) as rings, each joined
    to its fitted keypoint, so misfits stand out."""
    img = _np(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be uint8 [H,W,3], got {img.dtype} {img.shape}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0,1], got {opacity}")
    H, W = img.shape[:2]
    if (W, H) != tuple(fit.image_size):
        raise ValueError(f"image is {W}x{H} but the fit was made for "
                         f"{fit.image_size[0]}x{fit.image_size[1]}")
    labels = _np(fit.part_labels)
    faces = _np(fit.faces)
    # A face takes the part of its first vertex: boundaries stay crisp.
    face_colors = np.asarray(PART_COLORS, np.uint8)[labels[faces[:, 0]]]
    body, cover = render_mesh(fit.vertices, faces, fit.viewmat, fit.K, W, H, face_colors)
    out = img.astype(np.float32)
    a = opacity * cover[..., None]
    out = out * (1 - a) + body.astype(np.float32) * a
    out = out.clip(0, 255).astype(np.uint8)
    r = max(2, round(min(W, H) / 160))
    fitted = _np(fit.keypoints_2d)
    if keypoints_xy is not None:
        det = _np(keypoints_xy).reshape(-1, 2)
        conf = np.ones(len(det)) if keypoint_conf is None else _np(keypoint_conf).reshape(-1)
        for p, q, c in zip(det, fitted, conf):
            if c < min_confidence:
                continue
            p0 = tuple(int(round(v - 0.5)) for v in p)
            cv2.line(out, p0, tuple(int(round(v - 0.5)) for v in q), (255, 255, 255), 1,
                     cv2.LINE_AA)
            cv2.circle(out, p0, r + 1, (255, 40, 40), 1, cv2.LINE_AA)
    for q in fitted:
        cv2.circle(out, tuple(int(round(v - 0.5)) for v in q), r, (20, 220, 20), -1,
                   cv2.LINE_AA)
    return out
