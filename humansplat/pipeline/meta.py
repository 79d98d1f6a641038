"""A run's ``meta.json``: what ran (versions, checkpoint, components), on what (the input,
its crop and camera), with which settings, and how long each stage took."""

from __future__ import annotations

import platform
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._version import __version__

__all__ = ["reconstruction_meta", "versions", "jsonable"]

RECONSTRUCTION_FORMAT = "humansplat-reconstruction/1"


def versions() -> dict[str, str]:
    import huggingface_hub

    return {"humansplat": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "huggingface_hub": huggingface_hub.__version__,
            "python": platform.python_version()}


def reconstruction_meta(*, method: str, seed: int, checkpoint: dict[str, Any], loaded, pre,
                        fit, synth, settings: dict[str, Any], components: dict[str, Any],
                        num_gaussians: int, num_before_pruning: int,
                        timings: dict[str, float]) -> dict[str, Any]:
    """meta.json of one reconstruction (``synth``: the view synthesizer's output)."""
    out = synth
    return {
        "format": RECONSTRUCTION_FORMAT,
        "method": method,
        "seed": seed,
        "versions": versions(),
        "checkpoint": checkpoint,
        "input": {"source": getattr(loaded, "source", None),
                  "original_size": [int(v) for v in pre.original_size],
                  "crop_box": [float(v) for v in pre.crop_box],
                  "crop_scale": float(pre.scale),
                  "n_people_detected": int(pre.n_people_detected),
                  "notes": list(pre.notes)},
        "camera": {"viewmat": fit.viewmat.tolist(), "K": fit.K.tolist(),
                   "image_size": [int(v) for v in fit.image_size],
                   "convention": "OpenCV world-to-camera; world +y up, person faces +z"},
        "view_cameras": {"azimuths_deg": [float(a) for a in out.cameras.azimuths]
                         if out.cameras.azimuths is not None else None,
                         "viewmats": out.cameras.viewmats.tolist(),
                         "Ks": out.cameras.Ks.tolist(),
                         "image_size": [int(out.cameras.width), int(out.cameras.height)]},
        "settings": dict(settings),
        "components": components,
        "fit": {k: v for k, v in fit.diagnostics.items()
                if isinstance(v, (int, float, str)) or v is None},
        "num_gaussians": num_gaussians,
        "num_gaussians_before_pruning": num_before_pruning,
        "files_up_axis": "-y (rotated 180 deg about x for splat viewers; load_ply undoes it)",
        "timings_s": timings,
    }


def jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    if isinstance(x, Tensor) and x.numel() == 1:
        return x.item()
    return str(x)
