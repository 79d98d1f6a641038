"""What the photo says, in the crop's pixels: the evidence the splat is made faithful to.

:class:`PhotoEvidence` holds the crop's colours (raw, and composited on the background),
the person's soft mask, the input camera, and which crop pixels lie inside the original
photo (a crop may extend beyond a photo cut at the person's waist: nothing there was seen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..cameras import Cameras, project_points

__all__ = ["PhotoEvidence", "extend_to_cut_edge", "frame_mask", "nearest_pixel", "upsample_mask"]


def upsample_mask(mask: Tensor, size: int, *, sharp: bool = True) -> Tensor:
    """A soft person mask [S,S] in [0,1] at ``size`` x ``size`` (>= S).

    Bilinear upsampling by k = size / S stretches the segmenter's soft edge k times: a 256
    px mask under a 768 px photo put a 3x wider ramp of half-transparent Gaussians round
    the person, blending the background into them at the photo's camera (on the real
    photos that ramp held 3-10 % of the person's pixels and up to 42 % of the squared
    error: ``benchmarks/real_photos.py``'s ``error_by_region``).
    ``sharp`` remaps the bilinear mask around 0.5 with slope k, so an edge's ramp keeps the
    width in pixels the segmenter drew it at; the 0.5 silhouette does not move and an edge
    already sharp at S stays as it was. Partial coverage away from 0.5 is pushed towards 0
    or 1 as well (a plateau of 0.35 becomes 0.05 at k = 3): semi-transparent hair comes out
    closer to a cut-out. Returns float32 [size,size]."""
    S = mask.shape[-1]
    if mask.ndim != 2 or mask.shape[0] != S or size < S:
        raise ValueError(f"mask must be square [S,S] and size >= S, got "
                         f"{tuple(mask.shape)} -> {size}")
    m = mask.float().clamp(0, 1)
    if size == S:
        return m.clone()
    m = torch.nn.functional.interpolate(m[None, None], size=(size, size), mode="bilinear",
                                        align_corners=False)[0, 0]
    if sharp:
        m = ((m - 0.5) * (size / S) + 0.5).clamp(0, 1)
    return m


def frame_mask(size: int, crop_box, scale: float, original_size) -> Tensor:
    """[S,S] bool: the crop pixels whose centres lie inside the original photo.
    crop_box (x0, y0, x1, y1) in photo pixels, scale crop px per photo px,
    original_size (width, height)."""
    x0, y0 = float(crop_box[0]), float(crop_box[1])
    W, H = (float(v) for v in original_size)
    c = torch.arange(size, dtype=torch.float64) + 0.5
    px = c / scale + x0  # photo coordinates of the crop's pixel centres
    py = c / scale + y0
    inx = (px >= 0) & (px <= W)
    iny = (py >= 0) & (py <= H)
    return iny[:, None] & inx[None, :]


def nearest_pixel(inside: Tensor) -> tuple[Tensor, Tensor]:
    """For every pixel of ``inside`` [S,S] bool (some True), the row and column [S,S] long
    of the nearest True pixel (itself where True)."""
    from scipy.ndimage import distance_transform_edt

    _, (iy, ix) = distance_transform_edt(~inside.numpy(), return_indices=True)
    return torch.from_numpy(iy), torch.from_numpy(ix)


def extend_to_cut_edge(mask: Tensor, frame: Tensor, px: int) -> Tensor:
    """``mask`` [S,S] with its last ``px`` pixels before the photo's edge (``frame`` [S,S]
    bool) raised to the value ``px`` pixels further in, across the edge: where the edge
    cuts the person the mask reaches it; where it crosses background nothing changes.

    The pipeline's mask is segmented at the small crop, with nothing beyond the photo, so
    it fades over the last pixels before a cut edge: zidane's last two rows fell to 0.61
    and 0, and there the splat blended the background in (its edge row 0.39 against the
    photo's 0.08). Pixels beyond the photo are left as they are."""
    from scipy.ndimage import distance_transform_edt

    if px <= 0 or bool(frame.all()) or not bool(frame.any()):
        return mask
    inner = torch.from_numpy(distance_transform_edt(frame.numpy()) > px)  # px from the edge
    if not bool(inner.any()):
        return mask
    iy, ix = nearest_pixel(inner)
    rim = frame & ~inner
    out = mask.clone()
    out[rim] = torch.maximum(mask, mask[iy, ix])[rim]
    return out


@dataclass
class PhotoEvidence:
    """One photo's crop, as tensors (CPU, float32).

    image:     [3,S,S] the crop's colours before compositing (what the camera saw).
    composite: [3,S,S] the crop composited on ``background`` with the mask (the target of
               the re-render at the input camera).
    mask:      [S,S] the person's soft mask in [0,1].
    camera:    the input camera, 1 camera of S x S px.
    frame:     [S,S] bool, inside the original photo.
    background: RGB the splat is rendered on.
    """

    image: Tensor
    composite: Tensor
    mask: Tensor
    camera: Cameras
    frame: Tensor
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        S = self.mask.shape[-1]
        if self.image.shape != (3, S, S) or self.composite.shape != (3, S, S) \
                or self.mask.shape != (S, S) or self.frame.shape != (S, S):
            raise ValueError(f"PhotoEvidence: image/composite [3,S,S], mask/frame [S,S], got "
                             f"{tuple(self.image.shape)}, {tuple(self.composite.shape)}, "
                             f"{tuple(self.mask.shape)}, {tuple(self.frame.shape)}")
        if len(self.camera) != 1 or (self.camera.width, self.camera.height) != (S, S):
            raise ValueError(f"PhotoEvidence: camera must be 1 camera of {S}x{S} px")

    @property
    def size(self) -> int:
        return int(self.mask.shape[-1])

    @classmethod
    def from_preprocessed(cls, pre, camera: Cameras, photo: np.ndarray | None = None,
                          max_size: int | None = None,
                          background=(1.0, 1.0, 1.0),
                          sharp_mask: bool = True) -> "PhotoEvidence":
        """From ``prior.preprocess.Preprocessed`` and the fitted input camera.

        photo: the original photo (uint8 [H,W,3]); with it the crop is re-sampled from the
        photo at its native resolution (one pixel per photo pixel of the crop box, at most
        ``max_size`` and at least the crop's size) instead of the pipeline's small crop;
        the mask is the pipeline's, upsampled (:func:`upsample_mask`; ``sharp_mask``: its
        soft edge keeps its width in pixels, else bilinear)."""
        S = pre.size
        side = float(pre.crop_box[2] - pre.crop_box[0])
        N = S
        if photo is not None:
            N = max(S, int(round(side)))
            if max_size is not None:
                N = max(S, min(N, int(max_size)))
        mask = torch.from_numpy(np.asarray(pre.mask, np.float32)).clamp(0, 1)
        if N == S:
            image = torch.from_numpy(np.asarray(pre.rgb_raw)).permute(2, 0, 1).float() / 255.0
        else:
            import cv2

            k = N / side
            x0, y0 = float(pre.crop_box[0]), float(pre.crop_box[1])
            m = np.array([[k, 0.0, (0.5 - x0) * k - 0.5], [0.0, k, (0.5 - y0) * k - 0.5]])
            # the photo's edge replicated beyond it: a constant border blended a crop pixel
            # straddling a cut edge with the background colour
            warped = cv2.warpAffine(np.ascontiguousarray(photo[..., :3]), m, (N, N),
                                    flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
            image = torch.from_numpy(warped).permute(2, 0, 1).float() / 255.0
            mask = upsample_mask(mask, N, sharp=sharp_mask)
        frame = frame_mask(N, pre.crop_box, N / side, pre.original_size)
        # the small crop's resampling fades up to ~1.5 of its pixels before a cut edge
        mask = extend_to_cut_edge(mask, frame, int(np.ceil(2 * N / S)))
        bgt = torch.tensor(background, dtype=torch.float32)[:, None, None]
        comp = image * mask + bgt * (1 - mask)
        cam = camera.to("cpu", torch.float32)
        if (cam.width, cam.height) != (N, N):
            cam = cam.resized(N, N)
        return cls(image=image, composite=comp, mask=mask, camera=cam,
                   frame=frame, background=tuple(float(v) for v in background))

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """World points [N,3] -> (crop pixels [N,2], camera z [N])."""
        uv, z = project_points(points.detach().float().cpu(), self.camera.viewmats,
                               self.camera.Ks)
        return uv[0], z[0]

    def beyond_frame(self, points: Tensor) -> Tensor:
        """[N] bool: points in front of the camera that project outside the original photo
        (beyond its edge, or outside the crop altogether)."""
        uv, z = self.project(points)
        S = self.size
        iu, iv = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        inside_crop = (iu >= 0) & (iu < S) & (iv >= 0) & (iv < S)
        ok = torch.zeros(len(uv), dtype=torch.bool)
        ok[inside_crop] = self.frame[iv[inside_crop], iu[inside_crop]]
        return (z > 0) & ~ok
