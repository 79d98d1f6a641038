"""Timings of humansplat.render: forward and forward+backward of the torch backend (and of the
gsplat backend on CUDA) for 16,384 and 65,536 Gaussians at 256x256 and 512x512, with peak
memory. Prints a table and writes JSON.

    python benchmarks/render.py [--out benchmarks/results/render.json] [--repeats 3]
                                [--threads 1,2] [--passive]

The forward is timed with the default compositor (numba's on CPU when installed), its tiles
on ``--tile-threads`` threads, and the pure-torch compositor (the reference; the largest
difference from it is recorded); forward+backward with both compositors; and each fresh
process's first render (``first_forward_s``: the kernels' compile or cache load). A further
row times a training-like render: 65,536 Gaussians, 4 orthogonal views at 256x256, 27
channels (RGB + 24 part labels) in one pass.

Threads: on a 2-core machine shared with other busy processes, torch's second OpenMP thread
spends its time waiting for a core (libgomp spins at every op's barrier), which made renders
up to 10x slower than with one thread here. ``--threads 1,2`` times both;
``--passive`` sets OMP_WAIT_POLICY=PASSIVE in the timed processes, which removes most of
that penalty. Each row records the 1-minute load average when it started.

The scene (``human_scene``): a person-shaped surface, 1.7 m tall in an A-pose, built from 15
ellipsoids (head, neck, torso, pelvis, upper/lower arms, hands, thighs, shins, feet), with
N Gaussians spread over it by area. Each Gaussian is a flat disc in the surface's tangent
plane (tangent std = 0.6 x the mean spacing, normal std = 0.15 x that), opacity uniform in
[0.6, 1.0] (fitted splats are mostly opaque), random colours. It is seen from 2.6 m (the
project's default orbit radius) at 39.6 deg vertical fov, facing the camera, where it covers
about a quarter of the image; the table reports the covered fraction (alpha > 0.5), the
number of tile intersections and the busiest tile.

Peak memory: torch's CPU allocator is invisible to tracemalloc, so the figure is the growth of
the process's peak resident set size (``resource.getrusage(...).ru_maxrss``) over the whole
run, measured in a fresh subprocess per configuration (the peak only ever rises, so a shared
process would hide later, smaller peaks). It includes the scene's own tensors and torch's
allocator caching: an upper bound on what the renderer needs. On CUDA the gsplat rows use
``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common

from humansplat.cameras import orbit_cameras  # noqa: E402
from humansplat.render import TorchRasterConfig, rasterize  # noqa: E402
from humansplat.geometry import rotmat_to_quat  # noqa: E402
from common import machine_info, write_result  # noqa: E402

# (centre xyz, semi-axes xyz) of the ellipsoids of an A-posed person, metres, +y up, facing +z
_PARTS = [
    ((0.0, 0.72, 0.0), (0.09, 0.115, 0.10)),  # head
    ((0.0, 0.58, 0.0), (0.05, 0.06, 0.05)),  # neck
    ((0.0, 0.32, 0.0), (0.18, 0.24, 0.11)),  # chest + belly
    ((0.0, 0.02, 0.0), (0.17, 0.12, 0.11)),  # pelvis
]
_SEGMENTS = [  # (start, end, radius): limbs as ellipsoids along the segment
    ((0.19, 0.50, 0.0), (0.33, 0.24, 0.0), 0.05),  # upper arms
    ((0.33, 0.24, 0.0), (0.43, -0.01, 0.03), 0.04),  # forearms
    ((0.43, -0.01, 0.03), (0.47, -0.12, 0.04), 0.035),  # hands
    ((0.09, -0.06, 0.0), (0.11, -0.46, 0.01), 0.075),  # thighs
    ((0.11, -0.46, 0.01), (0.11, -0.80, -0.01), 0.05),  # shins
    ((0.11, -0.83, 0.0), (0.11, -0.85, 0.15), 0.045),  # feet
]


def _ellipsoids() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(centre [3], semi-axes [3], rotation [3,3]) per body part."""
    out = [(torch.tensor(c), torch.tensor(r), torch.eye(3)) for c, r in _PARTS]
    for a, b, rad in _SEGMENTS:
        for side in (1.0, -1.0):
            a_ = torch.tensor([side * a[0], a[1], a[2]])
            b_ = torch.tensor([side * b[0], b[1], b[2]])
            axis = b_ - a_
            half = 0.5 * axis.norm() + 0.5 * rad
            y = axis / axis.norm()
            x = torch.linalg.cross(y, torch.tensor([0.0, 0.0, 1.0]))
            if x.norm() < 1e-3:
                x = torch.linalg.cross(y, torch.tensor([1.0, 0.0, 0.0]))
            x = x / x.norm()
            z = torch.linalg.cross(x, y)
            out.append((0.5 * (a_ + b_), torch.tensor([rad, float(half), rad]),
                        torch.stack([x, y, z], dim=1)))
    return out


