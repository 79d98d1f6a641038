"""Timings and mask quality of humansplat.prior preprocessing (segmentation, landmarks, crop).

Timings: mediapipe selfie segmentation, mediapipe pose and the whole ``preprocess`` on a
512x512 photo (scikit-image's astronaut) and a 2000x3000 portrait (her cut-out pasted on grass).
Quality: mask IoU on 36 composites (her cut-out on 6 backgrounds x 6 layouts, ground truth =
the paste's alpha; selfie segmentation takes the coffee cup and the cat for people): the
whole-photo selfie mask for model_selection 0 and 1, and the final ``preprocess`` mask
(segmented on the crop) for both models, with and without the colour step
(``segmentation.refine_with_colour``; "no_colour"). The cut-out itself comes from model 0
on the astronaut photo, which flatters model 0 slightly at the silhouette edge.

    python benchmarks/preprocess.py [--out benchmarks/results/preprocess.json] [--repeats 10]
                                    [--no-quality] [--colour-seeds 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common

from skimage import data as skdata  # noqa: E402

from humansplat.errors import NoPersonError  # noqa: E402
from humansplat.prior.landmarks import MediapipePose  # noqa: E402
from humansplat.prior.preprocess import _Square, _warp_to_square, preprocess  # noqa: E402
from humansplat.prior.segmentation import MediapipeSegmenter  # noqa: E402
from common import machine_info, write_result  # noqa: E402

BACKGROUNDS = ("plain", "grass", "gravel", "brick", "coffee", "chelsea")  # cup, cat: "person"-like
# (canvas H, W, cut-out scale, paste x): portrait, landscape, half size, square, quarter size,
# near the edge. She is pasted standing on the bottom edge: her cut-out ends at the waist (the
# photo's edge), and a torso floating mid-canvas makes the segmenter invent a lap below it.
LAYOUTS = (
    (1500, 800, 1.0, 100),
    (800, 1200, 0.8, 300),
    (1200, 1600, 0.5, 900),
    (600, 600, 1.0, 50),
    (1200, 1600, 0.25, 300),
    (700, 900, 1.0, 380),
)


def _cutout(seg: MediapipeSegmenter) -> tuple[np.ndarray, np.ndarray]:
    ast = skdata.astronaut()
    m = seg(ast) > 0.5
    _, lab, st, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8))
    m = lab == 1 + np.argmax(st[1:, cv2.CC_STAT_AREA])
    ys, xs = np.nonzero(m)
    sl = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    return ast[sl], m[sl].astype(np.float32)


def _composite(cut, kind: str, h: int, w: int, s: float, x: int,
               y: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Paste the cut-out scaled by s at (x, y) (y None: on the bottom edge).
    -> (photo uint8 [h,w,3], ground-truth alpha float32 [h,w])."""
    if kind == "plain":
        canvas = np.full((h, w, 3), 225, np.uint8)
    else:
        tex = getattr(skdata, kind)()
        tex = np.repeat(tex[..., None], 3, 2) if tex.ndim == 2 else tex
        canvas = cv2.resize(tex, (w, h))
    rgb = cv2.resize(cut[0], None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    a = cv2.resize(cut[1], None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    y = h - a.shape[0] if y is None else y
    ph, pw = min(a.shape[0], h - y), min(a.shape[1], w - x)
    rgb, a = rgb[:ph, :pw], a[:ph, :pw]
    win = canvas[y : y + ph, x : x + pw].astype(np.float32)
    canvas[y : y + ph, x : x + pw] = np.round(win * (1 - a[..., None]) + rgb * a[..., None]).astype(np.uint8)
    gt = np.zeros((h, w), np.float32)
    gt[y : y + ph, x : x + pw] = a
    return canvas, gt


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    from humansplat.metrics import mask_iou

    return mask_iou(np.asarray(a, np.float32), np.asarray(b, np.float32))


def _time(fn, repeats: int) -> dict:
    fn()  # warm-up: graph construction, first-call allocations
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "repeats": repeats}


def _preprocess_into(parts: list, photo, seg, pose, colour_seeds: int = 1) -> None:
    parts.append(preprocess(photo, segmenter=seg, pose=pose, colour_seeds=colour_seeds).timings)


def timings(repeats: int, seg: MediapipeSegmenter, pose: MediapipePose, cut,
            colour_seeds: int = 1) -> list[dict]:
    photos = {
        "astronaut 512x512": skdata.astronaut(),
        "portrait 2000x3000": _composite(cut, "grass", 3000, 2000, 3.0, 250)[0],
    }
    rows = []
    for name, photo in photos.items():
        parts: list[dict] = []
        row = {
            "photo": name,
            "segmentation": _time(partial(seg, photo), repeats),
            "landmarks": _time(partial(pose, photo), repeats),
            "preprocess": _time(partial(_preprocess_into, parts, photo, seg, pose, colour_seeds),
                                repeats),
        }
        parts = parts[1:]  # drop the warm-up
        row["preprocess_breakdown_median_s"] = {
            k: statistics.median(p[k] for p in parts) for k in ("segmentation", "landmarks")
        }
        rows.append(row)
    return rows


def quality(cut, colour_seeds: int = 1) -> dict:
    segs = {m: MediapipeSegmenter(m) for m in (0, 1)}
    pose = MediapipePose()
    per: list[dict] = []
    for kind in BACKGROUNDS:
        for h, w, s, x in LAYOUTS:
            photo, gt = _composite(cut, kind, h, w, s, x)
            row = {"background": kind, "canvas": [w, h], "scale": s}
            for m, seg in segs.items():
                row[f"photo_mask_iou_model{m}"] = _iou(seg(photo), gt)
                try:
                    p = preprocess(photo, segmenter=seg, pose=pose, colour_seeds=colour_seeds)
                except NoPersonError as err:
                    row[f"preprocess_iou_model{m}"] = 0.0
                    row[f"found_model{m}"] = False
                    row[f"error_model{m}"] = str(err)
                    continue
                row[f"n_people_model{m}"] = p.n_people_detected
                x0, y0, x1, _ = p.crop_box
                gt_crop = _warp_to_square(gt, _Square(x0, y0, x1 - x0, p.size), border=0)
                row[f"preprocess_iou_model{m}"] = _iou(p.mask, gt_crop)
                row[f"found_model{m}"] = p.n_people_detected == 1
                # the same crop without the colour step (segmentation.refine_with_colour)
                q = preprocess(photo, segmenter=seg, pose=pose, colour_refine=False)
                x0, y0, x1, _ = q.crop_box
                gt_crop = _warp_to_square(gt, _Square(x0, y0, x1 - x0, q.size), border=0)
                row[f"preprocess_iou_no_colour_model{m}"] = _iou(q.mask, gt_crop)
            per.append(row)
    def mean(rows: list[dict], key: str) -> float:
        return float(np.mean([r[key] for r in rows])) if rows else float("nan")

    summary = {}
    for m in segs:
        found = [r for r in per if r[f"found_model{m}"]]
        summary[f"photo_mask_iou_model{m}"] = mean(per, f"photo_mask_iou_model{m}")
        summary[f"preprocess_iou_model{m}"] = mean(per, f"preprocess_iou_model{m}")
        summary[f"preprocess_iou_no_colour_model{m}"] = mean(
            [r for r in per if f"preprocess_iou_no_colour_model{m}" in r],
            f"preprocess_iou_no_colour_model{m}")
        summary[f"found_rate_model{m}"] = len(found) / len(per)
        summary[f"preprocess_iou_when_found_model{m}"] = mean(found, f"preprocess_iou_model{m}")
    return {"summary_mean": summary, "per_composite": per}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/preprocess.json")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--no-quality", action="store_true", help="timings only")
    ap.add_argument("--colour-seeds", type=int, default=1,
                    help="the colour step's GrabCut seeds (PipelineConfig.colour_seeds)")
    args = ap.parse_args()

    seg, pose = MediapipeSegmenter(0), MediapipePose()
    cut = _cutout(seg)
    import mediapipe

    result = {"machine": machine_info("cpu", mediapipe=mediapipe.__version__),
              "colour_seeds": args.colour_seeds,
              "timings": timings(args.repeats, seg, pose, cut, args.colour_seeds)}

    print(f"{'photo':<22}{'segmentation':>14}{'landmarks':>12}{'preprocess':>12}   "
          f"(median s of {args.repeats}; preprocess: seg {'+'} pose inside)")
    for r in result["timings"]:
        b = r["preprocess_breakdown_median_s"]
        print(f"{r['photo']:<22}{r['segmentation']['median_s']:>14.4f}{r['landmarks']['median_s']:>12.4f}"
              f"{r['preprocess']['median_s']:>12.4f}   ({b['segmentation']:.4f} + {b['landmarks']:.4f})")
    if not args.no_quality:
        q = quality(cut, args.colour_seeds)
        result["quality"] = q
        print(f"\nmask IoU, mean over {len(q['per_composite'])} composites:")
        for k, v in q["summary_mean"].items():
            print(f"  {k:<36}{v:.3f}")
    result["machine"]["loadavg_1min_at_end"] = os.getloadavg()[0]
    print()
    write_result(result, args.out)


if __name__ == "__main__":
    main()
