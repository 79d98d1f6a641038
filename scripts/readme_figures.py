"""README figures: photo | re-render at the photo's camera | three orbit views, one PNG per
reconstruction.

    python scripts/readme_figures.py RECONSTRUCTION_DIR [...] [--out-dir docs/figures]
                                     [--photo PATH] [--size 192] [--azimuths 90 180 270]

RECONSTRUCTION_DIR is a folder written by ``Reconstruction.save`` (``humansplat
reconstruct``, or ``benchmarks/real_photos.py --save-dir``). The photo is ``--photo``, else
``photo.png`` in the folder (the benchmark writes it), else ``meta["input"]["source"]``;
it is resampled into the reconstruction's input camera (``meta["camera"]``: the square crop
the pipeline fitted), so the first two panels show the same framing. The orbit views circle
the splat's centre at its own framing radius, 5 degrees above level. Panels are ``--size``
px on white; the PNG is palette-quantised when that keeps it under ``--max-kb`` (150 KB).
Writes OUT_DIR/<folder name>.png and prints its path and size.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LABEL_PX = 16  # caption strip under each panel


def _photo(rec_dir: Path, meta: dict, photo: str | None) -> np.ndarray:
    from PIL import Image, ImageOps

    for cand in (photo, rec_dir / "photo.png", meta.get("input", {}).get("source")):
        if cand and Path(cand).is_file():
            with Image.open(cand) as im:  # upright as the pipeline loads it
                return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    raise SystemExit(f"{rec_dir}: no photo found; pass --photo (the image the reconstruction "
                     "was made from)")


def _caption(img: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    h, w = img.shape[:2]
    canvas = Image.new("RGB", (w, h + LABEL_PX), "white")
    canvas.paste(Image.fromarray(img), (0, 0))
    draw = ImageDraw.Draw(canvas)
    tw = draw.textlength(text)
    draw.text(((w - tw) / 2, h + 2), text, fill=(60, 60, 60))
    return np.asarray(canvas)


def figure(rec_dir: Path, *, photo: str | None = None, size: int = 192,
           azimuths=(90.0, 180.0, 270.0), elevation: float = 5.0) -> np.ndarray:
    """The figure of one reconstruction folder as uint8 [H,W,3]."""
    import cv2

    from humansplat.cameras import orbit_cameras
    from humansplat.eval.photo_fidelity import (
        input_camera_from_meta,
        photo_at_input_camera,
        render_at_camera,
    )
    from humansplat.io import load_ply
    from humansplat.io.video import image_grid, orbit_framing

    meta = json.loads((rec_dir / "meta.json").read_text())
    g = load_ply(rec_dir / "gaussians.ply")
    cam = input_camera_from_meta(meta)
    rgb = _photo(rec_dir, meta, photo)
    view = photo_at_input_camera(rgb, np.ones(rgb.shape[:2], np.float32), cam)
    shown = view.rgb * view.inside[..., None] + (1 - view.inside[..., None])  # white beyond
    sharp = cam.resized(2 * size)
    re_render, _ = render_at_camera(g, sharp.viewmat, sharp.K, sharp.width, sharp.height)

    def fit(img: np.ndarray) -> np.ndarray:
        u8 = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
        return cv2.resize(u8, (size, size), interpolation=cv2.INTER_AREA)

    panels = [_caption(fit(shown), "photo"), _caption(fit(re_render.numpy()), "re-render")]
    target, radius = orbit_framing(g)
    cams = orbit_cameras([float(a) for a in azimuths], elevation, radius, target=target,
                         width=2 * size, height=2 * size)
    for i, az in enumerate(azimuths):
        img, _ = render_at_camera(g, cams.viewmats[i], cams.Ks[i], 2 * size, 2 * size)
        panels.append(_caption(fit(img.numpy()), f"orbit {az:g} deg"))
    return image_grid(panels, ncols=len(panels), padding=2)


def save_small_png(img: np.ndarray, path: Path, max_kb: float = 150.0) -> int:
    """Write ``img`` as PNG; palette-quantised (256 colours) when the full-colour file is
    over ``max_kb``. Returns the file size in bytes."""
    from PIL import Image

    im = Image.fromarray(img)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    if buf.tell() > max_kb * 1024:
        buf = io.BytesIO()
        im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
                    ).save(buf, format="PNG", optimize=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return len(buf.getvalue())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reconstructions", nargs="+", help="folders written by Reconstruction.save")
    ap.add_argument("--out-dir", default=str(ROOT / "docs" / "figures"))
    ap.add_argument("--photo", default=None, help="the input photo (one folder only)")
    ap.add_argument("--size", type=int, default=192, help="panel side in px")
    ap.add_argument("--azimuths", type=float, nargs=3, default=(90.0, 180.0, 270.0))
    ap.add_argument("--max-kb", type=float, default=150.0)
    args = ap.parse_args(argv)
    if args.photo and len(args.reconstructions) > 1:
        ap.error("--photo names the photo of one reconstruction; give one folder with it")
    torch.set_grad_enabled(False)
    for d in args.reconstructions:
        rec_dir = Path(d)
        if not (rec_dir / "meta.json").is_file():
            ap.error(f"{rec_dir} is not a finished reconstruction folder (no meta.json)")
        img = figure(rec_dir, photo=args.photo, size=args.size, azimuths=args.azimuths)
        out = Path(args.out_dir) / f"{rec_dir.name}.png"
        n = save_small_png(img, out, args.max_kb)
        print(f"{out} ({img.shape[1]}x{img.shape[0]}, {n / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
