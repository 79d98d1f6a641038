"""scripts/back_front_share.py: the share of the front seen from behind, on a scene whose
answer is known: a front sheet alone is all front; behind an opaque back it is hidden."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

from humansplat.gaussians import Gaussians

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("back_front_share",
                                              ROOT / "scripts" / "back_front_share.py")
bfs = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bfs
spec.loader.exec_module(bfs)


def _sheet(z: float, opacity: float, n: int = 24) -> Gaussians:
    """A 0.5 x 1.6 m sheet of Gaussians at depth ``z`` (metres along the world's z axis)."""
    x, y = torch.meshgrid(torch.linspace(-0.25, 0.25, n), torch.linspace(-0.8, 0.8, 3 * n),
                          indexing="ij")
    means = torch.stack([x.reshape(-1), y.reshape(-1), torch.full((x.numel(),), z)], -1)
    N = len(means)
    q = torch.zeros(N, 4)
    q[:, 0] = 1
    return Gaussians(means=means, quats=q, scales=torch.full((N, 3), 0.03),
                     opacities=torch.full((N,), opacity), colors=torch.full((N, 3), 0.5))


def _result(photo: Gaussians, others: Gaussians, kept: int = 0):
    return SimpleNamespace(gaussians=Gaussians.cat([photo, others]),
                           info={"photo_gaussians": len(photo), "model_input_view_kept": kept})


def test_front_share_is_all_front_alone_and_nothing_behind_an_opaque_back():
    front = _sheet(0.1, 0.95)
    cams_for = Gaussians.cat([front, _sheet(-0.1, 0.95)])  # the turntable frames both alike
    alone = bfs.front_share(_result(front, _sheet(-0.1, 0.95)[:0]), cams_for)
    assert alone["180"] > 0.99
    # which side the turntable's 180 degrees sees: the sheet nearer to it hides the other
    a = bfs.front_share(_result(front, _sheet(-0.1, 0.99)), cams_for)["180"]
    b = bfs.front_share(_result(_sheet(-0.1, 0.95), _sheet(0.1, 0.99)), cams_for)["180"]
    assert min(a, b) < 0.05 and max(a, b) > 0.95
    # the model's kept input view (the last of the others) counts as the front
    z_far, z_near = (0.1, -0.1) if a < 0.05 else (-0.1, 0.1)  # from the 180-degree camera
    hidden, back = _sheet(z_far, 0.95), _sheet(z_near, 0.99)
    kept = bfs.front_share(_result(hidden[:0], Gaussians.cat([back, hidden]),
                                   kept=len(hidden)), cams_for)["180"]
    assert kept < 0.05
    half = bfs.front_share(_result(hidden, _sheet(z_near, 0.1)), cams_for)["180"]
    assert 0.2 < half < 0.8, half  # a half-transparent back: the front shows through
