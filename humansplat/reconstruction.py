"""What one pipeline run returns, and how it is written to disk.

:class:`Reconstruction` holds CPU tensors and uint8 images only (so it crosses process
boundaries, e.g. ZeroGPU, by pickling). :meth:`Reconstruction.save` writes the output
folder atomically: files go to a hidden sibling folder first, which is then renamed into
place; when the folder already exists its old ``meta.json`` goes first and the new one is
moved in last. **A folder is complete exactly when it holds ``meta.json``.**
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from .cameras import Cameras
from .gaussians import Gaussians
from .metrics import mask_iou
from .io.splat_files import save_ply, save_splat

__all__ = ["Reconstruction", "OUTPUT_FILES", "latents_image", "render_alpha",
           "silhouette_iou_at_input"]

# progress(done, total, stage): the pipeline's callback signature (done may be fractional)
Progress = Callable[[float, int, str], None]

#: file name of each output (keys of the dict :meth:`Reconstruction.save` returns)
OUTPUT_FILES = {"ply": "gaussians.ply", "splat": "gaussians.splat", "video": "orbit.mp4",
                "views": "views.png", "latents": "latents.png", "body_png": "body.png",
                "body_obj": "body.obj", "body_params": "body.npz", "meta": "meta.json"}


def _render_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Reconstruction:
    """One photo's reconstruction (CPU tensors, uint8 HWC images).

    gaussians: the splat (world: metres, +y up, the person faces +z), part labels set.
    views:    uint8 [4,R,R,3] the generated views (azimuth 0, 90, 180, 270) as RGB previews.
    latents:  float [V,C,h,w] the multi-view features the reconstruction read: the input
              view first, then the 4 generated ones, in the reconstruction space (RGB in
              pixel space, scaled SD-VAE latents in "sd-vae").
    overlay:  uint8 [S,S,3] the fitted body over the crop; crop: uint8 [S,S,3] the crop;
    mask:     float32 [S,S] the person's mask in the crop.
    fit:      the ``BodyFit``; input_camera: 1 camera of the crop (S px); cameras: the 4
              view cameras (R px).
    timings:  seconds per stage (``save`` adds the export stages); info: which component
              ran at each stage; meta: what ``meta.json`` holds.
    """

    gaussians: Gaussians
    views: np.ndarray
    latents: Tensor
    overlay: np.ndarray
    crop: np.ndarray
    mask: np.ndarray
    fit: Any
    input_camera: Cameras
    cameras: Cameras
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def latents_preview(self) -> np.ndarray:
        """uint8 [H,W,3]: :func:`latents_image` of :attr:`latents`."""
        return latents_image(self.latents)

    def splat_colours(self) -> Gaussians:
        """:attr:`gaussians` in one colour each, as the photo's camera sees them: the
        viewer's ``.splat`` holds RGB only (``io.compact.rgb_seen_from``)."""
        from .cameras import camera_centers
        from .io.compact import rgb_seen_from

        return rgb_seen_from(self.gaussians,
                             camera_centers(self.input_camera.viewmats.float())[0])

    # -- files --------------------------------------------------------------------------
    def save(self, out_dir, *, video: bool = True, video_size: int = 256,
             progress: Progress | None = None, video_workers: int | None = None
             ) -> dict[str, Path]:
        """Write the outputs (``OUTPUT_FILES``; no ``video`` when ``video=False``) into
        ``out_dir`` and return their paths. ``.ply``/``.splat`` are written y-down for splat
        viewers (the header records it; ``load_ply`` undoes it). ``progress(done, total,
        stage)`` follows the exports. ``video_workers``: threads rendering the turntable
        (None: 2 on a CPU with 2 or more cores, else 1; the frames are the same bits
        whatever the count). On any error nothing complete-looking is left."""
        from PIL import Image

        from .avatar.skinning import BodyParams
        from .io import save_image_grid, save_orbit_video

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"output path {out} exists and is not a folder")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        names = {k: v for k, v in OUTPUT_FILES.items() if video or k != "video"}
        total = len(names)
        done = 0
        timings: dict[str, float] = {}

        def step(stage: str, t0: float) -> None:
            nonlocal done
            timings[f"export_{stage}"] = time.perf_counter() - t0
            done += 1
            if progress is not None:
                progress(done, total, f"export: {stage}")

        try:
            t = time.perf_counter()
            save_ply(self.gaussians, tmp / names["ply"], y_down=True)
            step("ply", t)
            t = time.perf_counter()
            save_splat(self.splat_colours(), tmp / names["splat"], y_down=True)
            step("splat", t)
            t = time.perf_counter()
            save_image_grid(list(self.views), tmp / names["views"], ncols=len(self.views))
            step("views", t)
            t = time.perf_counter()
            Image.fromarray(self.latents_preview).save(tmp / names["latents"])
            step("latents", t)
            t = time.perf_counter()
            Image.fromarray(self.overlay).save(tmp / names["body_png"])
            step("body_png", t)
            t = time.perf_counter()
            self.fit.save_obj(tmp / names["body_obj"])
            step("body_obj", t)
            t = time.perf_counter()  # the fitted body's parameters: what animation binds to
            BodyParams.from_fit(self.fit).save(tmp / names["body_params"])
            step("body_params", t)
            if video:
                t = time.perf_counter()
                vp = None
                if progress is not None:
                    vp = lambda d, n: progress(done + d / n, total, "export: turntable")  # noqa: E731
                g = self.gaussians.to(_render_device())
                workers = video_workers if video_workers is not None else \
                    (1 if g.device.type == "cuda" else min(2, os.cpu_count() or 1))
                save_orbit_video(g, tmp / names["video"], size=video_size, progress=vp,
                                 workers=workers)
                step("video", t)
            self.timings.update(timings)
            meta = dict(self.meta)
            meta["timings_s"] = {**meta.get("timings_s", {}), **timings}
            meta["files"] = dict(names)
            meta["settings"] = {**meta.get("settings", {}), "video": video,
                                "video_size": video_size if video else None}
            t = time.perf_counter()
            (tmp / names["meta"]).write_text(json.dumps(meta, indent=2))
            step("meta", t)
            self.meta = meta
            _commit(tmp, out, names)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return {k: out / v for k, v in names.items()}

    # -- animation (humansplat.avatar) ----------------------------------------------------
    def avatar(self, body_model=None):
        """The splat bound to its fitted body (``avatar.Avatar``): ``.pose(body_pose)``,
        ``.pose_smpl(smpl_pose)``, ``.canonical()``. ``body_model``: the model the body was
        fitted with (default: a fresh one of that kind). Its colours are the photo camera's
        (:meth:`splat_colours`), as the viewer's."""
        from .avatar import BodyParams, bind

        params = BodyParams.from_fit(self.fit)
        return bind(self.splat_colours(), body_model or params.body_model(), params)

    def repose(self, body_pose=None, *, body_model=None, **kwargs) -> Gaussians:
        """The splat in another pose of its body: ``body_pose`` [J-1,3] of the body model or
        a per-SMPL-joint pose [24,3] (None: the fitted pose); keywords ``global_orient``,
        ``transl``, ``scale``. Binding costs about a second: keep :meth:`avatar` for many
        poses."""
        av = self.avatar(body_model)
        if body_pose is not None and tuple(torch.as_tensor(body_pose).shape) == (24, 3):
            return av.pose_smpl(body_pose, **kwargs)
        return av.pose(body_pose, **kwargs)


