"""Avatar export (``humansplat export``): time on the CPU and fidelity to the splat.

For each reconstruction folder (default: the example photos reconstructed with the bundled
checkpoint, into a temporary folder), export a GLB (input pose, walk + wave + turn), time it
(the body model loaded once beforehand, as the app and a batch keep it; wall and CPU
seconds: on a shared machine the CPU time, summed over threads, is the steadier figure), and
compare the GLB,
read back with trimesh, with the splat at the photo's camera: silhouette IoU (target >= 0.9)
and PSNR on white. The Khronos validator's error count is recorded when it is installed.

    python benchmarks/export.py [--folders OUT/astronaut ...] [--threads 1]

One torch thread with ``OMP_WAIT_POLICY=PASSIVE`` (set here unless given): on a shared 2-core
machine a second spinning OpenMP thread made the export 15x slower (71 s vs 4.4 s).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common

from common import machine_info, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported


def _reconstruct_examples(out: Path) -> list[Path]:
    photos = sorted(p for p in (ROOT / "examples").glob("*")
                    if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    subprocess.run([sys.executable, "-m", "humansplat.cli", "reconstruct", *map(str, photos),
                    "-o", str(out), "--no-video", "--no-progress"], check=True, cwd=ROOT)
    return [out / p.stem for p in photos if (out / p.stem / "meta.json").is_file()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folders", nargs="*", default=None,
                    help="reconstruction folders (default: reconstruct examples/)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2, help="timed exports per folder")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "export.json"))
    args = ap.parse_args(argv)

    import torch

    from humansplat.avatar.skinning import BodyParams
    from humansplat.export import export_folder
    from humansplat.export.check import compare_glb_to_splat
    from humansplat.export.command import load_input_camera
    from humansplat.export.validator import validate_gltf, validator_available
    from humansplat.io import load_ply

    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    folders = [Path(f) for f in args.folders] if args.folders else \
        _reconstruct_examples(Path(tmp.name) / "rec")
    t = time.perf_counter()
    model = BodyParams.load(folders[0] / "body.npz").body_model()
    load_s = time.perf_counter() - t
    rows = []
    for folder in folders:
        glb = Path(tmp.name) / f"{folder.name}.glb"
        times, cpu = [], []
        for _ in range(max(1, args.repeats)):
            t, c = time.perf_counter(), time.process_time()
            _, asset = export_folder(folder, glb, motions=("walk", "wave", "turn"),
                                     body_model=model)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        cmp = compare_glb_to_splat(glb, load_ply(folder / "gaussians.ply"),
                                   load_input_camera(folder / "meta.json"))
        errors = None if validator_available() else \
            validate_gltf(glb)["issues"]["numErrors"]
        rows.append({"folder": folder.name, "export_s": min(times), "export_s_all": times,
                     "export_cpu_s": min(cpu),
                     "stages_s": asset.timings, "iou": cmp["iou"], "psnr": cmp["psnr"],
                     "validator_errors": errors, "glb_mb": glb.stat().st_size / 2**20,
                     "vertices": asset.stats["exported_vertices"],
                     "triangles": asset.stats["faces"]})
    load = os.getloadavg()
    print(f"\nbody model load (once): {load_s:.1f} s; threads {args.threads}; "
          f"load average {load[0]:.1f}")
    print(f"{'folder':<16}{'export s':>9}{'CPU s':>7}{'IoU':>7}{'PSNR':>7}{'errors':>7}{'MB':>6}"
          f"{'verts':>7}")
    for r in rows:
        print(f"{r['folder']:<16}{r['export_s']:>9.1f}{r['export_cpu_s']:>7.1f}{r['iou']:>7.3f}{r['psnr']:>7.2f}"
              f"{str(r['validator_errors']):>7}{r['glb_mb']:>6.1f}{r['vertices']:>7}")
    result = {"machine": machine_info("cpu"),
              "body_model_load_s": load_s, "targets": {"export_s": 10.0, "iou": 0.9},
              "rows": rows}
    print(write_result(result, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
