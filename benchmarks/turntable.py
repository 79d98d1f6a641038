"""The turntable's level of detail: time and fidelity of the 60-frame orbit at each ``lod_px``.

    python benchmarks/turntable.py --folders outputs/astronaut [outputs/...] [--size 256]
                                   [--frames 60] [--lods 0,0.5,1,1.5] [--threads 1]
                                   [--out benchmarks/results/turntable.json]

For each reconstruction folder (its ``gaussians.ply``), the turntable's frames are rendered
without merging (``lod_px=0``, the reference) and at each ``lod_px``
(``humansplat.render.lod.merge_gaussians`` with a cell of that many output pixels), in one
run, so the speed-ups are ratios measured side by side. Fidelity: PSNR of each merged frame
against the unmerged frame (uint8 frames, as the video gets them), min and mean over the
orbit. Times are the merge plus the renders (no video encoding, which is the same for all).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common

from common import machine_info, write_result  # noqa: E402


def _psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    from humansplat.metrics import psnr

    def t(x):
        return torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255.0
    return float(psnr(t(a), t(b)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folders", nargs="+", required=True)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--lods", default="0,0.5,1,1.5")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/turntable.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from humansplat.io import load_ply
    from humansplat.io.video import lod_cell, orbit_video_cameras, render_orbit_frames
    from humansplat.render.lod import merge_gaussians

    lods = [float(v) for v in args.lods.split(",")]
    if 0.0 not in lods:
        lods = [0.0] + lods
    rows = []
    for folder in args.folders:
        g = load_ply(Path(folder) / "gaussians.ply")
        cams = orbit_video_cameras(g, n_frames=args.frames, size=args.size)
        ref = None
        for lod in lods:
            t0 = time.perf_counter()
            frames = np.stack(list(render_orbit_frames(g, cams, lod_px=lod)))
            seconds = time.perf_counter() - t0
            if lod == 0.0:
                ref, ref_s = frames, seconds
                n = len(g)
                ps = [float("inf")]
            else:
                n = len(merge_gaussians(g, lod_cell(g, cams, lod)))
                ps = [_psnr_u8(a, b) for a, b in zip(frames, ref)]
            row = {"folder": str(folder), "lod_px": lod, "gaussians": n,
                   "seconds": round(seconds, 2), "speedup": round(ref_s / seconds, 2),
                   "psnr_min_db": round(min(ps), 1), "psnr_mean_db": round(statistics.mean(ps), 1)}
            rows.append(row)
            print(f"{Path(folder).name:>16} lod {lod:4.2f}: {n:7d} Gaussians, {seconds:6.2f} s "
                  f"(x{row['speedup']:.2f}), PSNR vs full min {row['psnr_min_db']} / mean "
                  f"{row['psnr_mean_db']} dB", flush=True)
    write_result({"machine": machine_info("cpu"), "size": args.size, "frames": args.frames,
                  "rows": rows}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
