"""Runs share nothing: the app at ``HUMANSPLAT_CONCURRENCY=2``, four different photos sent at
once through ``gradio_client``, returns for each photo exactly (bit for bit) the Gaussians
that photo gives when sent alone afterwards; so a repeat also equals the first run.

The server keeps the start-up thread count (1): a run that changed the process's thread count
around a stage (as the projection synthesizer once did) would put the other run's body fit on
2 threads, where it is not reproducible, which this test sees. The micro checkpoint, a 256 px
crop and a 64 px turntable keep the 8 runs light on 2 cores (about 3 minutes)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from plyfile import PlyData

from app_server import ROOT, save_micro_checkpoint
from humansplat.webapp.process import AppProcess

pytestmark = pytest.mark.timeout(900)

PHOTOS = (ROOT / "examples" / "astronaut.jpg", ROOT / "examples" / "cameraman_gray.png")


def _photos(tmp: Path) -> list[Path]:
    """4 different photos: the two examples, a mirrored one and a crop."""
    a = np.asarray(Image.open(PHOTOS[0]).convert("RGB"))
    b = np.asarray(Image.open(PHOTOS[1]).convert("RGB"))
    out = []
    for i, img in enumerate((a, b, a[:, ::-1], a[12:, 20:])):
        p = tmp / f"photo{i}.png"
        Image.fromarray(np.ascontiguousarray(img)).save(p)
        out.append(p)
    return out


def _gaussians(ply_path) -> dict[str, np.ndarray]:
    v = PlyData.read(str(ply_path))["vertex"].data
    return {name: np.asarray(v[name]) for name in v.dtype.names}


def _diff(a: dict, b: dict) -> str:
    if a.keys() != b.keys() or len(next(iter(a.values()))) != len(next(iter(b.values()))):
        return (f"different layout: {len(next(iter(a.values())))} vs "
                f"{len(next(iter(b.values())))} Gaussians")
    worst = max((float(np.abs(a[k].astype(np.float64) - b[k]).max()), k) for k in a)
    return f"max |difference| {worst[0]:.3g} in {worst[1]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("concurrent")
    ckpt = save_micro_checkpoint(tmp / "micro-checkpoint")
    env = {"HUMANSPLAT_CHECKPOINT": str(ckpt), "HUMANSPLAT_CONCURRENCY": "2",
           "HUMANSPLAT_VIDEO_SIZE": "64", "HF_HUB_OFFLINE": "1",
           "OMP_WAIT_POLICY": "PASSIVE"}
    app = AppProcess.start(ROOT / "app.py", tmp, env)
    yield app
    app.stop()


def test_concurrent_runs_equal_runs_alone(server, tmp_path):
    from gradio_client import Client, handle_file

    photos = _photos(tmp_path)

    def reconstruct(i: int, where: str) -> dict[str, np.ndarray]:
        client = Client(server.url, verbose=False, download_files=str(tmp_path / f"{where}{i}"),
                        httpx_kwargs={"timeout": 600})  # 2 runs at once on shared cores
        try:
            files = client.predict(handle_file(str(photos[i])), seed=i, api_name="/reconstruct")
        finally:
            client.close()
        return _gaussians(files[0])

    at_once: dict[int, object] = {}

    def visit(i: int) -> None:
        try:
            at_once[i] = reconstruct(i, "together")
        except Exception as err:  # noqa: BLE001 - reported below
            at_once[i] = err

    threads = [threading.Thread(target=visit, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    for i in range(4):
        assert isinstance(at_once.get(i), dict), f"photo {i}: {at_once.get(i)!r}\n" \
            + server.log_tail()
    # different photos gave different splats (the comparison below is not vacuous)
    assert len({at_once[i]["x"].tobytes() for i in range(4)}) == 4

    for i in range(4):  # each alone, afterwards: also a repeat of the first run
        alone = reconstruct(i, "alone")
        same = alone.keys() == at_once[i].keys() and all(
            np.array_equal(alone[k], at_once[i][k]) for k in alone)
        assert same, f"photo {i}: concurrent run differs from its run alone: " \
            f"{_diff(at_once[i], alone)}"


def test_thread_count_is_fixed_once_from_the_environment():
    import torch

    from humansplat.errors import ConfigError
    from humansplat.runtime import fix_threads

    n = torch.get_num_threads()
    try:
        assert fix_threads(env={"HUMANSPLAT_THREADS": "2"}) == 2 == torch.get_num_threads()
        assert fix_threads(env={}) == 1 == torch.get_num_threads()  # the default
        for bad in ("two", "0", "-3"):
            with pytest.raises(ConfigError, match="HUMANSPLAT_THREADS|thread count"):
                fix_threads(env={"HUMANSPLAT_THREADS": bad})
    finally:
        torch.set_num_threads(n)
