"""Forward time and peak memory of the reconstruction transformer for each preset.

Random weights, one sample (batch 1): the preset's views (noise), its camera rig (input view
at azimuth 0 + evenly spaced generated views) and a 13,718-point body (Anny's vertex count)
on a capsule figure. Each preset runs in a fresh process; inference = ``torch.no_grad()``
forward in eval mode; the presets in ``--train-presets`` also get a forward+backward of a
mean-square loss on the raw head output in train mode (the preset's own
gradient-checkpointing and autocast switches apply; autocast acts on CUDA only). Time =
median of the runs after a warm-up (a preset whose first run exceeds ``--budget-s`` / 4 is
timed once, no warm-up); memory = peak RSS increase over the footprint before the first run
(CPU) or peak allocated CUDA memory increase.

The committed results were taken with ``--threads 1`` on the shared 2-core CPU machine.

    python benchmarks/model.py [--out benchmarks/results/model.json] [--presets micro,tiny,...]
                               [--train-presets micro,tiny] [--repeats 3] [--device cpu|cuda]
                               [--threads N] [--budget-s 60]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
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

N_BODY = 13_718


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _measure(preset: str, train: bool, repeats: int, budget_s: float, device: str,
             threads: int | None) -> dict:
    import torch

    from humansplat.config import get_preset
    from humansplat.model import LatentReconstructionTransformer
    from humansplat.model.dummy_inputs import synthetic_inputs

    if threads:
        torch.set_num_threads(threads)
    cfg = get_preset(preset)
    dev = torch.device(device)
    torch.manual_seed(0)
    model = LatentReconstructionTransformer(cfg).to(dev)
    model.train(train)
    x = synthetic_inputs(cfg, batch_size=1, n_body_vertices=N_BODY, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    stats = {}

    def run() -> float:
        t0 = time.perf_counter()
        if train:
            out = model(**x.as_kwargs())
            (out.raw.float().square().mean()).backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                out = model(**x.as_kwargs())
        sync()
        if out.window_stats is not None:
            stats.update(vars(out.window_stats))
        return time.perf_counter() - t0

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_mb()
    first = run()
    times = [first]
    if first < budget_s / 4:
        times = [run() for _ in range(repeats)]  # the first run was the warm-up
    if dev.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    else:
        peak = max(0.0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base)
    return {"preset": preset, "mode": "train fwd+bwd" if train else "inference fwd",
            "seconds": round(statistics.median(times), 4), "runs": len(times),
            "peak_mem_mb": round(peak, 1), "params_m": round(model.num_parameters() / 1e6, 3),
            "view_tokens": cfg.n_views * cfg.tokens_per_view,
            "body_tokens": min(N_BODY, cfg.n_body_tokens or N_BODY) if cfg.use_human_prior
            else 0, "gaussians": cfg.n_gaussians, "k_win": cfg.k_win,
            "threads": torch.get_num_threads(), "window": stats}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "model.json"))
    ap.add_argument("--presets", default="micro,tiny,base,paper")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=60.0)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--train-presets", default="micro,tiny",
                    help="presets that also get a forward+backward timing ('' for none)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)


    machine = machine_info(args.device)
    pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"),
                                  max_tasks_per_child=1)
    rows = []
    train_presets = set(filter(None, args.train_presets.split(",")))
    for preset in args.presets.split(","):
        for train in ([False, True] if preset in train_presets else [False]):
            r = pool.submit(_measure, preset, train, args.repeats, args.budget_s, args.device,
                            args.threads).result()
            rows.append(r)
            print(f"  {preset:6s} {r['mode']:14s} {r['seconds'] * 1e3:10.1f} ms "
                  f"({r['runs']} run(s))  peak +{r['peak_mem_mb']:8.1f} MB", flush=True)
    pool.shutdown()
    print("\n| preset | mode | params (M) | view tokens | body tokens | Gaussians | ms | "
          "peak MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['preset']} | {r['mode']} | {r['params_m']} | {r['view_tokens']} | "
              f"{r['body_tokens']} | {r['gaussians']} | {r['seconds'] * 1e3:.0f} | "
              f"{r['peak_mem_mb']:.0f} |")
    print()
    write_result({"machine": machine, "threads_arg": args.threads, "results": rows}, args.out)
    return rows


if __name__ == "__main__":
    main()
