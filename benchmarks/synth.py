"""View-synthesizer timings: one function per synthesizer, one table, one JSON file.

    python benchmarks/synth.py [--only sv3d] [--steps 6] [--threads N] [--out PATH]

sv3d: the full SV3D sampler (CLIP + VAE conditioning, EDM Euler steps with triangular CFG,
batched cond/uncond, chunked preview decoding) on the tiny random config of
``humansplat.synth.sv3d.tiny_sv3d_configs`` (16 px, 8x8 latents) with 4 and 21 frames on CPU;
per-step time = median gap between consecutive progress callbacks. On CUDA it also times the
real-size UNet (1.53 B parameters, random weights, fp16) for one CFG step (batch 2) at 576 px
(72x72 latents) with 4 and 21 frames.

To add a synthesizer, write ``bench_<name>(args) -> list[dict]`` and register it in
``BENCHMARKS``; rows share the keys of ``COLUMNS``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COLUMNS = ("synthesizer", "config", "device", "dtype", "frames", "resolution", "step_ms",
           "total_s", "notes")


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available()}
    try:
        info["loadavg_1min"] = os.getloadavg()[0]  # the CPU is shared: say how busy it was
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


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


BENCHMARKS = {"sv3d": bench_sv3d}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), default=None)
    ap.add_argument("--steps", type=int, default=6, help="sampler steps per run")
    ap.add_argument("--cuda-repeats", type=int, default=5)
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
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "synth", "machine": machine(), "rows": rows},
                              indent=2))
    print(f"wrote {out}")
    return 0


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return "" if v is None else str(v)


if __name__ == "__main__":
    raise SystemExit(main())
