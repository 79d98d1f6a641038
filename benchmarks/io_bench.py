"""Timings of humansplat.io: splat files at the paper's 65,536 Gaussians, image loading,
video encoding, OBJ export at Anny's size. Prints a table and writes JSON.

    python benchmarks/io_bench.py [--out benchmarks/results/io_bench.json] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common

from humansplat.gaussians import Gaussians  # noqa: E402
from humansplat.io import images, mesh, splat_files, video  # noqa: E402
from common import machine_info, write_result  # noqa: E402


def _gaussians(n: int, sh_degree: int | None) -> Gaussians:
    g = torch.Generator().manual_seed(0)
    kw = ({"colors": torch.rand(n, 3, generator=g)} if sh_degree is None else
          {"sh": torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.3})
    return Gaussians(torch.randn(n, 3, generator=g),
                     torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
                     torch.rand(n, 3, generator=g) * 0.02 + 1e-3, torch.rand(n, generator=g),
                     labels=torch.randint(0, 24, (n,), generator=g), **kw)


def _time(fn, repeats: int) -> dict:
    fn()  # warm-up (imports, page cache)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(ts), "min_s": min(ts), "repeats": repeats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/io_bench.json")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n", type=int, default=65536, help="Gaussians per splat file")
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for label, deg in (("rgb", None), ("sh3", 3)):
            g = _gaussians(args.n, deg)
            ply, spl = d / f"{label}.ply", d / f"{label}.splat"
            rows.append((f"save_ply {args.n} {label}",
                         _time(lambda: splat_files.save_ply(g, ply, y_down=True), args.repeats),
                         ply.stat().st_size))
            rows.append((f"load_ply {args.n} {label}",
                         _time(lambda: splat_files.load_ply(ply), args.repeats),
                         ply.stat().st_size))
            rows.append((f"save_splat {args.n} {label}",
                         _time(lambda: splat_files.save_splat(g, spl, y_down=True), args.repeats),
                         spl.stat().st_size))
        rows.append((f"load_splat {args.n}",
                     _time(lambda: splat_files.load_splat(spl), args.repeats), spl.stat().st_size))

        from PIL import Image
        rng = np.random.default_rng(0)
        small = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
        photo = np.asarray(Image.fromarray(small).resize((4000, 3000), Image.BILINEAR))
        jpg = d / "photo.jpg"
        Image.fromarray(photo).save(jpg, quality=90)
        rows.append(("load_image 12 MP JPEG", _time(lambda: images.load_image(jpg),
                                                    args.repeats), jpg.stat().st_size))

        frames = [np.full((256, 256, 3), (i * 4) % 256, np.uint8) for i in range(60)]
        frames = [f + rng.integers(0, 8, f.shape, dtype=np.uint8) for f in frames]
        mp4 = d / "v.mp4"
        rows.append(("write_video 60 x 256^2", _time(lambda: video.write_video(frames, mp4),
                                                     max(1, args.repeats // 2)),
                     mp4.stat().st_size))

        V, F = 13718, 27420  # Anny's mesh
        verts = rng.normal(size=(V, 3)).astype(np.float32)
        faces = rng.integers(0, V, (F, 3))
        cols = rng.random((V, 3)).astype(np.float32)
        obj = d / "body.obj"
        rows.append(("save_obj 13,718 v / 27,420 f + colours",
                     _time(lambda: mesh.save_obj(obj, verts, faces, cols), args.repeats),
                     obj.stat().st_size))
        rows.append(("load_obj same", _time(lambda: mesh.load_obj(obj), args.repeats),
                     obj.stat().st_size))

    machine = machine_info("cpu")
    print(f"{'operation':44s} {'median s':>9s} {'min s':>8s} {'bytes':>11s}")
    for name, t, size in rows:
        print(f"{name:44s} {t['median_s']:9.4f} {t['min_s']:8.4f} {size:11d}")
    print(f"machine: {machine}")
    write_result({"machine": machine, "results": [
        {"operation": n, **t, "bytes": s} for n, t, s in rows]}, args.out)


if __name__ == "__main__":
    main()
