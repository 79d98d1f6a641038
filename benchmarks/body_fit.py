"""Body fitting: time and accuracy of humansplat.prior.fit on real and synthetic photos.

Real photos (scikit-image's astronaut and cameraman, plus any --images): seconds for
segmentation and landmarks (``preprocess`` timings), for the fit, and their total on a
512x512 crop; the fit's keypoint error and silhouette IoU against the preprocess mask.
Synthetic round trip: an Anny body in a random pose and shape (both genders, several
azimuths) rendered by our renderer; the fitter sees the projected keypoints and the render's
alpha; we report the median 2D keypoint error (fraction of the image size), the silhouette
IoU, the 3D joint error after similarity alignment (PA-MPJPE over the 21 fitted joints) and
the error of the body's lean in depth (degrees; ``--lean`` makes the true bodies lean toward
the camera, as a raised camera sees them; ``--cut-at-hips``: upper-body photos, the
keypoints below the hips unseen and the rows past the cut beyond the photo). Real photos:
the fitted body's lean in depth (``BodyFit.lean_deg``; a photo barely shows it).

    python benchmarks/body_fit.py [--out benchmarks/results/body_fit.json] [--threads 2]
                                  [--repeats 3] [--cases 12] [--images a.jpg b.png]
                                  [--lean 0] [--cut-at-hips]
                                  [--set iters_pose=140 --set silhouette_res=96 ...]

``--set`` overrides a :class:`~humansplat.prior.fit.FitConfig` field (to compare settings).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from humansplat.errors import ConfigError  # noqa: E402
from humansplat.prior.body import AnnyBody, anny_cache_dir, ensure_anny_cache  # noqa: E402
from humansplat.prior.fit import (FitConfig, fit_body, fit_preprocessed,  # noqa: E402
                                  procrustes_align, sample_pose, synthetic_view)

AZIMUTHS = (0.0, 45.0, -45.0, 90.0, 135.0, 180.0)
GENDERS = (0.0, 1.0)


def _machine(threads: int) -> dict:
    return {"platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": threads,
            "python": platform.python_version(), "torch": torch.__version__,
            "device": "cpu", "loadavg_1min_at_start": os.getloadavg()[0]}


def _real(paths, repeats: int, body, cfg: FitConfig) -> list[dict]:
    from skimage import data as skdata

    from humansplat.io.images import load_image
    from humansplat.prior.preprocess import preprocess

    photos = [("astronaut", skdata.astronaut()), ("cameraman", skdata.camera())]
    for p in paths:
        img = load_image(p)
        photos.append((Path(p).name, img))
    rows = []
    for name, img in photos:
        preprocess(img)  # warm-up: mediapipe graphs
        seg, lmk, pre_s, fit_s = [], [], [], []
        fit = pre = None
        for _ in range(repeats):
            t0 = time.perf_counter()
            pre = preprocess(img)
            pre_s.append(time.perf_counter() - t0)
            seg.append(pre.timings.get("segmentation", float("nan")))
            lmk.append(pre.timings.get("landmarks", float("nan")))
            t0 = time.perf_counter()
            fit = fit_preprocessed(pre, body, cfg)
            fit_s.append(time.perf_counter() - t0)
        med = statistics.median
        rows.append({
            "image": name, "crop": pre.size, "segmentation_s": med(seg),
            "landmarks_s": med(lmk), "preprocess_total_s": med(pre_s), "fit_s": med(fit_s),
            "seg_landmarks_fit_s": med(seg) + med(lmk) + med(fit_s),
            "end_to_end_s": med(pre_s) + med(fit_s),
            "stage_seconds": fit.diagnostics["stage_seconds"],
            "kp_err_px_median": fit.diagnostics["kp_err_px_median"],
            "kp_err_frac": fit.diagnostics["kp_err_frac"],
            "silhouette_iou": fit.diagnostics["silhouette_iou"],
            "keypoints_used": int((pre.landmarks.keypoints()[1] >= cfg.min_confidence).sum()),
            "lean_deg": fit.lean_deg,
        })
    return rows


def fit_config(items: list[str]) -> FitConfig:
    """A FitConfig from ``--set FIELD=VALUE`` items, parsed as the pipeline's ``--set`` is
    (JSON values; FitConfig checks each field's type: a bool takes true or false). Raises
    ValueError (ConfigError) for a bad value or an unknown field."""
    from humansplat.pipeline.config import parse_setting

    overrides = dict(parse_setting(item) for item in items)
    unknown = sorted(set(overrides) - {f.name for f in fields(FitConfig)})
    if unknown:
        raise ConfigError(f"unknown FitConfig field(s) {unknown}")
    return FitConfig(**overrides)


def _synthetic(n_cases: int, size: int, body, cfg: FitConfig, kp_noise: float,
               lean: float = 0.0, cut: bool = False) -> list[dict]:
    g = torch.Generator().manual_seed(2024)
    cases = [(a, s) for s in GENDERS for a in AZIMUTHS]
    rows = []
    sj = body.smpl_joints[body.smpl_joints > 0]  # the fitted joints (root excluded)
    for i in range(n_cases):
        az, gender = cases[i % len(cases)]
        pose = sample_pose(body, g, 0.5)
        shape = 0.2 + 0.6 * torch.rand(body.num_shape, generator=g)
        shape[0] = gender
        shape[1] = 0.5 + 0.4 * torch.rand((), generator=g)  # adults (age 0.5 .. 0.9)
        view = synthetic_view(body, pose, shape, azimuth_deg=az, lean_deg=lean, size=size)
        kp = view.keypoints_xy + kp_noise * size * torch.randn(view.keypoints_xy.shape,
                                                               generator=g)
        conf, mask, valid = torch.ones(len(kp)), view.mask, None
        if cut:  # where the photo ends is passed on, as the pipeline does
            conf, mask, valid = view.cut_at_hips()
        t0 = time.perf_counter()
        fit = fit_body(body, kp, conf, mask, config=cfg, valid=valid)
        secs = time.perf_counter() - t0
        gt_j, fit_j = view.joints[sj], fit.joints[sj]
        pa = float((procrustes_align(fit_j, gt_j) - gt_j).norm(dim=-1).mean()) * 1000
        seen = conf > 0  # the keypoints the fitter was shown
        err = (fit.keypoints_2d - view.keypoints_xy)[seen].norm(dim=-1).median().item()
        rows.append({"azimuth_deg": az, "gender": gender, "shape": shape.tolist(),
                     "fit_shape": fit.params["shape"].tolist(),
                     "kp_err_frac_vs_truth": err / size,
                     "kp_err_frac": fit.diagnostics["kp_err_frac"],
                     "silhouette_iou": fit.diagnostics["silhouette_iou"],
                     "pa_mpjpe_mm": pa, "fit_s": secs, "true_lean_deg": lean,
                     "lean_deg": fit.lean_deg, "lean_err_deg": abs(fit.lean_deg - lean),
                     "yaw_hypothesis_deg": fit.diagnostics["yaw_deg"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/body_fit.json")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (the target: 2)")
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats per real photo")
    ap.add_argument("--cases", type=int, default=12, help="synthetic round-trip cases")
    ap.add_argument("--size", type=int, default=512, help="synthetic photo size, px")
    ap.add_argument("--kp-noise", type=float, default=0.0,
                    help="std of noise added to synthetic keypoints, fraction of the size")
    ap.add_argument("--images", nargs="*", default=[], help="more real photos")
    ap.add_argument("--lean", type=float, default=0.0,
                    help="synthetic bodies lean toward the camera by this many degrees")
    ap.add_argument("--cut-at-hips", action="store_true",
                    help="synthetic photos cut below the hips (keypoints and mask)")
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a FitConfig field (repeatable)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    ensure_anny_cache()
    cache_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    body = AnnyBody()
    load_s = time.perf_counter() - t0
    try:
        cfg = fit_config(args.set)
    except ValueError as err:
        ap.error(str(err))
    machine = _machine(args.threads)
    print(f"machine: {machine}")
    print(f"Anny cache {anny_cache_dir()} ready in {cache_s:.2f} s; AnnyBody() {load_s:.2f} s")

    real = [] if args.no_real else _real(args.images, args.repeats, body, cfg)
    if real:
        print(f"\n{'image':<14}{'seg s':>8}{'lmk s':>8}{'fit s':>8}{'sum s':>8}{'e2e s':>8}"
              f"{'kp px':>8}{'IoU':>7}{'lean':>7}")
        for r in real:
            print(f"{r['image']:<14}{r['segmentation_s']:8.2f}{r['landmarks_s']:8.2f}"
                  f"{r['fit_s']:8.2f}{r['seg_landmarks_fit_s']:8.2f}{r['end_to_end_s']:8.2f}"
                  f"{r['kp_err_px_median']:8.1f}{r['silhouette_iou']:7.3f}{r['lean_deg']:7.1f}")

    syn = _synthetic(args.cases, args.size, body, cfg, args.kp_noise, args.lean,
                     args.cut_at_hips) if args.cases else []
    summary = {}
    if syn:
        print(f"\n{'az':>6}{'gender':>8}{'kp err %':>10}{'IoU':>7}{'PA-MPJPE mm':>13}"
              f"{'lean':>7}{'lean err':>10}{'fit s':>8}")
        for r in syn:
            print(f"{r['azimuth_deg']:6.0f}{r['gender']:8.0f}{100 * r['kp_err_frac']:10.2f}"
                  f"{r['silhouette_iou']:7.3f}{r['pa_mpjpe_mm']:13.1f}{r['lean_deg']:7.1f}"
                  f"{r['lean_err_deg']:10.1f}{r['fit_s']:8.2f}")
        med = lambda k: statistics.median(r[k] for r in syn)  # noqa: E731
        summary = {"kp_err_frac_median": med("kp_err_frac"),
                   "kp_err_frac_max": max(r["kp_err_frac"] for r in syn),
                   "silhouette_iou_median": med("silhouette_iou"),
                   "silhouette_iou_min": min(r["silhouette_iou"] for r in syn),
                   "pa_mpjpe_mm_median": med("pa_mpjpe_mm"),
                   "pa_mpjpe_mm_max": max(r["pa_mpjpe_mm"] for r in syn),
                   "lean_err_deg_median": med("lean_err_deg"),
                   "lean_err_deg_max": max(r["lean_err_deg"] for r in syn),
                   "fit_s_median": med("fit_s")}
        print("summary: " + ", ".join(f"{k} {v:.4g}" for k, v in summary.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": machine, "config": vars(cfg), "anny_cache_s": cache_s,
        "anny_load_s": load_s, "real": real, "synthetic": syn, "synthetic_summary": summary,
        "loadavg_1min_at_end": os.getloadavg()[0]}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
