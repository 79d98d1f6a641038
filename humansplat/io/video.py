"""Videos and image grids: H.264 MP4 writing, the 360-degree turntable of a splat, views.png.

Videos are H.264 (libx264) in yuv420p with ``+faststart``, which every browser plays inline.
yuv420p needs even sizes: odd frames are padded by one replicated row/column (never resized).
The ffmpeg binary comes with the imageio-ffmpeg wheel.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from ..cameras import DEFAULT_FOVY_DEG, Cameras, orbit_cameras, radius_to_fit
from ..gaussians import Gaussians
from .images import to_uint8

#: turntables merge Gaussians smaller than this many output pixels (see render_orbit_frames)
DEFAULT_LOD_PX = 1.0
from .paths import as_path, atomic_path

__all__ = [
    "write_video",
    "orbit_framing",
    "orbit_video_cameras",
    "render_orbit_frames",
    "lod_cell",
    "save_orbit_video",
    "image_grid",
    "save_image_grid",
    "VIDEO_SUFFIXES",
]

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")  # containers that hold H.264


def _check_frame(frame, index: int, size: tuple[int, int] | None) -> np.ndarray:
    f = frame.detach().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
        raise ValueError(f"write_video: frame {index} must be uint8 [H,W,3], got "
                         f"{f.dtype} {list(f.shape)}")
    if size is not None and f.shape[:2] != size:
        raise ValueError(f"write_video: frame {index} is {f.shape[1]}x{f.shape[0]}, the first "
                         f"frame was {size[1]}x{size[0]}; all frames must share one size")
    if f.shape[0] < 2 or f.shape[1] < 2:
        raise ValueError(f"write_video: frames must be at least 2x2, got {list(f.shape)}")
    return f


def _pad_even(f: np.ndarray) -> np.ndarray:
    ph, pw = f.shape[0] % 2, f.shape[1] % 2
    if ph or pw:
        f = np.pad(f, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return np.ascontiguousarray(f)


def write_video(frames: Iterable[np.ndarray], path, fps: float = 24, *,
                quality: float = 7.0) -> Path:
    """Encode uint8 [H,W,3] frames (any iterable, consumed lazily) as an H.264 video.

    quality: imageio-ffmpeg's 1..10 scale (10 best), mapped to x264's CRF as
    int(51 * (1 - quality/10)); 7 gives CRF 15. Returns the path written; the file appears
    only once encoding has succeeded."""
    import imageio_ffmpeg

    p = as_path(path)
    if p.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"write_video: path must end in one of {', '.join(VIDEO_SUFFIXES)}, "
                         f"got {p.name!r}")
    if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"write_video: fps must be a positive number, got {fps!r}")
    if not (1 <= quality <= 10):
        raise ValueError(f"write_video: quality must lie in [1, 10], got {quality!r}")
    it = iter(frames)
    try:
        first = _check_frame(next(it), 0, None)
    except StopIteration:
        raise ValueError("write_video: no frames to write") from None
    size = first.shape[:2]
    with atomic_path(p) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (first.shape[1] + first.shape[1] % 2, first.shape[0] + first.shape[0] % 2),
            fps=float(fps), codec="libx264", pix_fmt_out="yuv420p", quality=float(quality),
            macro_block_size=1, ffmpeg_log_level="error",
            output_params=["-movflags", "+faststart"])
        writer.send(None)  # start ffmpeg
        try:
            writer.send(_pad_even(first))
            for i, frame in enumerate(it, start=1):
                writer.send(_pad_even(_check_frame(frame, i, size)))
        finally:
            writer.close()
    return p


# --------------------------------------------------------------------------------------------
# turntable
# --------------------------------------------------------------------------------------------

def orbit_framing(g: Gaussians, fovy_deg: float = DEFAULT_FOVY_DEG, margin: float = 1.1
                  ) -> tuple[tuple[float, float, float], float]:
    """Target (the centre of the splat's bounds) and orbit radius at which the whole splat
    stays in a square frame at every azimuth of a level orbit.

    Bounds are robust: Gaussians with opacity < 0.05 are ignored (unless that is all of
    them) and the 0.5/99.5 percentiles stand for min/max, so a few floaters do not shrink
    the person to a dot."""
    if len(g) == 0:
        raise ValueError("orbit_framing: the Gaussians are empty")
    means = g.means.detach().float().cpu()
    keep = g.opacities.detach().cpu() >= 0.05
    if keep.sum() >= 1:
        means = means[keep]
    lo = torch.quantile(means, 0.005, dim=0) if len(means) > 1 else means[0]
    hi = torch.quantile(means, 0.995, dim=0) if len(means) > 1 else means[0]
    target = 0.5 * (lo + hi)
    # Footprints reach ~2 sigma beyond their centres.
    pad = 2.0 * float(g.scales.detach().float().cpu().amax(dim=1).median())
    half_height = 0.5 * float(hi[1] - lo[1]) + pad
    r_xz = (means[:, [0, 2]] - target[[0, 2]]).norm(dim=1)
    horiz = (float(torch.quantile(r_xz, 0.995)) if len(r_xz) > 1 else 0.0) + pad
    half = max(half_height, horiz, 1e-3)
    # The nearest part of the splat is up to `horiz` closer to the camera than the target.
    radius = radius_to_fit(2.0 * half, fovy_deg, margin) + horiz
    return tuple(float(v) for v in target), float(radius)


def orbit_video_cameras(g: Gaussians, *, n_frames: int = 60, size: int = 256,
                        radius: float | None = None, elevation_deg: float = 0.0,
                        target=None, fovy_deg: float = DEFAULT_FOVY_DEG) -> Cameras:
    """``n_frames`` cameras evenly spaced over 360 deg of azimuth (no repeated end frame, so
    the video loops), framed by :func:`orbit_framing` unless radius/target are given."""
    if not (isinstance(n_frames, int) and n_frames >= 1):
        raise ValueError(f"n_frames must be a positive int, got {n_frames!r}")
    if not (isinstance(size, int) and size >= 2):
        raise ValueError(f"size must be an int >= 2, got {size!r}")
    if radius is None or target is None:
        auto_target, auto_radius = orbit_framing(g, fovy_deg)
        target = auto_target if target is None else target
        radius = auto_radius if radius is None else radius
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius!r}")
    az = torch.arange(n_frames, dtype=torch.float32) * (360.0 / n_frames)
    return orbit_cameras(az, elevation_deg, float(radius), target=tuple(float(v) for v in target),
                         fovy_deg=fovy_deg, width=size, height=size, device=g.device)


def lod_cell(g: Gaussians, cams: Cameras, lod_px: float) -> float | None:
    """World size of ``lod_px`` output pixels of ``cams`` at the splat's centre (from the
    first camera), the merge cell of :func:`render_orbit_frames`; None when undefined."""
    from ..render.lod import pixel_footprint

    if len(g) < 2 or not len(cams):
        return None
    centre = torch.linalg.inv(cams.viewmats[0].double())[:3, 3].to(g.means.dtype)
    dist = float((g.means.detach().mean(0) - centre).norm())
    return lod_px * pixel_footprint(float(cams.Ks[0, 1, 1]), dist) if dist > 0 else None


def render_orbit_frames(g: Gaussians, cams: Cameras, *, background=(1.0, 1.0, 1.0),
                        chunk: int = 8, progress: Callable[[int, int], None] | None = None,
                        lod_px: float | None = DEFAULT_LOD_PX,
                        workers: int = 1) -> Iterator[np.ndarray]:
    """Render ``g`` from ``cams`` in chunks of ``chunk`` cameras; yields uint8 [H,W,3] frames.
    ``progress(done, total)`` is called after each chunk is rendered.

    lod_px: Gaussians smaller than this many pixels (at the first camera's distance from the
        splat's centre) are merged per cell first (:func:`humansplat.render.lod.merge_gaussians`):
        a photo-resolution splat in a small video renders ~2x faster, frames ~32 dB PSNR from
        the unmerged ones (``benchmarks/turntable.py``). None or 0: no merging.
    workers: threads rendering chunks at once (the same frames, in order)."""
    from ..render import rasterize
    from ..render.lod import merge_gaussians

    if not (isinstance(chunk, int) and chunk >= 1):
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    if isinstance(workers, bool) or not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if lod_px is not None and not (isinstance(lod_px, (int, float)) and lod_px >= 0):
        raise ValueError(f"lod_px must be a number >= 0 or None, got {lod_px!r}")
    cell = lod_cell(g, cams, lod_px) if lod_px else None
    if cell is not None:
        g = merge_gaussians(g, cell)
    bg = torch.as_tensor(background, dtype=torch.float32, device=g.device).reshape(-1)
    if bg.shape != (3,):
        raise ValueError(f"background must be 3 floats (RGB in [0,1]), got {background!r}")
    colors = g.sh if g.sh is not None else g.colors
    total = len(cams)

    def render(start: int) -> np.ndarray:  # grad mode is per thread: set it here
        with torch.no_grad():
            c = cams[start:start + chunk]
            rgb, _, _ = rasterize(g.means, g.quats, g.scales, g.opacities, colors,
                                  c.viewmats, c.Ks, c.width, c.height,
                                  backgrounds=bg.expand(len(c), 3), sh_degree=g.sh_degree)
            return to_uint8(rgb[..., :3].movedim(-1, -3))  # [C,H,W,3]

    starts = list(range(0, total, chunk))
    if workers == 1 or len(starts) == 1:
        for start in starts:
            frames = render(start)
            if progress is not None:
                progress(min(start + chunk, total), total)
            yield from frames
        return
    # Chunks on a few threads (torch ops release the GIL; each thread computes with the
    # process's own intra-op thread count, so frames are the same bits as on one thread),
    # yielded in order with at most ``workers`` chunks ahead.
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="orbit") as pool:
        todo = iter(starts)
        # (range first: zip would otherwise draw one start too many from todo and drop it)
        pending = deque((s0, pool.submit(render, s0)) for _, s0 in zip(range(workers), todo))
        while pending:
            start, fut = pending.popleft()
            frames = fut.result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(render, nxt)))
            if progress is not None:
                progress(min(start + chunk, total), total)
            yield from frames


def save_orbit_video(gaussians: Gaussians, path, *, n_frames: int = 60, fps: float = 24,
                     size: int = 256, radius: float | None = None, elevation_deg: float = 0.0,
                     target=None, fovy_deg: float = DEFAULT_FOVY_DEG,
                     background=(1.0, 1.0, 1.0), chunk: int = 8,
                     progress: Callable[[int, int], None] | None = None,
                     quality: float = 7.0, lod_px: float | None = DEFAULT_LOD_PX,
                     workers: int = 1) -> Path:
    """A 360-degree turntable MP4 of ``gaussians`` (our +y-up world; the camera circles the
    y axis through ``target``). radius/target default to :func:`orbit_framing`, so the
    person fills the frame. Frames are rendered ``chunk`` cameras at a time and streamed to
    the encoder; ``progress(done, total)`` is called per chunk; ``lod_px`` and ``workers`` as
    in :func:`render_orbit_frames`. Returns the path written."""
    cams = orbit_video_cameras(gaussians, n_frames=n_frames, size=size, radius=radius,
                               elevation_deg=elevation_deg, target=target, fovy_deg=fovy_deg)
    frames = render_orbit_frames(gaussians, cams, background=background, chunk=chunk,
                                 progress=progress, lod_px=lod_px, workers=workers)
    return write_video(frames, path, fps=fps, quality=quality)


# --------------------------------------------------------------------------------------------
# grids
# --------------------------------------------------------------------------------------------

def _grid_cell(img, i: int) -> np.ndarray:
    if isinstance(img, torch.Tensor) or (isinstance(img, np.ndarray) and img.dtype.kind == "f"):
        img = to_uint8(img)  # float CHW in [0,1]
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise ValueError(f"images[{i}] must be uint8 [H,W,C] or float [C,H,W], got {a.dtype}")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"images[{i}] must be [H,W], [H,W,1|3|4] (uint8) or [C,H,W] (float), "
                         f"got {list(a.shape)}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return a[..., :3]


def image_grid(images: Sequence, ncols: int, *, padding: int = 0, pad_value: int = 255
               ) -> np.ndarray:
    """Tile same-size images row by row into one uint8 [H',W',3] array (``ncols`` per row,
    ``padding`` px of ``pad_value`` between and around cells; empty cells are filled too).
    Images may be uint8 HWC, or float CHW in [0,1] (tensors, or a [B,C,H,W] batch)."""
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        images = list(images)
    cells = [_grid_cell(im, i) for i, im in enumerate(images)]
    if not cells:
        raise ValueError("image_grid: no images")
    if not (isinstance(ncols, int) and ncols >= 1):
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    h, w = cells[0].shape[:2]
    for i, c in enumerate(cells):
        if c.shape[:2] != (h, w):
            raise ValueError(f"image_grid: images[{i}] is {c.shape[1]}x{c.shape[0]}, "
                             f"images[0] is {w}x{h}; all must share one size")
    ncols = min(ncols, len(cells))
    nrows = -(-len(cells) // ncols)
    grid = np.full((nrows * h + (nrows + 1) * padding, ncols * w + (ncols + 1) * padding, 3),
                   pad_value, np.uint8)
    for i, c in enumerate(cells):
        r, col = divmod(i, ncols)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y:y + h, x:x + w] = c
    return grid


def save_image_grid(images: Sequence, path, ncols: int, *, padding: int = 0,
                    pad_value: int = 255) -> Path:
    """Save :func:`image_grid` of ``images`` as an image file (PNG by the suffix)."""
    from PIL import Image

    grid = image_grid(images, ncols, padding=padding, pad_value=pad_value)
    p = as_path(path)
    with atomic_path(p) as tmp:
        Image.fromarray(grid).save(tmp, format=Image.registered_extensions().get(
            p.suffix.lower(), "PNG"))
    return p
