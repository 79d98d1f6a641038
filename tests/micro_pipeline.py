"""A micro pipeline checkpoint the pipeline and CLI tests save themselves (untrained: it
checks plumbing, files and round trips, not quality), and a Hugging Face cache writer."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import torch

from humansplat.prior.fit import QUICK_FIT

#: crop size of the micro pipeline (small: fast preprocess and fit)
MICRO_CROP = 256



def make_micro_checkpoint(folder: Path, seed: int = 0, **config) -> Path:
    """pipeline.json + config.json + model.safetensors of a randomly initialised ``micro``
    transformer (32 px views, 1,280 Gaussians); ``config``: pipeline.json settings that
    differ from the micro defaults (a 256 px crop, photo Gaussians at the crop's size, the
    quick body fit)."""
    from humansplat.config import get_preset
    from humansplat.model import LatentReconstructionTransformer
    from humansplat.pipeline import PipelineConfig

    folder = Path(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LatentReconstructionTransformer(get_preset("micro"))
    model.save_pretrained(folder)
    # photo Gaussians at the crop size: micro runs test wiring, not fidelity
    settings = {"crop_size": MICRO_CROP, "input_resolution": MICRO_CROP,
                "body_fit": QUICK_FIT, **config}
    PipelineConfig(**settings).write(folder / "pipeline.json")
    return folder


def populate_hf_cache(cache_dir: Path, repo_id: str, folder: Path,
                      commit: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """Lay ``folder``'s files out as huggingface_hub's cache does after a download:
    ``models--OWNER--NAME/blobs/<sha256>``, ``snapshots/<commit>/<file>`` symlinked to the
    blob, ``refs/main`` holding the commit. Returns the snapshot folder."""
    repo = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for src in sorted(Path(folder).rglob("*")):
        if not src.is_file():
            continue
        data = src.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        if not blob.exists():
            shutil.copyfile(src, blob)
        dst = snap / src.relative_to(folder)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(os.path.relpath(blob, dst.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snap
