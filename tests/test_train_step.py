"""Part renders and the part term: rendered probabilities follow the Gaussians' labels, and
the cross-entropy pulls only on labelled pixels."""

from __future__ import annotations

import torch

from humansplat.cameras import orbit_cameras
from humansplat.model.gaussian_head import ReconstructionOutput
from humansplat.train.step import collate_samples, part_loss, render_views


def _two_blobs(sharpness: float = 20.0):
    """Two opaque Gaussian clusters side by side (x < 0 label 3, x > 0 label 17)."""
    g = torch.Generator().manual_seed(0)
    n = 400
    means = torch.randn(n, 3, generator=g) * torch.tensor([0.06, 0.15, 0.06])
    means[: n // 2, 0] -= 0.25
    means[n // 2:, 0] += 0.25
    labels = torch.cat([torch.full((n // 2,), 3), torch.full((n // 2,), 17)])
    logits = torch.nn.functional.one_hot(labels, 24).float() * sharpness
    out = ReconstructionOutput(
        means=means[None], quats=torch.tensor([1.0, 0, 0, 0]).expand(1, n, 4),
        scales=torch.full((1, n, 3), 0.04), opacities=torch.full((1, n), 0.95),
        colors=torch.rand(1, n, 3, generator=g), part_logits=logits[None].requires_grad_(),
        depths=torch.zeros(1, n), raw=torch.zeros(1, n, 38), view_ids=(0,), grid=1)
    return out


def test_part_render_matches_labels_and_alpha():
    out = _two_blobs()
    cams = orbit_cameras([0.0, 180.0], 0.0, 2.6, width=48, height=48)
    r = render_views(out, cams.viewmats[None], cams.Ks[None], 48)
    assert r.parts.shape == (1, 2, 24, 48, 48)
    # part probabilities sum to the alpha (each Gaussian's softmax sums to 1)
    torch.testing.assert_close(r.parts.sum(2), r.alpha[:, :, 0], atol=1e-4, rtol=0)
    fg = r.alpha[0, 0, 0] > 0.9
    label = r.parts[0, 0].argmax(0)[fg]
    cols = torch.arange(48).expand(48, 48)[fg]
    # the front camera sees the person's left (+x, label 17) on the image's right
    assert (label[cols < 20] == 3).all() and (label[cols > 28] == 17).all()
    back = r.parts[0, 1].argmax(0)[r.alpha[0, 1, 0] > 0.9]
    bcols = torch.arange(48).expand(48, 48)[r.alpha[0, 1, 0] > 0.9]
    assert (back[bcols < 20] == 17).all() and (back[bcols > 28] == 3).all()


def test_part_loss_gradient_only_from_labelled_pixels():
    out = _two_blobs(sharpness=2.0)  # unsaturated softmax: gradients are not ~0
    cams = orbit_cameras([0.0], 0.0, 2.6, width=48, height=48)
    r = render_views(out, cams.viewmats[None], cams.Ks[None], 48)
    gt = torch.full((1, 1, 48, 48), -1, dtype=torch.long)
    gt[..., :16] = 3  # only the left third is labelled (where the label-3 blob is)
    loss = part_loss(r.parts, gt)
    loss.backward()
    g = out.part_logits.grad[0]
    # the label-17 blob (x > 0) never reaches the labelled left third: no gradient
    assert g[200:].abs().max() < 1e-6 < g[:200].abs().max()
    # and it raises the true label's logit there
    assert (g[:200, 3] <= 0).all() and g[:200, 3].sum() < 0


def test_collate_stacks_tensors_and_lists_strings():
    a = {"x": torch.zeros(2, 3), "subject": "a"}
    b = {"x": torch.ones(2, 3), "subject": "b"}
    c = collate_samples([a, b])
    assert c["x"].shape == (2, 2, 3) and c["subject"] == ["a", "b"]
