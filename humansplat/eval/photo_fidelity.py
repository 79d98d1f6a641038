"""How faithful a splat is to the real photo it came from, seen by the photo's own camera.

A reconstruction records its input camera (``meta["camera"]``: the square crop of
``meta["input"]["crop_box"]`` at ``image_size`` px; ``InputCamera.native`` is the same camera
at the photo's own resolution). ``whole_photo_view`` reframes that camera to the whole
*original* photo (the benchmark's frame: what is scored does not depend on where the pipeline
cropped, and the target is the photo's own pixels); ``photo_at_input_camera`` instead
resamples the photo into the crop exactly as the pipeline cropped it (``prior.preprocess``'s
warp). Either comes with a person mask from an **independent** segmenter
(``eval.independent_mask``), and the splat is rendered there. Scores (``input_view_scores``):

- ``psnr``: over the pixels the independent mask calls person (> 0.5) and the photo covers;
  the splat is rendered over white (what a viewer shows behind it).
- ``ssim``: over the mask's bounding box (+ 8 px) of both images composited on white with
  the independent mask, so the score is about the person, not the background the splat
  (correctly) does not hold. Extra or missing silhouette is what ``iou`` measures.
- ``iou``: the splat's alpha (> 0.5) vs the independent mask (> 0.5), inside the photo.

``beyond_edge_fraction`` measures the opposite failure for photos cut at an edge: the share
of the splat's opacity whose centres project past the photo's edge(s) (invented body the
photo never showed). ``cut_edges`` says which edges a person mask touches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..cameras import project_points
from ..gaussians import Gaussians
from ..metrics import mask_iou as silhouette_iou
from .metrics import psnr, ssim

__all__ = [
    "EDGES",
    "InputCamera",
    "PhotoView",
    "beyond_edge_fraction",
    "crop_to_frame",
    "cut_edges",
    "input_camera_from_meta",
    "input_view_scores",
    "photo_at_input_camera",
    "reconstruction_beyond_edges",
    "render_at_camera",
    "whole_photo_view",
]

EDGES = ("top", "bottom", "left", "right")
_SSIM_PAD = 8  # px around the mask's bounding box: the SSIM window sees the person's edge


@dataclass(frozen=True)
class InputCamera:
    """The reconstruction's input camera: viewmat [4,4] (OpenCV world-to-camera), K [3,3],
    width x height px, and the crop box (x0, y0, x1, y1) of the original photo it sees."""

    viewmat: Tensor
    K: Tensor
    width: int
    height: int
    crop_box: tuple[float, float, float, float]

    @property
    def scale(self) -> float:
        """Camera pixels per photo pixel."""
        return self.width / (self.crop_box[2] - self.crop_box[0])

    def resized(self, size: int) -> InputCamera:
        """The same camera rendering ``size`` x ``size`` px (intrinsics scaled)."""
        if self.width != self.height:
            raise ValueError(f"the input camera must be square, got {self.width}x{self.height}")
        K = self.K.clone()
        K[:2] *= size / self.width
        return InputCamera(self.viewmat, K, int(size), int(size), self.crop_box)

    def native(self, max_size: int = 1024) -> InputCamera:
        """The camera at the photo's own resolution: one camera pixel per photo pixel of the
        crop (its side), at most ``max_size``."""
        return self.resized(min(int(max_size), max(1, round(self.crop_box[2] - self.crop_box[0]))))

    def reframed(self, box: tuple[float, float, float, float], width: int,
                 height: int) -> InputCamera:
        """The same camera (pose, focal length in photo pixels) framing ``box`` (x0, y0, x1,
        y1; photo px, any aspect) at ``width`` x ``height`` px: e.g. the whole photo, so that
        what is scored does not depend on where the pipeline cropped."""
        x0, y0, x1, y1 = (float(v) for v in box)
        sx, sy = width / (x1 - x0), height / (y1 - y0)
        c0x, c0y = self.crop_box[:2]
        per_px = 1.0 / self.scale  # photo px per camera px
        # camera px -> photo px (x = c0 + u * per_px) -> new camera px ((x - x0) * s)
        A = torch.tensor([[per_px * sx, 0.0, (c0x - x0) * sx],
                          [0.0, per_px * sy, (c0y - y0) * sy],
                          [0.0, 0.0, 1.0]], dtype=self.K.dtype)
        return InputCamera(self.viewmat, A @ self.K, int(width), int(height), (x0, y0, x1, y1))

    def photo_rect(self, photo_size: tuple[int, int]) -> tuple[float, float, float, float]:
        """The photo's edges (left, top, right, bottom) in this camera's pixels;
        photo_size = (width, height) of the original photo."""
        W, H = photo_size
        x0, y0 = self.crop_box[:2]
        s = self.scale
        return (-x0 * s, -y0 * s, (W - x0) * s, (H - y0) * s)


def input_camera_from_meta(meta: dict[str, Any]) -> InputCamera:
    """The input camera of a reconstruction's ``meta`` (``Reconstruction.meta`` or its
    meta.json). Raises ValueError when it holds none."""
    try:
        cam, inp = meta["camera"], meta["input"]
        w, h = (int(v) for v in cam["image_size"])
        box = tuple(float(v) for v in inp["crop_box"])
        return InputCamera(torch.tensor(cam["viewmat"], dtype=torch.float32).reshape(4, 4),
                           torch.tensor(cam["K"], dtype=torch.float32).reshape(3, 3),
                           w, h, box)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"the reconstruction's meta holds no usable input camera "
                         f"({err})") from None


@dataclass
class PhotoView:
    """The original photo resampled into the input camera.

    rgb [S,S,3] float32 in [0,1]; mask [S,S] float32 the independent person mask; inside
    [S,S] float32 the fraction of each pixel the photo covers (0 beyond its edges)."""

    rgb: np.ndarray
    mask: np.ndarray
    inside: np.ndarray


def _check_photo_and_mask(photo: np.ndarray, mask: np.ndarray) -> None:
    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"photo must be uint8 [H,W,3], got {photo.dtype} {photo.shape}")
    if mask.shape != photo.shape[:2]:
        raise ValueError(f"mask {mask.shape} and photo {photo.shape[:2]} differ in size")


def whole_photo_view(photo: np.ndarray, mask: np.ndarray, camera: InputCamera,
                     max_size: int = 2048) -> tuple[PhotoView, InputCamera]:
    """The whole ``photo`` uint8 [H,W,3] and its person ``mask`` float [H,W] as a view, with
    ``camera`` reframed to the photo (one pixel per photo pixel, the long side at most
    ``max_size``): the frame the person is scored in does not depend on the pipeline's crop
    (a crop that cuts a head off must not hide the missing head)."""
    import cv2

    _check_photo_and_mask(photo, mask)
    H, W = mask.shape
    f = min(1.0, max_size / max(H, W))
    w, h = max(1, round(W * f)), max(1, round(H * f))
    rgb, m = photo, mask.astype(np.float32)
    if (w, h) != (W, H):
        rgb = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA)
    view = PhotoView(rgb=rgb.astype(np.float32) / 255.0, mask=np.clip(m, 0, 1),
                     inside=np.ones((h, w), np.float32))
    return view, camera.reframed((0.0, 0.0, float(W), float(H)), w, h)


def crop_to_frame(image: np.ndarray, camera: InputCamera, frame: InputCamera) -> np.ndarray:
    """Resample ``image`` [S,S] or [S,S,C] seen by ``camera`` (the pipeline's crop, e.g. its
    person mask) into ``frame`` (same photo, another box): float32, 0 outside the crop."""
    import cv2

    size = image.shape[0]
    a = (camera.crop_box[2] - camera.crop_box[0]) / size  # photo px per crop px
    b = (frame.crop_box[2] - frame.crop_box[0]) / frame.width  # photo px per frame px
    by = (frame.crop_box[3] - frame.crop_box[1]) / frame.height
    # frame pixel (i + 0.5) -> photo -> crop pixel index (pixel centres at + 0.5)
    M = np.float32([[b / a, 0.0, (0.5 * b + frame.crop_box[0] - camera.crop_box[0]) / a - 0.5],
                    [0.0, by / a, (0.5 * by + frame.crop_box[1] - camera.crop_box[1]) / a - 0.5]])
    return cv2.warpAffine(np.asarray(image, np.float32), M, (frame.width, frame.height),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def photo_at_input_camera(photo: np.ndarray, mask: np.ndarray, camera: InputCamera) -> PhotoView:
    """Resample ``photo`` uint8 [H,W,3] and its person ``mask`` float [H,W] into ``camera``
    with the pipeline's own crop warp (same pixel-centre convention and filtering)."""
    import cv2

    from ..prior.preprocess import _inside_photo, _Square, _warp_to_square

    _check_photo_and_mask(photo, mask)
    if camera.width != camera.height:
        raise ValueError(f"the input camera must be square, got {camera.width}x{camera.height}")
    x0, y0, x1, _ = camera.crop_box
    sq = _Square(x0, y0, x1 - x0, camera.width)
    H, W = mask.shape
    rgb = _warp_to_square(photo, sq, interp=cv2.INTER_CUBIC, border=0)
    m = _warp_to_square(mask.astype(np.float32), sq, interp=cv2.INTER_LINEAR, border=0)
    inside = _inside_photo(sq, W, H)
    return PhotoView(rgb=rgb.astype(np.float32) / 255.0, mask=np.clip(m, 0, 1) * inside,
                     inside=inside)


