"""Compact web splats: size and render fidelity against our full INRIA .ply.

For each splat the full file (``save_ply``, y-down, 45 zero ``f_rest``, part labels) is
compared with ``humansplat.io.compact.save_compact`` as ``.splat`` (8-bit colour, opacity and
rotation) and as the SH0 float ``.ply``; both are read back with our loaders and rendered
with ``humansplat.render.rasterize`` from 8 orbit views (azimuth every 45 deg, elevation 0
and 15 alternating) at 256 px, float images. Reported: bytes, the ratio to the full file,
PSNR of the compact render against the full file's render, and, where ground truth exists,
the PSNR *loss* against it (PSNR(full, GT) - PSNR(compact, GT)).

Splats: the prior-only reconstruction of ``examples/astronaut.jpg`` (a real photo; ground
truth: the photo crop at the input camera), and synthetic dressed subjects
(``data.synthetic_humans``): their prior-only reconstructions, and "oracle" surface
Gaussians (``eval.avatar_eval.subject_gaussians``) with randomised opacities and sizes like
a learned splat's; ground truth: the subject rendered from the same orbit views.

    python benchmarks/compact.py [--subjects 2] [--size 256]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common

from common import machine_info, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _render(g, cams):
    import torch

    from humansplat.render import rasterize

    with torch.no_grad():
        rgb, _, _ = rasterize(g.means, g.quats, g.scales, g.opacities, g.rgb, cams.viewmats,
                              cams.Ks, cams.width, cams.height,
                              backgrounds=torch.ones(len(cams), 3))
    return rgb.permute(0, 3, 1, 2).clamp(0, 1)


def _psnr(a, b) -> float:
    """PSNR (dB) of two image stacks [T,3,H,W] as one image."""
    from humansplat.metrics import psnr

    return float(psnr(a.reshape(1, -1, *a.shape[-2:]), b.reshape(1, -1, *b.shape[-2:]))[0])


def measure(name: str, g, cams, gt=None, gt_cams=None) -> dict:
    """Sizes and fidelity of the compact files of ``g`` (see the module docstring)."""
    from humansplat.io import load_ply, load_splat, save_ply
    from humansplat.io.compact import save_compact

    with tempfile.TemporaryDirectory() as d:
        full = save_ply(g, Path(d) / "full.ply", y_down=True)
        full_bytes = full.stat().st_size
        g_full = load_ply(full)
        ref = _render(g_full, cams)
        ref_gt = _render(g_full, gt_cams) if gt is not None else None
        row = {"splat": name, "gaussians": len(g), "full_ply_bytes": full_bytes, "formats": {}}
        for fmt in ("splat", "ply"):
            path = save_compact(g, Path(d) / f"compact.{fmt}")
            back = load_splat(path, y_down=True) if fmt == "splat" else load_ply(path)
            out = _render(back, cams)
            r = {"bytes": path.stat().st_size, "ratio": full_bytes / path.stat().st_size,
                 "bytes_per_gaussian": path.stat().st_size / len(back),
                 "gaussians_kept": len(back), "psnr_vs_full": _psnr(out, ref)}
            if gt is not None:
                got = _render(back, gt_cams)
                r["psnr_full_vs_gt"] = _psnr(ref_gt, gt)
                r["psnr_compact_vs_gt"] = _psnr(got, gt)
                r["psnr_loss_vs_gt"] = r["psnr_full_vs_gt"] - r["psnr_compact_vs_gt"]
            row["formats"][fmt] = r
    return row


def learned_like(g, seed: int = 0):
    """``g`` with the spread of opacities and anisotropic sizes a trained splat has (the
    oracle's are uniform), so quantising opacity and rotation is really exercised."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    n = len(g)
    op = (0.15 + 0.85 * torch.rand(n, generator=gen)) ** 0.5
    sc = g.scales * torch.exp(0.3 * torch.randn(n, 3, generator=gen))
    return replace(g, opacities=op, scales=sc)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subjects", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "compact.json"))
    args = ap.parse_args(argv)

    import torch

    from humansplat.pipeline import HumanSplatPipeline
    from humansplat.cameras import Cameras, orbit_cameras
    from humansplat.eval.avatar_eval import (framing_cameras, inset, pixel_size,
                                             prior_reconstruction, subject_gaussians)
    from humansplat.io.video import orbit_framing
    from humansplat.data.subject_render import render_subject
    from humansplat.data.synthetic_humans import default_body, sample_subject

    S = args.size
    az = [45.0 * i for i in range(8)]
    el = [0.0 if i % 2 == 0 else 15.0 for i in range(8)]

    def orbit(g):
        target, radius = orbit_framing(g)
        return orbit_cameras(az, el, radius, target=target, width=S, height=S)

    rows = []
    t0 = time.perf_counter()
    # a real photo
    rec = HumanSplatPipeline.prior_only(device="cpu")(str(ROOT / "examples" / "astronaut.jpg"))
    w, h = rec.fit.image_size
    cam_in = Cameras(rec.fit.viewmat[None], rec.fit.K[None], w, h, torch.zeros(1),
                     torch.zeros(1))
    crop = torch.as_tensor(rec.crop).permute(2, 0, 1)[None].float() / 255
    rows.append(measure("astronaut.jpg, prior-only", rec.gaussians, orbit(rec.gaussians),
                        crop, cam_in))
    # synthetic subjects
    body = default_body()
    for i in range(args.subjects):
        sub = sample_subject(1 + i, body=body)
        mesh = sub.mesh()
        cams = framing_cameras([mesh.vertices], S)
        gt = render_subject(mesh, cams).rgb
        px = pixel_size(cams, mesh.vertices.float().mean(0))
        oracle = learned_like(inset(subject_gaussians(mesh, 60000), px), seed=i)
        rows.append(measure(f"subject {1 + i}, oracle (learned-like)", oracle, orbit(oracle),
                            gt, cams))
        prior = prior_reconstruction(sub).gaussians
        rows.append(measure(f"subject {1 + i}, prior-only", prior, orbit(prior), gt, cams))
        print(f"  subject {1 + i} done ({time.perf_counter() - t0:.0f} s)", flush=True)

    print(f"\nCompact splats vs the full INRIA .ply ({S} px, 8 orbit views; loss = PSNR(full, "
          "GT) - PSNR(compact, GT))")
    print(f"{'splat':36s} {'N':>7s} {'full MB':>8s} {'fmt':>6s} {'MB':>7s} {'ratio':>6s} "
          f"{'B/G':>5s} {'vs full dB':>10s} {'loss dB':>8s}")
    for r in rows:
        for fmt, f in r["formats"].items():
            loss = f"{f['psnr_loss_vs_gt']:8.3f}" if "psnr_loss_vs_gt" in f else f"{'':8s}"
            print(f"{r['splat']:36s} {r['gaussians']:7d} {r['full_ply_bytes'] / 1e6:8.2f} "
                  f"{fmt:>6s} {f['bytes'] / 1e6:7.2f} {f['ratio']:6.1f} "
                  f"{f['bytes_per_gaussian']:5.1f} {f['psnr_vs_full']:10.2f} {loss}")
    worst = {fmt: {"min_ratio": min(r["formats"][fmt]["ratio"] for r in rows),
                   "max_psnr_loss_vs_gt": max(r["formats"][fmt].get("psnr_loss_vs_gt", 0.0)
                                              for r in rows),
                   "min_psnr_vs_full": min(r["formats"][fmt]["psnr_vs_full"] for r in rows)}
             for fmt in ("splat", "ply")}
    for fmt, w_ in worst.items():
        print(f"{fmt}: ratio >= {w_['min_ratio']:.1f}x, PSNR loss vs GT <= "
              f"{w_['max_psnr_loss_vs_gt']:.3f} dB, vs full >= {w_['min_psnr_vs_full']:.1f} dB")
    write_result({"benchmark": "compact", "machine": machine_info("cpu"),
                  "settings": {"size": S, "azimuths_deg": az, "elevations_deg": el},
                  "worst": worst, "rows": rows, "seconds": time.perf_counter() - t0},
                 args.out)
    ok = all(w_["min_ratio"] >= 4 and w_["max_psnr_loss_vs_gt"] < 0.5 for w_ in worst.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
