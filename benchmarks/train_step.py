"""Seconds per training step and samples/s of the ``tiny`` preset (forward, renders of the
target views with part channels, L_H + L_Rec + part CE, backward, AdamW, EMA).

Inputs have the training sample's shapes (5 views of 128 px, a 13,718-vertex body-like point
set, 8 target views of 128 px in 3 levels) but random content: the cost does not depend on
it. On CUDA the same table is measured with the gsplat backend and bf16 autocast.

    python benchmarks/train_step.py [--threads 1] [--steps 4] [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, write_result  # noqa: E402


def _batch(cfg, B: int, device):
    import torch

    from humansplat.cameras import orbit_cameras
    from humansplat.model.dummy_inputs import synthetic_inputs

    inp = synthetic_inputs(cfg, batch_size=B, n_body_vertices=13718, device=device)
    cams = orbit_cameras([0, 45, 90, 135, 180, 225, 270, 315], 0.0, 2.6, width=128, height=128)
    T = 8
    g = torch.Generator().manual_seed(0)
    batch = {
        "views": inp.views, "viewmats": inp.viewmats, "Ks": inp.Ks,
        "body_vertices": inp.body_vertices,
        "target_viewmats": cams.viewmats[None].expand(B, -1, -1, -1),
        "target_Ks": cams.Ks[None].expand(B, -1, -1, -1),
        "target_rgb": torch.rand(B, T, 3, 128, 128, generator=g),
        "target_mask": (torch.rand(B, T, 1, 128, 128, generator=g) > 0.5).float(),
        "target_parts": torch.randint(-1, 24, (B, T, 128, 128), generator=g),
        "target_levels": torch.tensor([[0, 0, 0, 0, 1, 1, 2, 2]] * B),
    }
    return batch


def run_case(preset: str, B: int, perceptual_in_lh: bool, steps: int, device) -> dict:
    import torch

    from humansplat.config import get_preset
    from humansplat.model import LatentReconstructionTransformer
    from humansplat.train.ema import EMA
    from humansplat.train.losses import LossConfig
    from humansplat.train.perceptual import get_perceptual
    from humansplat.train.step import model_kwargs, render_views, training_loss
    from humansplat.train.trainer import param_groups

    cfg = get_preset(preset)
    model = LatentReconstructionTransformer(cfg).to(device).train()
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4, betas=(0.9, 0.95))
    ema = EMA(model, 0.999)
    perc = get_perceptual("effnet-lite0").to(device)
    lc = LossConfig(perceptual_in_lh=perceptual_in_lh)
    batch = _batch(cfg, B, device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if str(device).startswith("cuda") \
        else torch.autocast("cpu", enabled=False)
    times = []
    for i in range(steps + 1):
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with amp:
            out = model(**model_kwargs(batch, device))
        r = render_views(out, batch["target_viewmats"].to(device), batch["target_Ks"].to(device),
                         128)
        loss, _ = training_loss(r, batch, perc, lc, 0.1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        if i > 0:  # the first step warms caches up
            times.append(time.perf_counter() - t)
    sec = sorted(times)[len(times) // 2]
    return {"preset": preset, "batch": B, "targets_per_sample": 8,
            "perceptual_in_lh": perceptual_in_lh, "sec_per_step": sec,
            "samples_per_s": B / sec, "params": model.num_parameters()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cases = [(1, False), (2, False), (1, True)]
    if args.device.startswith("cuda"):
        cases = [(1, True), (4, True), (8, True)]
    rows = [run_case("tiny", B, lh, args.steps, args.device) for B, lh in cases]
    print(f"{'preset':>6} {'batch':>5} {'L_H percep.':>11} {'s/step':>8} {'samples/s':>9}")
    for r in rows:
        print(f"{r['preset']:>6} {r['batch']:>5} {str(r['perceptual_in_lh']):>11} "
              f"{r['sec_per_step']:>8.2f} {r['samples_per_s']:>9.2f}")
    tag = "cuda" if args.device.startswith("cuda") else "cpu"
    write_result({"benchmark": "train_step", "machine": machine_info(args.device),
                  "rows": rows},
                 args.out or Path(__file__).parent / "results" / f"train_step_{tag}.json")


if __name__ == "__main__":
    main()