def human_scene(n: int, seed: int = 0, feature_dim: int = 3):
    """N Gaussians on a person-shaped surface (see the module docstring).

    Returns (means [N,3], quats [N,4], scales [N,3], opacities [N], colors [N,D])."""
    g = torch.Generator().manual_seed(seed)
    parts = _ellipsoids()
    # approximate ellipsoid areas (Knud Thomsen's formula) to spread Gaussians evenly
    p = 1.6075
    areas = torch.tensor([4 * math.pi * (((r[0] * r[1]) ** p + (r[0] * r[2]) ** p
                                          + (r[1] * r[2]) ** p) / 3) ** (1 / p)
                          for _, r, _ in parts])
    counts = torch.floor(areas / areas.sum() * n).long()
    counts[0] += n - int(counts.sum())
    spacing = math.sqrt(float(areas.sum()) / n)
    means, normals = [], []
    for (c, r, R), k in zip(parts, counts.tolist()):
        d = torch.nn.functional.normalize(torch.randn(k, 3, generator=g), dim=-1)
        local = d * r
        nrm = torch.nn.functional.normalize(local / r ** 2, dim=-1)
        means.append(local @ R.T + c)
        normals.append(nrm @ R.T)
    means, normals = torch.cat(means), torch.cat(normals)
    # a frame per Gaussian whose local z is the surface normal
    helper = torch.where(normals[:, :1].abs() < 0.9, torch.tensor([1.0, 0.0, 0.0]),
                         torch.tensor([0.0, 1.0, 0.0]))
    t1 = torch.nn.functional.normalize(torch.linalg.cross(normals, helper, dim=-1), dim=-1)
    t2 = torch.linalg.cross(normals, t1, dim=-1)
    quats = rotmat_to_quat(torch.stack([t1, t2, normals], dim=-1))
    scales = torch.tensor([0.6, 0.6, 0.09]) * spacing \
        * (0.7 + 0.6 * torch.rand(n, 3, generator=g))
    opacities = 0.6 + 0.4 * torch.rand(n, generator=g)
    colors = torch.rand(n, feature_dim, generator=g)
    return means, quats, scales, opacities, colors


