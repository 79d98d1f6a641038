"""A close-up figure: the photo and re-renders of it at its own camera, one pixel per photo
pixel, cropped to a box: detail that the 192 px README panels cannot show.

    python scripts/zoom_figure.py REC_DIR [REC_DIR ...] --labels A [B ...] --out PATH
                                  [--box X0 Y0 X1 Y1] [--scale 2] [--photo PATH]

The REC_DIRs are reconstructions of one photo (``Reconstruction.save`` folders, e.g. from
``benchmarks/real_photos.py --save-dir``, run with different settings). The box is in
fractions of the crop (the reconstruction's input camera, ``meta["camera"]``); panels are
enlarged ``--scale`` times with nearest-neighbour so single pixels stay visible.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for readme_figures

from readme_figures import LABEL_PX, _caption, _photo, save_small_png  # noqa: E402, F401


def zoom_panels(rec_dirs: list[Path], labels: list[str], box, scale: int = 2,
                photo: str | None = None) -> np.ndarray:
    """photo | each re-render, cropped to ``box`` (fractions), as uint8 [H,W,3]."""
    import cv2

    from humansplat.eval.photo_fidelity import (
        input_camera_from_meta,
        photo_at_input_camera,
        render_at_camera,
    )
    from humansplat.io import load_ply
    from humansplat.io.video import image_grid

    def cut(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        x0, y0, x1, y1 = (int(round(f * s)) for f, s in zip(box, (w, h, w, h)))
        u8 = (np.clip(img[y0:y1, x0:x1], 0, 1) * 255 + 0.5).astype(np.uint8)
        return cv2.resize(u8, ((x1 - x0) * scale, (y1 - y0) * scale),
                          interpolation=cv2.INTER_NEAREST)

    panels = []
    for i, (d, label) in enumerate(zip(rec_dirs, labels)):
        meta = json.loads((d / "meta.json").read_text())
        cam = input_camera_from_meta(meta).native()
        if i == 0:
            rgb = _photo(d, meta, photo)
            view = photo_at_input_camera(rgb, np.ones(rgb.shape[:2], np.float32), cam)
            shown = view.rgb * view.inside[..., None] + (1 - view.inside[..., None])
            panels.append(_caption(cut(shown), "photo"))
        img, _ = render_at_camera(load_ply(d / "gaussians.ply"), cam.viewmat, cam.K,
                                  cam.width, cam.height)
        panels.append(_caption(cut(img.numpy()), label))
    return image_grid(panels, ncols=len(panels), padding=2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reconstructions", nargs="+", help="folders written by Reconstruction.save")
    ap.add_argument("--labels", nargs="+", required=True, help="one caption per folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--box", type=float, nargs=4, default=(0.3, 0.1, 0.7, 0.5),
                    metavar=("X0", "Y0", "X1", "Y1"), help="fractions of the crop")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--photo", default=None)
    ap.add_argument("--max-kb", type=float, default=150.0)
    args = ap.parse_args(argv)
    if len(args.labels) != len(args.reconstructions):
        ap.error("give one label per reconstruction folder")
    torch.set_grad_enabled(False)
    img = zoom_panels([Path(d) for d in args.reconstructions], args.labels, args.box,
                      args.scale, args.photo)
    n = save_small_png(img, Path(args.out), args.max_kb)
    print(f"{args.out} ({img.shape[1]}x{img.shape[0]}, {n / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
