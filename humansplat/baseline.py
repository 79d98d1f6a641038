"""Prior-only reconstruction: photo -> fitted, textured body -> Gaussians, with no learned model.

This is the paper's natural baseline (the structure prior alone) and the offline front half of
the full pipeline: preprocess -> body fit -> projection view synthesis. Its Gaussians are the
textured fitted body, so it is what the reconstruction transformer must beat on held-out data.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ._version import __version__
from .cameras import Cameras, orthogonal_views
from .gaussians import Gaussians
from .io.splat_files import save_ply, save_splat


@dataclass
class PriorReconstruction:
    """Outputs of :func:`reconstruct_prior_only` (CPU tensors, uint8 images)."""

    gaussians: Gaussians
    views: np.ndarray  # uint8 [4,S,S,3]: the 4 orthogonal views (azimuth 0, 90, 180, 270)
    overlay: np.ndarray  # uint8 [S,S,3]: the fitted body over the preprocessed crop
    crop: np.ndarray  # uint8 [S,S,3]
    fit: object  # prior.fit.BodyFit
    cameras: Cameras  # the 4 view cameras
    meta: dict = field(default_factory=dict)

    def save(self, out_dir, *, video: bool = True, video_size: int = 256,
             progress=None) -> dict[str, Path]:
        """Write gaussians.ply / .splat (y-down for viewers), views.png, body.png, body.obj,
        orbit.mp4 and meta.json into ``out_dir``; return their paths."""
        from PIL import Image

        from .io import save_image_grid, save_orbit_video

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"ply": out / "gaussians.ply", "splat": out / "gaussians.splat",
                 "views": out / "views.png", "body_png": out / "body.png",
                 "body_obj": out / "body.obj", "meta": out / "meta.json"}
        save_ply(self.gaussians, paths["ply"], y_down=True)
        save_splat(self.gaussians, paths["splat"], y_down=True)
        save_image_grid(list(self.views), paths["views"], ncols=4)
        Image.fromarray(self.overlay).save(paths["body_png"])
        self.fit.save_obj(paths["body_obj"])
        from .avatar.skinning import BodyParams

        paths["body_params"] = BodyParams.from_fit(self.fit).save(out / "body.npz")  # animate
        if video:
            paths["video"] = save_orbit_video(self.gaussians, out / "orbit.mp4",
                                              size=video_size, progress=progress)
        paths["meta"].write_text(json.dumps(self.meta, indent=2))
        return paths


def reconstruct_prior_only(image, *, size: int = 512, view_size: int = 256,
                           foreground_ratio: float = 0.85, remove_background: bool = True,
                           body_model=None, synthesizer=None) -> PriorReconstruction:
    """Run preprocess -> fit -> projection synthesis on one photo (path, PIL, array or
    ``LoadedImage``). Raises ``InvalidImageError`` / ``NoPersonError`` with a readable
    message on bad input."""
    from .io import load_image, to_tensor
    from .prior.body import AnnyBody
    from .prior.fit import fit_preprocessed
    from .prior.overlay import overlay_fit
    from .prior.preprocess import preprocess
    from .synth.base import SynthInput
    from .synth.projection import ProjectionSynthesizer

    timings: dict[str, float] = {}
    t = time.perf_counter()
    loaded = image if hasattr(image, "rgb") and hasattr(image, "alpha") else load_image(image)
    pre = preprocess(loaded, size=size, foreground_ratio=foreground_ratio,
                     remove_background=remove_background)
    timings["preprocess"] = time.perf_counter() - t

    t = time.perf_counter()
    body_model = body_model or AnnyBody()
    fit = fit_preprocessed(pre, body_model)
    timings["body_fit"] = time.perf_counter() - t

    t = time.perf_counter()
    synthesizer = synthesizer or ProjectionSynthesizer(body_model, resolution=view_size)
    targets = orthogonal_views(radius=float(fit.cameras.centers[0].norm()), width=size,
                               height=size)
    inp = SynthInput(image=to_tensor(pre.rgb), mask=torch.as_tensor(pre.mask)[None],
                     input_camera=fit.cameras, target_cameras=targets, body_fit=fit)
    out = synthesizer(inp)
    gaussians = synthesizer.prior_gaussians(inp)
    timings["view_synthesis"] = time.perf_counter() - t

    views = (out.previews.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)
    meta = {
        "version": __version__,
        "method": "prior-only (fitted Anny body textured by the projection synthesizer)",
        "input": {"source": getattr(loaded, "source", None),
                  "original_size": list(pre.original_size),
                  "crop_box": [float(v) for v in pre.crop_box],
                  "n_people_detected": pre.n_people_detected, "notes": list(pre.notes)},
        "camera": {"viewmat": fit.viewmat.tolist(), "K": fit.K.tolist(),
                   "image_size": list(fit.image_size)},
        "settings": {"size": size, "view_size": view_size,
                     "foreground_ratio": foreground_ratio,
                     "remove_background": remove_background},
        "components": {"segmentation": pre.mask_source, "body_model": type(body_model).__name__,
                       "view_synthesizer": synthesizer.name, "space": synthesizer.space.name
                       if hasattr(synthesizer.space, "name") else str(synthesizer.space)},
        "fit": {k: v for k, v in fit.diagnostics.items()
                if isinstance(v, (int, float, str)) or v is None},
        "num_gaussians": len(gaussians),
        "files_up_axis": "-y (rotated 180 deg about x for splat viewers)",
        "timings_s": timings,
    }
    return PriorReconstruction(gaussians=gaussians, views=views,
                               overlay=overlay_fit(pre.rgb, fit), crop=pre.rgb, fit=fit,
                               cameras=out.cameras, meta=meta)
