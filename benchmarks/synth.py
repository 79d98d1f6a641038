"""View-synthesizer timings: one function per synthesizer, one table, one JSON file.

    python benchmarks/synth.py [--only sv3d projection] [--steps 6] [--threads N]
                               [--repeats 7] [--out PATH]

sv3d: the full SV3D sampler (CLIP + VAE conditioning, EDM Euler steps with triangular CFG,
batched cond/uncond, chunked preview decoding) on the tiny random config of
``humansplat.synth.sv3d.tiny_sv3d_configs`` (16 px, 8x8 latents) with 4 and 21 frames on CPU;
per-step time = median gap between consecutive progress callbacks. On CUDA it also times the
real-size UNet (1.53 B parameters, random weights, fp16) for one CFG step (batch 2) at 576 px
(72x72 latents) with 4 and 21 frames.

projection: the offline projection synthesizer on a textured Anny body (needs the Anny
cache), whole call at 256 and 512 px, and its prior Gaussians alone; see ``bench_projection``.

To add a synthesizer, write ``bench_<name>(args) -> list[dict]`` and register it in
``BENCHMARKS``; rows share the keys of ``COLUMNS``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common

from common import machine_info, write_result  # noqa: E402

COLUMNS = ("synthesizer", "config", "device", "dtype", "frames", "resolution", "step_ms",
           "total_s", "notes")


def _sv3d_input(size: int):
    from humansplat import cameras as cam
    from humansplat.synth.base import SynthInput

    g = torch.Generator().manual_seed(0)
    return SynthInput(torch.rand(3, size, size, generator=g), torch.ones(1, size, size),
                      cam.orbit_cameras([0.0], width=size, height=size),
                      cam.orthogonal_views(width=size, height=size))


def bench_sv3d(args) -> list[dict]:
    from humansplat.synth.sv3d import (SV3D_UNET_CONFIG, SV3DPipeline, SV3DSynthesizer, SV3DUNet,
                                       tiny_sv3d_configs)

    rows = []
    pipe = SV3DPipeline.from_configs(**tiny_sv3d_configs(), seed=0)
    inp = _sv3d_input(32)
    for frames in (4, 21):
        syn = SV3DSynthesizer(pipe, num_frames=frames, resolution=16, num_steps=args.steps)
        syn(inp, num_steps=1)  # warm-up
        stamps: list[float] = []
        t0 = time.perf_counter()
        syn(inp, progress=lambda i, n, m, s=stamps: s.append(time.perf_counter()))
        total = time.perf_counter() - t0
        gaps = [b - a for a, b in zip(stamps[:-2], stamps[1:-1])]  # steps 2..n (last = decode)
        rows.append(dict(synthesizer="sv3d", config="tiny (random)", device="cpu",
                         dtype="float32", frames=frames, resolution=16,
                         step_ms=1e3 * statistics.median(gaps), total_s=total,
                         notes=f"{args.steps} steps, CFG batch 2"))

    if torch.cuda.is_available():
        dev = torch.device("cuda")
        with torch.device(dev):
            unet = SV3DUNet(**SV3D_UNET_CONFIG)
        unet = unet.half().eval().requires_grad_(False)
        for frames in (4, 21):
            x = torch.randn(2, frames, 8, 72, 72, device=dev, dtype=torch.float16)
            ehs = torch.randn(2, 1, 1024, device=dev, dtype=torch.float16)
            ids = torch.rand(2, frames, 3, device=dev)
            t = torch.zeros(2, device=dev)
            times = []
            torch.cuda.reset_peak_memory_stats()
            with torch.no_grad():
                for _ in range(args.cuda_repeats + 1):
                    torch.cuda.synchronize()
                    a = time.perf_counter()
                    unet(x, t, ehs, ids)
                    torch.cuda.synchronize()
                    times.append(time.perf_counter() - a)
            step = statistics.median(times[1:])
            rows.append(dict(synthesizer="sv3d", config="real-size UNet (random)", device="cuda",
                             dtype="float16", frames=frames, resolution=576, step_ms=1e3 * step,
                             total_s=step * args.steps,
                             notes=f"UNet only, batch 2 (CFG); peak "
                                   f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"))
        del unet
        torch.cuda.empty_cache()
    return rows


def bench_projection(args) -> list[dict]:
    """The offline projection synthesizer on a textured Anny body (the frontal case of
    ``benchmarks/synth_quality.py``): the whole call (texture the body from the input view,
    fill, render the 3 other orthogonal views; the input view is the photo) at 256 and 512
    px, ``--repeats`` runs after a warm-up; also ``prior_gaussians`` alone. Wall time is
    reported as median (min); CPU time as the median of the process CPU time (on shared
    cores, wall time includes waiting for other processes)."""
    from benchmarks.synth_quality import make_case
    from humansplat.prior.body import AnnyBody
    from humansplat.synth.projection import ProjectionSynthesizer

    model = AnnyBody()
    rows = []
    for size, threads in ((256, 1), (512, 1), (256, 2)):
        case = make_case(model, size)
        torch.set_num_threads(threads)  # a benchmark process, between measurements
        syn = ProjectionSynthesizer(model)
        syn(case.inp)  # warm-up: symmetry map, edge cache
        jobs = [("4 views", lambda s=syn, c=case: s(c.inp))]
        if threads == 1:
            jobs.append(("prior_gaussians", lambda s=syn, c=case: s.prior_gaussians(c.inp)))
        for what, fn in jobs:
            walls, cpus = [], []
            for _ in range(args.repeats):
                c0, t0 = time.process_time(), time.perf_counter()
                out = fn()
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            notes = (f"median of {args.repeats} (min {min(walls):.2f} s), CPU "
                     f"{statistics.median(cpus):.2f} s, {threads} torch thread(s)")
            if what == "4 views":
                notes += (f"; last run: texture {out.info['seconds_texture']:.2f} s, render "
                          f"{out.info['seconds_render']:.2f} s")
            rows.append(dict(synthesizer="projection", config=f"anny textured, {what}",
                             device="cpu", dtype="float32",
                             frames=4 if what == "4 views" else None, resolution=size,
                             step_ms=None, total_s=statistics.median(walls), notes=notes))
    return rows


BENCHMARKS = {"sv3d": bench_sv3d, "projection": bench_projection}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), default=None)
    ap.add_argument("--steps", type=int, default=6, help="sampler steps per run")
    ap.add_argument("--cuda-repeats", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=7, help="timed runs (projection)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "synth.json"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    for name in args.only or BENCHMARKS:
        rows += BENCHMARKS[name](args)

    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in COLUMNS}
    print("  ".join(c.ljust(widths[c]) for c in COLUMNS))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in COLUMNS))
    cuda = torch.cuda.is_available()
    write_result({"benchmark": "synth", "machine": machine_info("cuda" if cuda else "cpu",
                                                               cuda=cuda), "rows": rows},
                 args.out)
    return 0


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return "" if v is None else str(v)


if __name__ == "__main__":
    raise SystemExit(main())
