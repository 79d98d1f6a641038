"""Where the pipeline's person mask and the independent one disagree, as pictures.

For each real photo of ``benchmarks/real_photos.py`` (dev photos only, unless
``--allow-held-out``: looking at a held-out photo spends its held-out status), run the default
pipeline's preprocessing (``HumanSplatPipeline.preprocess``: the mask a whole run uses, in a
second) and write OUT/NAME.png: the photo | the photo dimmed, blue where only the pipeline's
mask calls a pixel person, red where only the independent mask does (mediapipe Pose's
segmentation head; the benchmark's reference). The benchmark's misses sit in those two
colours (its "where the error sits" table counts them); this shows what they are: a
blurred crowd joined to a hand, a camera the reference takes in, a head the segmenter lost
(real-photos item 38 in docs/faithful_splat.md was found this way).

    python scripts/mask_overlay.py [--cases lab,zidane] [--noise-seed N] [--out-dir DIR]
                                   [--max-size 1024] [--allow-held-out]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

PIPELINE_ONLY = (0.0, 0.0, 1.0)  # blue
INDEPENDENT_ONLY = (1.0, 0.0, 0.0)  # red


def disagreement(rgb: np.ndarray, pipeline: np.ndarray, independent: np.ndarray
                 ) -> tuple[np.ndarray, dict]:
    """rgb float [H,W,3] in [0,1], the two masks [H,W] (> 0.5: person) -> the picture uint8
    [H,2W,3] (the photo | dimmed, blue pipeline-only, red independent-only) and the shares of
    the photo's pixels each colour covers."""
    from real_photos import mask_shares

    pm, im = np.asarray(pipeline) > 0.5, np.asarray(independent) > 0.5
    if pm.shape != im.shape or rgb.shape[:2] != pm.shape:
        raise ValueError(f"photo {rgb.shape[:2]} and masks {pm.shape}, {im.shape} differ")
    over = np.clip(rgb, 0, 1) * 0.6 + 0.2
    over[pm & ~im] = PIPELINE_ONLY
    over[im & ~pm] = INDEPENDENT_ONLY
    pic = (np.concatenate([np.clip(rgb, 0, 1), over], axis=1) * 255).round().astype(np.uint8)
    return pic, mask_shares(pm, im)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=None, help="comma-separated case names (default: dev)")
    ap.add_argument("--noise-seed", type=int, default=0,
                    help="the photo with the benchmark's grey level of noise (0: as it is)")
    ap.add_argument("--out-dir", default="outputs/mask_overlay")
    ap.add_argument("--max-size", type=int, default=1024, help="long side of the pictures")
    ap.add_argument("--allow-held-out", action="store_true")
    args = ap.parse_args(argv)

    import torch
    from PIL import Image

    from real_photos import CASES, grey_level_noise, preprocessed_frame

    from humansplat.pipeline import HumanSplatPipeline

    want = args.cases.split(",") if args.cases else [c.name for c in CASES if c.split == "dev"]
    unknown = sorted(set(want) - {c.name for c in CASES})
    if unknown:
        ap.error(f"unknown case(s) {unknown}; known: {[c.name for c in CASES]}")
    cases = [c for c in CASES if c.name in want]
    held = [c.name for c in cases if c.split != "dev"]
    if held and not args.allow_held_out:
        ap.error(f"{held} held out: looking at them spends that (--allow-held-out to do so)")
    torch.set_num_threads(1)
    pipe = HumanSplatPipeline.from_pretrained()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for case in cases:
        photo = case.load()
        # the run's first stage alone: the mask a whole run would use, in a second
        pre = pipe.preprocess(grey_level_noise(photo, args.noise_seed) if args.noise_seed
                              else photo)
        view, pm = preprocessed_frame(pre, photo, case.independent_mask(), args.max_size)
        pic, shares = disagreement(view.rgb, pm, view.mask)
        path = out / f"{case.name}.png"
        Image.fromarray(pic).save(path)
        print(f"{case.name}: pipeline only {100 * shares['pipeline_only']:.1f} % of the "
              f"photo, independent only {100 * shares['independent_only']:.1f} % -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
