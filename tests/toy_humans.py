"""A tiny in-memory dataset in the training-sample format (humansplat.train.dataset), for
trainer tests: a capsule figure of coloured Gaussians rendered into the model's 5 input
cameras (the views) and into 4 target cameras (full body x2, upper body, face)."""

from __future__ import annotations

import torch

from humansplat.cameras import orbit_cameras
from humansplat.config import ModelConfig
from humansplat.model.dummy_inputs import capsule_body, rig_azimuths
from humansplat.render import rasterize

TARGET_AZ = (30.0, 200.0, 90.0, 0.0)
TARGET_LEVELS = (0, 0, 1, 2)


def _scene(seed: int, n: int = 1500):
    g = torch.Generator().manual_seed(seed)
    means = capsule_body(n, seed)
    colors = torch.rand(3, generator=g) * 0.5 + 0.5 * torch.sigmoid(means * 4)  # smooth
    part = ((means[:, 1] + 1.0) * 12).long().clamp(0, 23)  # bands by height
    return means, colors.clamp(0, 1), part


def _render(means, colors, vm, Ks, size):
    n = means.shape[0]
    quats = torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4)
    scales = torch.full((n, 3), 0.03)
    img, alpha, _ = rasterize(means, quats, scales, torch.full((n,), 0.9), colors, vm, Ks,
                              size, size, backgrounds=torch.ones(len(vm), colors.shape[1]))
    return img.permute(0, 3, 1, 2), alpha.permute(0, 3, 1, 2)


class ToyHumans(torch.utils.data.Dataset):
    def __init__(self, config: ModelConfig, n: int = 4, size: int = 32):
        self.cfg, self.n, self.size = config, n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        cfg, R = self.cfg, self.size
        means, colors, part = _scene(i)
        cams = orbit_cameras(rig_azimuths(cfg.n_views), 0.0, 2.6, width=cfg.image_size,
                             height=cfg.image_size)
        views, valpha = _render(means, colors, cams.viewmats, cams.Ks, cfg.image_size)
        tc = orbit_cameras(list(TARGET_AZ), 5.0, 2.6, width=R, height=R)
        rgb, alpha = _render(means, colors, tc.viewmats, tc.Ks, R)
        onehot = torch.nn.functional.one_hot(part, 24).float()
        pimg, _ = _render(means, onehot, tc.viewmats, tc.Ks, R)
        parts = torch.where(alpha[:, 0] > 0.5, pimg.argmax(1), torch.full_like(alpha[:, 0],
                                                                               -1).long())
        return {"views": views.clamp(0, 1), "viewmats": cams.viewmats, "Ks": cams.Ks,
                "body_vertices": capsule_body(2000, 100 + i),
                "target_rgb": rgb.clamp(0, 1), "target_mask": (alpha > 0.5).float(),
                "target_parts": parts, "target_viewmats": tc.viewmats, "target_Ks": tc.Ks,
                "target_levels": torch.tensor(TARGET_LEVELS),
                # the photo: the input view (composited on white) and its mask
                "input_image": views[0].clamp(0, 1), "input_mask": valpha[0].clamp(0, 1),
                "subject": f"toy-{i:03d}"}
