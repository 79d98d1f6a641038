"""Windowed (bucket-and-gather) vs dense masked projection-aware cross-attention.

Both compute the same thing (tests/test_window_attention.py checks equality): every view
token attends to the body tokens whose projection falls in its K_win x K_win window.

- dense:    build the [L_F, L_H] boolean mask (``dense_window_mask``), one SDPA call with it.
- windowed: ``build_window_index`` (sort body tokens into buckets, list windows) and
            ``windowed_attention`` (gather each window's keys, SDPA per chunk).

Paper scale: 4 orthogonal views of 512 px, a 64x64 token grid each (L_F = 4 x 4,096), K_win
= 2, d = 512 with 8 heads (our paper preset), body = 6,890 (SMPL) and 13,718 (Anny) points
on a person-sized capsule figure. Scaling: the token grid grows 16 -> 128 per side with the
body's density per cell fixed (L_H proportional to L_F), and with the body fixed (L_H =
13,718). Each measurement runs in a fresh process; time = median of --repeats runs after a
warm-up; memory = peak RSS increase over the process's footprint before the call (CPU) or
peak allocated CUDA memory increase (CUDA). Projections of q, k, v are not included (the
same for both).

The committed results were taken with ``--threads 1``: on the shared 2-core machine the
two-thread timings of the many small ops of the windowed path were erratic (spinning threads
competing with other processes), while one-thread runs repeated within ~20%.

    python benchmarks/attention.py [--out benchmarks/results/attention.json] [--repeats 3]
                                   [--device cpu|cuda] [--backward] [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import math
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common

from common import machine_info, write_result  # noqa: E402

IMAGE, K_WIN, N_VIEWS = 512, 2, 4
PAPER_GRID, ANNY_VERTS, SMPL_VERTS = 64, 13_718, 6_890


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _measure(method: str, grid: int, n_body: int, repeats: int, device: str,
             backward: bool, threads: int | None) -> dict:
    """Runs in a fresh process: one method at one size."""
    import torch
    import torch.nn.functional as F

    if threads:
        torch.set_num_threads(threads)

    from humansplat.cameras import orthogonal_views
    from humansplat.config import get_preset
    from humansplat.model.dummy_inputs import capsule_body
    from humansplat.model.window_attention import (build_window_index, dense_window_mask,
                                                   windowed_attention)

    cfg = get_preset("paper")
    dim, heads = cfg.dim, cfg.heads
    dh = dim // heads
    dev = torch.device(device)
    cams = orthogonal_views(2.6, width=IMAGE, height=IMAGE).to(dev)
    vm, Ks = cams.viewmats[None], cams.Ks[None]
    body = capsule_body(n_body, seed=0)[None].to(dev)
    n_q = N_VIEWS * grid * grid
    g = torch.Generator().manual_seed(0)
    q = torch.randn(n_q, heads, dh, generator=g).to(dev).requires_grad_(backward)
    kv = torch.randn(n_body, 2, heads, dh, generator=g).to(dev).requires_grad_(backward)
    k, v = kv[:, 0], kv[:, 1]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    extra: dict = {}

    def run() -> dict:
        t0 = time.perf_counter()
        if method == "dense":
            mask = dense_window_mask(body, vm, Ks, IMAGE, grid, K_WIN)  # [1, n_q, L]
            sync()
            t1 = time.perf_counter()
            out = F.scaled_dot_product_attention(
                q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
                attn_mask=mask[:, None])
            extra["pairs"] = int(mask.sum())
        else:
            index = build_window_index(body, vm, Ks, IMAGE, grid, K_WIN,
                                       cfg.max_tokens_per_cell, cfg.window_chunk_keys)
            sync()
            t1 = time.perf_counter()
            out, _ = windowed_attention(q, kv, index)
            s = index.stats
            extra.update(pairs=s.n_pairs, key_slots=s.n_key_slots, dropped=s.n_dropped,
                         active_queries=s.n_active_queries, chunks=len(index.chunks))
        if backward:
            out.float().square().sum().backward()
        sync()
        t2 = time.perf_counter()
        return {"prep_s": t1 - t0, "attn_s": t2 - t1, "total_s": t2 - t0}

    run()  # warm-up (also allocator pools)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_mb()
    times = [run() for _ in range(repeats)]
    if dev.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    else:
        peak = max(0.0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base)
    med = {key: statistics.median(t[key] for t in times) for key in times[0]}
    return {"method": method, "grid": grid, "L_F": n_q, "L_H": n_body, "backward": backward,
            **{k_: round(v_, 5) for k_, v_ in med.items()}, "peak_mem_mb": round(peak, 1),
            "threads": torch.get_num_threads(), **extra}


def _slope(rows: list[dict], key: str = "total_s") -> float | None:
    """Log-log slope of time vs L_F (1 = linear, 2 = quadratic)."""
    pts = [(math.log(r["L_F"]), math.log(r[key])) for r in rows if r.get(key)]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "attention.json"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--backward", action="store_true", help="also time forward+backward")
    ap.add_argument("--quick", action="store_true", help="paper scale, L_H = 13,718 only")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's); 1 is steadier on a busy machine")
    ap.add_argument("--dense-max-grid", type=int, default=64,
                    help="largest grid for the dense baseline (its mask is L_F x L_H bytes)")
    args = ap.parse_args(argv)

    ctx = mp.get_context("spawn")
    pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx, max_tasks_per_child=1)

    def measure(method, grid, n_body, backward=False):
        r = pool.submit(_measure, method, grid, n_body, args.repeats, args.device,
                        backward, args.threads).result()
        print(f"  {method:8s} grid {grid:3d}  L_F {r['L_F']:6d}  L_H {n_body:6d}"
              f"{'  fwd+bwd' if backward else ''}: {r['total_s'] * 1e3:9.1f} ms "
              f"(prep {r['prep_s'] * 1e3:7.1f})  peak +{r['peak_mem_mb']:8.1f} MB", flush=True)
        return r

    result = {"machine": machine_info(args.device), "k_win": K_WIN, "image": IMAGE,
              "views": N_VIEWS, "repeats": args.repeats, "threads_arg": args.threads}
    print("paper scale (4 views x 64x64 tokens, K_win = 2, d = 512, 8 heads)")
    paper = []
    for n_body in ([ANNY_VERTS] if args.quick else [SMPL_VERTS, ANNY_VERTS]):
        for bwd in ([False, True] if args.backward else [False]):
            d = measure("dense", PAPER_GRID, n_body, bwd)
            w = measure("windowed", PAPER_GRID, n_body, bwd)
            paper.append({"L_H": n_body, "backward": bwd, "dense": d, "windowed": w,
                          "time_ratio": round(d["total_s"] / w["total_s"], 2),
                          "mem_ratio": round(d["peak_mem_mb"] / max(w["peak_mem_mb"], 1.0),
                                             2)})
    result["paper_scale"] = paper

    if not args.quick:
        for name, body_of in (("constant_density", lambda g: round(ANNY_VERTS * (g / 64) ** 2)),
                              ("fixed_body", lambda g: ANNY_VERTS)):
            print(f"scaling with L_F ({name.replace('_', ' ')})")
            rows = {"dense": [], "windowed": []}
            for grid in (16, 32, 64, 128):
                for method in ("dense", "windowed"):
                    if method == "dense" and grid > args.dense_max_grid:
                        continue
                    if grid == PAPER_GRID and body_of(grid) == ANNY_VERTS:  # measured above
                        rows[method].append(next(p[method] for p in paper
                                                 if p["L_H"] == ANNY_VERTS and
                                                 not p["backward"]))
                        continue
                    rows[method].append(measure(method, grid, body_of(grid)))
            result[f"scaling_{name}"] = {
                **rows, "loglog_slope": {m: _slope(r) for m, r in rows.items()}}
    pool.shutdown()

    print("\n| L_H | pass | dense ms | windowed ms | time ratio | dense MB | windowed MB |")
    print("|---|---|---|---|---|---|---|")
    for p in paper:
        print(f"| {p['L_H']} | {'fwd+bwd' if p['backward'] else 'fwd'} | "
              f"{p['dense']['total_s'] * 1e3:.0f} | {p['windowed']['total_s'] * 1e3:.0f} | "
              f"{p['time_ratio']}x | {p['dense']['peak_mem_mb']:.0f} | "
              f"{p['windowed']['peak_mem_mb']:.0f} |")
    for name in ("constant_density", "fixed_body"):
        if f"scaling_{name}" in result:
            s = result[f"scaling_{name}"]
            print(f"\nscaling ({name}): log-log slope of time vs L_F: "
                  + ", ".join(f"{m} {v:.2f}" for m, v in s["loglog_slope"].items() if v))
            print("| grid | L_F | L_H | dense ms | windowed ms | windowed us per query |")
            print("|---|---|---|---|---|---|")
            dense = {r["grid"]: r for r in s["dense"]}
            for r in s["windowed"]:
                dn = dense.get(r["grid"])
                print(f"| {r['grid']} | {r['L_F']} | {r['L_H']} | "
                      f"{dn['total_s'] * 1e3:.0f} | " if dn else
                      f"| {r['grid']} | {r['L_F']} | {r['L_H']} | - | ", end="")
                print(f"{r['total_s'] * 1e3:.0f} | {r['total_s'] / r['L_F'] * 1e6:.2f} |")
    print()
    write_result(result, args.out)
    return result


if __name__ == "__main__":
    main()