def _commit(tmp: Path, out: Path, names: dict[str, str]) -> None:
    """Move the finished files of ``tmp`` into ``out``: one rename when ``out`` does not
    exist, else file by file with ``meta.json`` (the completion marker) removed first and
    moved in last."""
    if not out.exists():
        try:
            os.rename(tmp, out)
            return
        except OSError:  # created meanwhile, or another file system: fall through
            out.mkdir(parents=True, exist_ok=True)
    marker = out / names["meta"]
    if marker.exists():
        marker.unlink()
    for key, name in names.items():
        if key != "meta":
            os.replace(tmp / name, out / name)
    if "video" not in names and (out / OUTPUT_FILES["video"]).exists():
        (out / OUTPUT_FILES["video"]).unlink()  # a stale turntable of an earlier run
    os.replace(tmp / names["meta"], marker)


# --------------------------------------------------------------------------------------------
# the multi-view latents as a picture
# --------------------------------------------------------------------------------------------

def _normalise(x: Tensor) -> Tensor:
    """Scale to [0,1] by the 1st/99th percentiles (robust to a few extreme values)."""
    flat = x.flatten().float()
    if flat.numel() > 1_000_000:
        flat = flat[torch.linspace(0, flat.numel() - 1, 1_000_000).long()]
    lo, hi = torch.quantile(flat, 0.01), torch.quantile(flat, 0.99)
    return ((x - lo) / (hi - lo).clamp(min=1e-8)).clamp(0, 1)