def render_at_camera(gaussians: Gaussians, viewmat: Tensor, K: Tensor, width: int, height: int,
                     background: Sequence[float] = (1.0, 1.0, 1.0)) -> tuple[Tensor, Tensor]:
    """Render the splat (with its view-dependent colour when it has SH) in one camera.
    Returns (rgb [H,W,3], alpha [H,W]) float32 CPU tensors."""
    from ..render import TorchRasterConfig, render_gaussians, tile_threads

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with torch.no_grad():
        img, alpha = render_gaussians(gaussians.to(dev, torch.float32), viewmat, K, width,
                                      height, background,
                                      torch_config=TorchRasterConfig(threads=tile_threads()))
    return img[0].clamp(0, 1).float().cpu(), alpha[0].float().cpu()


def input_view_scores(render_rgb: Tensor, render_alpha: Tensor, view: PhotoView,
                      own_mask: Tensor | None = None) -> dict[str, float]:
    """PSNR (dB) and SSIM inside the independent mask, and silhouette IoU (see the module
    docstring). render_rgb [S,S,3] (rendered over white), render_alpha [S,S]; ``view``
    the photo in the same camera. With ``own_mask`` [S,S] (the pipeline's person mask in
    that camera) also ``psnr_both``: PSNR where both masks call the pixel person, i.e. how
    well the splat reproduces what the pipeline kept, apart from where the two segmenters
    disagree (which ``psnr`` counts: the splat is white where the pipeline cut the person
    out). Raises ValueError when the mask is empty."""
    photo = torch.from_numpy(view.rgb)
    S = photo.shape[:2]
    if tuple(render_rgb.shape) != (*S, 3) or tuple(render_alpha.shape) != tuple(S):
        raise ValueError(f"render {tuple(render_rgb.shape)} / alpha {tuple(render_alpha.shape)} "
                         f"do not match the photo view {tuple(photo.shape)}")
    inside = torch.from_numpy(view.inside) > 0.5
    person = (torch.from_numpy(view.mask) > 0.5) & inside
    if not bool(person.any()):
        raise ValueError("the independent person mask is empty inside the photo")
    pred = render_rgb.float().permute(2, 0, 1)[None]  # [1,3,S,S]
    gt = photo.permute(2, 0, 1)[None]
    m = person.float()[None, None]
    out = {"psnr": float(psnr(pred, gt, m)[0])}
    if own_mask is not None:
        both = person & (own_mask.float().cpu() > 0.5)
        if bool(both.any()):
            out["psnr_both"] = float(psnr(pred, gt, both.float()[None, None])[0])
    # SSIM of the person: both composited on white with the same (independent) mask
    white = torch.ones_like(gt)
    pc, gc = pred * m + white * (1 - m), gt * m + white * (1 - m)
    ys, xs = torch.nonzero(person, as_tuple=True)
    y0, y1 = int(ys.min()), int(ys.max()) + 1
    x0, x1 = int(xs.min()), int(xs.max()) + 1
    k = 11  # the SSIM window
    y0, x0 = max(0, y0 - _SSIM_PAD), max(0, x0 - _SSIM_PAD)
    y1, x1 = min(S[0], max(y1 + _SSIM_PAD, y0 + k)), min(S[1], max(x1 + _SSIM_PAD, x0 + k))
    out["ssim"] = float(ssim(pc[..., y0:y1, x0:x1], gc[..., y0:y1, x0:x1])[0])
    a = render_alpha.float() * inside
    out["iou"] = silhouette_iou(a, person.float())
    return out