def _rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run_one(n: int, size: int, backend: str, device: str, repeats: int,
            feature_dim: int = 3, n_views: int = 1, tile_threads: int = 2) -> dict:
    """Time one configuration in this process; returns a result row."""
    rss0 = _rss_mb()
    means, quats, scales, opacities, colors = (t.to(device) for t in
                                               human_scene(n, feature_dim=feature_dim))
    azimuths = [360.0 * i / n_views for i in range(n_views)]  # 1 view: the front
    cams = orbit_cameras(azimuths, 0.0, 2.6, width=size, height=size, device=device)
    args = (means, quats, scales, opacities, colors, cams.viewmats, cams.Ks, size, size)
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def fwd(config=None):
        with torch.no_grad():
            out = rasterize(*args, backend=backend, torch_config=config)
        sync()
        return out

    tiles_cfg = TorchRasterConfig(threads=tile_threads) if backend == "torch" else None
    # the pure-torch compositor, the reference the compiled one ("auto" on CPU) is checked on
    ref_cfg = TorchRasterConfig(compositor="torch") if backend == "torch" else None

    params = [means, quats, scales, opacities, colors]

    def fwd_bwd(config=None):
        for p in params:
            p.requires_grad_(True)
            p.grad = None
        c, a, _ = rasterize(*args, backend=backend, torch_config=config)
        (c.square().sum() + a.sum()).backward()
        sync()
        for p in params:
            p.requires_grad_(False)

    t0 = time.perf_counter()
    c, a, meta = fwd()  # warm-up, scene statistics
    # the process's first render: compiles the numba kernels, or loads them from numba's
    # on-disk cache (delete humansplat/render/__pycache__/numba_composite* to see a compile)
    first_s = time.perf_counter() - t0
    fwd_bwd()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t_f, t_fb, t_ft, t_fr, t_fbr = [], [], [], [], []
    same = diff = None
    if tiles_cfg is not None:
        same = bool(torch.equal(fwd(tiles_cfg)[0], c))  # warm-up, and the same bits?
        diff = float((fwd(ref_cfg)[0] - c).abs().max())
    for _ in range(repeats):
        t0 = time.perf_counter()
        fwd()
        t_f.append(time.perf_counter() - t0)
        if tiles_cfg is not None:
            t0 = time.perf_counter()
            fwd(tiles_cfg)
            t_ft.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            fwd(ref_cfg)
            t_fr.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fwd_bwd()
        t_fb.append(time.perf_counter() - t0)
        if ref_cfg is not None:
            t0 = time.perf_counter()
            fwd_bwd(ref_cfg)
            t_fbr.append(time.perf_counter() - t0)
    return {
        "backend": meta["backend"], "device": device, "n_gaussians": n,
        "width": size, "height": size, "feature_dim": feature_dim, "n_views": n_views,
        "first_forward_s": first_s,
        "forward_s": statistics.median(t_f), "forward_min_s": min(t_f),
        "fwd_bwd_s": statistics.median(t_fb), "fwd_bwd_min_s": min(t_fb),
        "tile_threads": tile_threads if t_ft else None,
        "forward_tile_threads_s": statistics.median(t_ft) if t_ft else None,
        "forward_tile_threads_same_bits": same,
        "compositor": (("numba" if TorchRasterConfig().use_numba(torch.device(device))
                        else "torch") if backend == "torch" else None),
        "forward_torch_compositor_s": statistics.median(t_fr) if t_fr else None,
        "max_abs_diff_vs_torch_compositor": diff,
        "fwd_bwd_torch_compositor_s": statistics.median(t_fbr) if t_fbr else None,
        "repeats": repeats,
        "peak_mem_mb": (torch.cuda.max_memory_allocated() / 2 ** 20 if cuda
                        else _rss_mb() - rss0),
        "peak_mem_method": "cuda.max_memory_allocated" if cuda else "ru_maxrss growth",
        "coverage": float((a > 0.5).float().mean()),
        "n_visible": int(meta["n_visible"].sum()),
        "n_isects": meta["n_isects"], "max_per_tile": meta["max_per_tile"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/render.json")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--counts", default="16384,65536")
    ap.add_argument("--feature-dim", type=int, default=3)
    ap.add_argument("--threads", default=str(torch.get_num_threads()),
                    help="torch CPU threads, comma-separated to compare (default: torch's)")
    ap.add_argument("--passive", action="store_true",
                    help="run with OMP_WAIT_POLICY=PASSIVE (see the module docstring)")
    ap.add_argument("--tile-threads", type=int, default=2,
                    help="also time the torch forward with its tiles on this many threads "
                         "(TorchRasterConfig.threads; the same bits)")
    ap.add_argument("--no-training-row", action="store_true",
                    help="skip the training-like row (4 views, 27 channels, 256x256)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # n,size,backend,device,views
    args = ap.parse_args()

    if args.one:  # child process: one configuration, JSON on stdout
        n, size, backend, device, views = args.one.split(",")
        torch.set_num_threads(int(args.threads))
        print(json.dumps(run_one(int(n), int(size), backend, device, args.repeats,
                                 args.feature_dim, int(views), args.tile_threads)))
        return

    configs = [("torch", "cpu", int(t)) for t in args.threads.split(",")]
    if torch.cuda.is_available():
        configs += [("gsplat", "cuda", 1), ("torch", "cuda", 1)]
    env = dict(os.environ, **({"OMP_WAIT_POLICY": "PASSIVE"} if args.passive else {}))
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(c) for c in args.counts.split(",")]
    rows = []
    for backend, device, threads in configs:
        runs = [(n, size, args.feature_dim, 1) for size in sizes for n in counts]
        if not args.no_training_row:
            runs.append((65536, 256, 27, 4))  # 4 orthogonal views, RGB + 24 part labels
        for n, size, dim, views in runs:
            cmd = [sys.executable, __file__, "--one", f"{n},{size},{backend},{device},{views}",
                   "--repeats", str(args.repeats), "--feature-dim", str(dim),
                   "--threads", str(threads), "--tile-threads", str(args.tile_threads)]
            load = os.getloadavg()[0]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            r.update(threads=threads, omp_wait_policy=env.get("OMP_WAIT_POLICY", "default"),
                     load_avg_1min_before=load)
            tiles = ""
            if r["forward_tile_threads_s"] is not None:
                tiles = (f"(tiles on {r['tile_threads']} threads "
                         f"{r['forward_tile_threads_s'] * 1e3:6.1f} ms, same bits: "
                         f"{r['forward_tile_threads_same_bits']})  ")
            if r["forward_torch_compositor_s"] is not None:
                tiles += (f"(torch compositor {r['forward_torch_compositor_s'] * 1e3:6.1f} ms, "
                          f"max diff {r['max_abs_diff_vs_torch_compositor']:.1e})  ")
            print(f"{r['backend']:>6} {r['device']:>4} thr={threads} N={r['n_gaussians']:>6} "
                  f"C={views} D={dim:>2} "
                  f"{r['width']}x{r['height']}: fwd {r['forward_s'] * 1e3:8.1f} ms "
                  f"({r['compositor']})  {tiles}"
                  f"fwd+bwd {r['fwd_bwd_s'] * 1e3:8.1f} ms"
                  + (f" (torch compositor {r['fwd_bwd_torch_compositor_s'] * 1e3:.1f} ms)"
                     if r["fwd_bwd_torch_compositor_s"] is not None else "")
                  + f"  peak {r['peak_mem_mb']:7.1f} MB  "
                  f"cover {r['coverage']:.2f}  isects {r['n_isects']}  "
                  f"max/tile {r['max_per_tile']}  load {load:.1f}", flush=True)
    machine = machine_info("cuda" if torch.cuda.is_available() else "cpu")
    write_result({"benchmark": "render", "machine": machine, "results": rows}, args.out)


if __name__ == "__main__":
    main()