def latents_image(features: Tensor, *, min_cell: int = 128) -> np.ndarray:
    """A picture of multi-view features [V,C,h,w]: one column per view (input first), first
    row the features as colour (RGB when C = 3, else their 3 principal components, shared
    across views), then one row per channel (viridis, one scale per channel across views).
    Small maps are enlarged (nearest) to at least ``min_cell`` px. uint8 [H,W,3]."""
    import cv2

    from .io.video import image_grid

    if not isinstance(features, Tensor) or features.ndim != 4:
        raise ValueError(f"features must be a [V,C,h,w] tensor, got "
                         f"{tuple(features.shape) if isinstance(features, Tensor) else features}")
    f = features.detach().float().cpu()
    V, C, h, w = f.shape
    if C == 3:
        colour = f.clamp(0, 1) if (f.min() >= -1e-3 and f.max() <= 1 + 1e-3) else _normalise(f)
    else:
        x = f.permute(0, 2, 3, 1).reshape(-1, C)
        x = x - x.mean(0)
        _, _, vt = torch.linalg.svd(x[:: max(1, len(x) // 200_000)], full_matrices=False)
        k = min(3, vt.shape[0])
        pcs = (x @ vt[:k].T).reshape(V, h, w, k).permute(0, 3, 1, 2)
        if k < 3:
            pcs = torch.cat([pcs, pcs[:, :1].expand(V, 3 - k, h, w)], 1)
        colour = torch.stack([_normalise(pcs[:, i]) for i in range(3)], 1)
    scale = max(1, -(-min_cell // max(h, w)))
    cells = []
    row0 = (colour.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
    cells.extend(row0)
    for c in range(C):
        gray = (_normalise(f[:, c]).numpy() * 255 + 0.5).astype(np.uint8)  # [V,h,w]
        for v in range(V):
            cells.append(cv2.applyColorMap(gray[v], cv2.COLORMAP_VIRIDIS)[..., ::-1])
    if scale > 1:
        cells = [np.repeat(np.repeat(c, scale, 0), scale, 1) for c in cells]
    return image_grid(cells, ncols=V, padding=2)


# --------------------------------------------------------------------------------------------
# the silhouette check: re-render at the input camera
# --------------------------------------------------------------------------------------------

def render_alpha(gaussians: Gaussians, viewmat: Tensor, K: Tensor, width: int,
                 height: int) -> Tensor:
    """Accumulated opacity [H,W] in [0,1] of ``gaussians`` seen by one camera
    (viewmat [4,4] world-to-camera, K [3,3] for width x height)."""
    from .render import rasterize

    g = gaussians.to(_render_device(), torch.float32)
    vm = torch.as_tensor(viewmat, dtype=torch.float32, device=g.device).reshape(1, 4, 4)
    Ks = torch.as_tensor(K, dtype=torch.float32, device=g.device).reshape(1, 3, 3)
    ones = torch.ones(len(g), 1, device=g.device)
    with torch.no_grad():
        _, alpha, _ = rasterize(g.means, g.quats, g.scales, g.opacities, ones, vm, Ks,
                                int(width), int(height), backgrounds=torch.zeros(1, 1,
                                                                                 device=g.device))
    return alpha[0, ..., 0].float().cpu()


def silhouette_iou_at_input(gaussians: Gaussians, viewmat, K, image_size, mask,
                            threshold: float = 0.5) -> float:
    """IoU between the splat's silhouette at the input camera (alpha > ``threshold``) and
    the person's ``mask`` [S,S] (> 0.5); ``image_size`` = (width, height) of the camera."""
    w, h = (int(v) for v in image_size)
    m = torch.as_tensor(np.asarray(mask), dtype=torch.float32)
    if tuple(m.shape) != (h, w):
        raise ValueError(f"mask is {tuple(m.shape)}, the camera sees {(h, w)}")
    alpha = render_alpha(gaussians, torch.as_tensor(viewmat), torch.as_tensor(K), w, h)
    return mask_iou((alpha > threshold).float(), m)
