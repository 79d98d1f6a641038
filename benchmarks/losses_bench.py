"""Timings of the training objective and the metrics: perceptual backends, L_Rec, L_H (with and
without its part-crop perceptual term), PSNR/SSIM. Prints a table and writes JSON.

LPIPS-VGG runs with random weights written to a temporary folder (same cost as the real ones).

    python benchmarks/losses_bench.py [--out benchmarks/results/losses_bench.json]
        [--repeats 3] [--size 256]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common

from humansplat.eval.metrics import psnr, ssim  # noqa: E402
from humansplat.train import losses as L  # noqa: E402
from humansplat.train.perceptual import LPIPSVGG, EfficientNetLite0Perceptual  # noqa: E402
from common import machine_info, write_result  # noqa: E402


def _time(fn, repeats: int, device: torch.device) -> dict:
    def call():
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    call()  # warm-up (kernel selection per shape)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        ts.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(ts), "min_s": min(ts), "repeats": repeats}


def _random_lpips(folder: Path) -> LPIPSVGG:
    from humansplat.train.perceptual import _LPIPS_CHANNELS, _vgg16_features

    g = torch.Generator().manual_seed(0)
    vgg = {
        f"features.{k}": torch.randn(v.shape, generator=g) * 0.02
        for k, v in _vgg16_features().state_dict().items()
    }
    lin = {
        f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) / c
        for k, c in enumerate(_LPIPS_CHANNELS)
    }
    torch.save(vgg, folder / "vgg16-397923af.pth")
    torch.save(lin, folder / "vgg.pth")
    return LPIPSVGG(weights_dir=folder)


def _synthetic_views(B: int, T: int, S: int):
    """Images and a 24-part map of a stick figure: big torso/legs, small head and hands."""
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(B, T, 3, S, S, generator=g)
    pred = (gt + 0.1 * torch.randn(B, T, 3, S, S, generator=g)).clamp(0, 1)
    parts = torch.full((B, T, S, S), -1, dtype=torch.long)
    u = S / 32  # layout on a 32-unit grid
    boxes = {
        15: (2, 14, 6, 18),
        12: (6, 15, 7, 17),
        9: (7, 12, 10, 20),
        6: (10, 12, 12, 20),
        3: (12, 12, 14, 20),
        0: (14, 12, 16, 20),
        13: (7, 10, 9, 12),
        14: (7, 20, 9, 22),
        16: (9, 8, 13, 10),
        17: (9, 22, 13, 24),
        18: (13, 7, 17, 9),
        19: (13, 23, 17, 25),
        20: (17, 7, 18, 9),
        21: (17, 23, 18, 25),
        22: (18, 7, 19, 9),
        23: (18, 23, 19, 25),
        1: (16, 12, 21, 15),
        2: (16, 17, 21, 20),
        4: (21, 12, 27, 15),
        5: (21, 17, 27, 20),
        7: (27, 12, 29, 15),
        8: (27, 17, 29, 20),
        10: (29, 12, 30, 15),
        11: (29, 17, 30, 20),
    }
    for j, (y0, x0, y1, x1) in boxes.items():
        parts[..., int(y0 * u) : int(y1 * u), int(x0 * u) : int(x1 * u)] = j
    level = torch.arange(T).remainder(3).expand(B, T).contiguous()
    alpha = torch.rand(B, T, 1, S, S, generator=g)
    return pred, gt, parts, level, alpha, (parts >= 0).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/losses_bench.json")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)
    S, B, T = args.size, 1, 4
    rows = []

    def add(name, fn, **info):
        r = _time(fn, args.repeats, dev)
        rows.append({"case": name, **info, **r})
        print(
            f"{name:<52} {r['median_s'] * 1000:9.1f} ms   (min {r['min_s'] * 1000:.1f})", flush=True
        )

    effnet = EfficientNetLite0Perceptual().to(dev)
    with tempfile.TemporaryDirectory() as tmp:
        lpips = _random_lpips(Path(tmp)).to(dev)
    x = torch.rand(B * T, 3, S, S, device=dev)
    y = torch.rand(B * T, 3, S, S, device=dev)

    def fwd_bwd(p):
        xx = x.clone().requires_grad_()
        p(xx, y).backward()

    for p in (effnet, lpips):
        add(f"{p.name} forward {B * T}x{S}^2", lambda p=p: p(x, y), images=B * T, size=S)
        add(
            f"{p.name} forward+backward {B * T}x{S}^2", lambda p=p: fwd_bwd(p), images=B * T, size=S
        )

    pred, gt, parts, level, alpha, mask = (t.to(dev) for t in _synthetic_views(B, T, S))
    crops = L.part_crops(torch.cat([pred, gt], 2).flatten(0, 1), parts.flatten(0, 1), 24)
    print(f"(L_H: {crops.images.shape[0]} part crops of 64^2 for {B}x{T} views)")

    def run(fn):
        def go():
            x = pred.clone().requires_grad_()
            fn(x)[0].backward()

        return go

    add(
        f"L_Rec fwd+bwd (effnet) {B}x{T}x{S}^2",
        run(lambda x: L.reconstruction_loss(x, gt, alpha, mask, effnet)),
        size=S,
    )
    add(
        f"L_H fwd+bwd, MSE only {B}x{T}x{S}^2",
        run(lambda x: L.hierarchical_loss(x, gt, parts, level, None, perceptual_in_lh=False)),
        size=S,
    )
    for p in (effnet, lpips):
        add(
            f"L_H fwd+bwd, MSE + {p.name} crops {B}x{T}x{S}^2",
            run(lambda x, p=p: L.hierarchical_loss(x, gt, parts, level, p)),
            size=S,
            crops=int(crops.images.shape[0]),
        )
    add(
        f"part_crops only {B}x{T}x{S}^2",
        lambda: L.part_crops(torch.cat([pred, gt], 2).flatten(0, 1), parts.flatten(0, 1), 24),
        size=S,
    )
    a, b = torch.rand(4, 3, 512, 512, device=dev), torch.rand(4, 3, 512, 512, device=dev)
    add("psnr 4x512^2", lambda: psnr(a, b), size=512)
    add("ssim 4x512^2", lambda: ssim(a, b), size=512)

    machine = machine_info(str(dev))
    print(f"machine: {machine}")
    write_result({"machine": machine, "results": rows}, args.out)


if __name__ == "__main__":
    main()