def cut_edges(mask: np.ndarray, *, band_px: int = 2, min_share: float = 0.02) -> tuple[str, ...]:
    """The photo edges (of ``EDGES``) a person ``mask`` [H,W] (> 0.5) is cut by: those whose
    outermost ``band_px`` rows/columns are person over at least ``min_share`` of the edge's
    length."""
    b = np.asarray(mask) > 0.5
    if b.ndim != 2:
        raise ValueError(f"mask must be [H,W], got {b.shape}")
    bands = {"top": b[:band_px].any(0), "bottom": b[-band_px:].any(0),
             "left": b[:, :band_px].any(1), "right": b[:, -band_px:].any(1)}
    return tuple(e for e in EDGES if bands[e].mean() >= min_share)


def beyond_edge_fraction(gaussians: Gaussians, camera: InputCamera, photo_size: tuple[int, int],
                         edges: Sequence[str] = EDGES) -> float:
    """Share of the splat's opacity (sum over Gaussians in front of the camera) whose centres
    project beyond the photo's ``edges`` in the input camera; photo_size = (width, height) of
    the original photo. 0 when no edge is given. The issue's target for cropped photos:
    < 0.02 beyond the cut edges."""
    bad = [e for e in edges if e not in EDGES]
    if bad:
        raise ValueError(f"unknown edge(s) {bad}; edges are {EDGES}")
    uv, z = project_points(gaussians.means.detach().float().cpu(), camera.viewmat[None],
                           camera.K[None])
    uv, z = uv[0], z[0]
    op = gaussians.opacities.detach().float().cpu() * (z > 0)
    total = float(op.sum())
    if total <= 0 or not edges:
        return 0.0
    left, top, right, bottom = camera.photo_rect(photo_size)
    tests = {"left": uv[:, 0] < left, "right": uv[:, 0] > right,
             "top": uv[:, 1] < top, "bottom": uv[:, 1] > bottom}
    beyond = torch.zeros(len(op), dtype=torch.bool)
    for e in edges:
        beyond |= tests[e]
    return float(op[beyond].sum()) / total


def reconstruction_beyond_edges(rec: Any, edges: Sequence[str] = EDGES) -> float:
    """:func:`beyond_edge_fraction` of a ``Reconstruction`` (its input camera and original
    photo size come from ``rec.meta``), e.g. ``reconstruction_beyond_edges(rec, ("bottom",))``
    for a photo cut at the waist."""
    cam = input_camera_from_meta(rec.meta)
    try:
        W, H = (int(v) for v in rec.meta["input"]["original_size"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"the reconstruction's meta holds no original photo size "
                         f"({err})") from None
    return beyond_edge_fraction(rec.gaussians, cam, (W, H), edges)
