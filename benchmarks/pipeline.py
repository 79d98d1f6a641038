"""End-to-end pipeline timings: one 512x512 photo through every stage and every export.

    python benchmarks/pipeline.py [--checkpoint SRC] [--photo PATH] [--video-size 256]
                                  [--repeats 3] [--threads N] [--device cpu|cuda] [--out PATH]
                                  [--set FIELD=VALUE ...]

Checkpoint: SRC, else the bundled ``humansplat/checkpoints/humansplat-tiny`` when present, else an
untrained ``tiny`` transformer with random weights (the same shapes and compute as the
trained one, so the same time; the table says which ran). The pipeline is loaded once
(timed as ``load_pipeline``); the first run includes one-time start-up costs (mediapipe's
models, first-call allocations) and is reported apart; the table shows the median of the
warm runs per stage. ``total`` = the photo in, every file written (turntable at
``--video-size`` px, 60 frames). Target on 2 CPU cores: under 15 s. ``--set`` changes a
``PipelineConfig`` field (a JSON value, else text: ``--set refine=always``); the JSON
records the changes and the bytes of the files written.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common

from common import machine_info, write_result  # noqa: E402

STAGE_ORDER = ("load", "preprocess", "body_fit", "view_synthesis", "model_inputs",
               "reconstruction", "faithful", "export_ply", "export_splat", "export_views",
               "export_latents", "export_body_png", "export_body_obj", "export_video",
               "export_meta", "total")


def load_pipeline(args):
    from humansplat.config import get_preset
    from humansplat.hub import BUNDLED_CHECKPOINT
    from humansplat.model import LatentReconstructionTransformer
    from humansplat.pipeline import HumanSplatPipeline, PipelineConfig

    if args.checkpoint or (BUNDLED_CHECKPOINT / "model.safetensors").is_file():
        pipe = HumanSplatPipeline.from_pretrained(args.checkpoint, device=args.device)
        return pipe, pipe.source.id
    torch.manual_seed(0)
    model = LatentReconstructionTransformer(get_preset("tiny"))
    pipe = HumanSplatPipeline.from_components(PipelineConfig(), model=model,
                                              device=args.device)
    return pipe, "untrained tiny (random weights; bundled checkpoint not present)"


def one_run(pipe, photo: Path, video_size: int, out_dir: Path) -> dict[str, float]:
    if pipe.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    rec = pipe(photo, seed=0)
    rec.save(out_dir, video_size=video_size)
    if pipe.device.type == "cuda":
        torch.cuda.synchronize()
    total = time.perf_counter() - t0
    t = {k: v for k, v in rec.timings.items() if k != "total"}
    t["total"] = total
    t["_num_gaussians"] = len(rec.gaussians)
    t["_bytes"] = {f.name: f.stat().st_size for f in sorted(out_dir.rglob("*")) if f.is_file()}
    return t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--photo", default=str(ROOT / "examples" / "astronaut.jpg"))
    ap.add_argument("--video-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3, help="runs, the first one cold")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: what the CLI and app use, "
                         "runtime.fix_threads: $HUMANSPLAT_THREADS, else 1)")
    ap.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pipeline.json"))
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a PipelineConfig field for this run (JSON value, else text); repeatable")
    args = ap.parse_args(argv)
    from humansplat.runtime import fix_threads

    fix_threads(args.threads)  # the product's setting, so the figure is the product's time
    from PIL import Image

    from humansplat.pipeline.config import parse_setting

    size = Image.open(args.photo).size
    t = time.perf_counter()
    pipe, which = load_pipeline(args)
    changes = dict(parse_setting(kv) for kv in args.set)
    if changes:
        pipe.config = pipe.config.replace(**changes)
    load_s = time.perf_counter() - t
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(max(1, args.repeats)):
            runs.append(one_run(pipe, Path(args.photo), args.video_size, Path(tmp) / f"r{i}"))
    warm = runs[1:] or runs
    rows = []
    for stage in STAGE_ORDER:
        vals = [r[stage] for r in warm if stage in r]
        if vals:
            rows.append({"stage": stage, "cold_s": runs[0].get(stage),
                         "median_s": statistics.median(vals), "min_s": min(vals),
                         "max_s": max(vals)})
    print(f"pipeline: {pipe!r}\ncheckpoint: {which}\nphoto: {args.photo} {size[0]}x{size[1]}, "
          f"turntable {args.video_size} px x 60 frames, {runs[0]['_num_gaussians']} Gaussians"
          + (f", settings {changes}" if changes else ""))
    ply = runs[0]["_bytes"].get("gaussians.ply")
    if ply is not None:
        print(f"gaussians.ply: {ply / 2**20:.1f} MiB")
    print(f"load_pipeline: {load_s:.2f} s (once)")
    print(f"{'stage':<18}{'cold s':>9}{'median s':>10}{'min s':>8}{'max s':>8}")
    for r in rows:
        cold = f"{r['cold_s']:.3f}" if r["cold_s"] is not None else "-"
        print(f"{r['stage']:<18}{cold:>9}{r['median_s']:>10.3f}{r['min_s']:>8.3f}"
              f"{r['max_s']:>8.3f}")
    result = {"benchmark": "pipeline", "photo": args.photo, "photo_size": list(size),
              "video_size": args.video_size, "checkpoint": which,
              "settings_changed": changes, "num_gaussians": runs[0]["_num_gaussians"],
              "files_bytes": runs[0]["_bytes"], "load_pipeline_s": load_s,
              "repeats": len(runs), "rows": rows, "runs": runs,
              "machine": machine_info(str(pipe.device), dtype=str(pipe.dtype))}
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
