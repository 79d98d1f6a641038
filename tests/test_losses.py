"""L_Rec, L_H and L: formulas against brute-force references, and where gradients go."""

import pytest
import torch

from humansplat.errors import ConfigError
from humansplat.train import losses as L
from humansplat.train.perceptual import EfficientNetLite0Perceptual

B, T, H, W = 2, 3, 48, 48
HEAD, SPINE, LHAND, RHAND = 15, 3, 20, 21


@pytest.fixture(scope="module")
def effnet():
    return EfficientNetLite0Perceptual()


def _batch(seed=0):
    """Rectangular 'body parts' that move between views; view (0,1) shows no person at all,
    RHAND appears nowhere, LHAND only in sample 1."""
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(B, T, 3, H, W, generator=g)
    pred = (gt + 0.2 * torch.randn(B, T, 3, H, W, generator=g)).clamp(0, 1)
    parts = torch.full((B, T, H, W), -1, dtype=torch.long)
    for b in range(B):
        for t in range(T):
            o = 3 * t + 2 * b
            parts[b, t, 4 + o : 20 + o, 10:26] = HEAD
            parts[b, t, 22:44, 6 + o : 30 + o] = SPINE
            parts[b, t, 30:38, 36 : 40 + t] = 16 + t  # an arm part that changes per view
    parts[1, :, 40:46, 40:47] = LHAND
    parts[0, 1] = -1
    level = torch.tensor([[0, 1, 2], [0, 0, 2]])
    alpha = torch.rand(B, T, 1, H, W, generator=g)
    mask = (parts >= 0).float()
    return pred, gt, parts, level, alpha, mask


def _lh_mse_reference(pred, gt, parts, level, lw, pw):
    """Loop over samples, levels and parts: pooled MSE over the part's pixels of that level."""
    n, m = len(lw), len(pw)
    out = 0.0
    for b in range(pred.shape[0]):
        s = 0.0
        for i in range(n):
            views = [t for t in range(pred.shape[1]) if int(level[b, t]) == i]
            for j in range(m):
                sq, cnt = 0.0, 0
                for t in views:
                    sel = parts[b, t] == j
                    if sel.any():
                        sq = sq + ((pred[b, t][:, sel] - gt[b, t][:, sel]) ** 2).sum()
                        cnt += int(sel.sum()) * 3
                if cnt:
                    s = s + lw[i] * pw[j] * sq / cnt
        out = out + s / (n * m)
    return out / pred.shape[0]


def test_part_table_matches_paper():
    assert len(L.PART_NAMES) == len(L.PART_WEIGHTS) == 24
    heavy = {n for n, w in zip(L.PART_NAMES, L.PART_WEIGHTS) if w == 2.0}
    assert heavy == {
        "head",
        "left_arm",
        "right_arm",
        "left_forearm",
        "right_forearm",
        "left_hand",
        "right_hand",
        "left_hand_index",
        "right_hand_index",
    }
    assert set(L.PART_WEIGHTS) == {1.0, 2.0}
    assert L.PART_NAMES[HEAD] == "head" and L.PART_NAMES[LHAND] == "left_hand"


@pytest.mark.parametrize("lw", [(1.0, 1.0, 1.0), (1.0, 0.5, 3.0)])
def test_lh_mse_matches_bruteforce(lw):
    pred, gt, parts, level, *_ = _batch()
    pw = torch.rand(24, generator=torch.Generator().manual_seed(1)) + 0.5
    total, terms = L.hierarchical_loss(
        pred, gt, parts, level, None, level_weights=lw, part_weights=pw, perceptual_in_lh=False
    )
    ref = _lh_mse_reference(pred.double(), gt.double(), parts, level, lw, pw.double())
    assert torch.allclose(total.double(), ref, rtol=1e-5)
    assert "h/mse" in terms and not any(k.startswith("h/perceptual") for k in terms)
    # present (level, part) pairs: sample 0: level 0 (3 parts), level 2 (3); sample 1:
    # level 0 (HEAD, SPINE, arm16, arm17, LHAND), level 2 (HEAD, SPINE, arm18, LHAND)
    assert terms["h/pairs"].item() == pytest.approx((6 + 9) / 2)


@pytest.mark.parametrize("with_perceptual", [False, True])
@pytest.mark.parametrize("part", [HEAD, SPINE])
def test_part_weight_changes_gradient_on_that_part_only(effnet, with_perceptual, part):
    pred, gt, parts, level, *_ = _batch()

    def grad(pw):
        x = pred.clone().requires_grad_()
        loss, _ = L.hierarchical_loss(
            x,
            gt,
            parts,
            level,
            effnet,
            part_weights=pw,
            perceptual_in_lh=with_perceptual,
            crop_size=32,
        )
        loss.backward()
        return x.grad

    base = list(L.PART_WEIGHTS)
    bumped = list(base)
    bumped[part] = 3.0 * base[part]
    g0, g1 = grad(base), grad(bumped)
    on = (parts == part).unsqueeze(2).expand_as(g0)
    bg = (parts < 0).unsqueeze(2).expand_as(g0)
    others = ~on & ~bg
    assert g0[on].abs().min() > 0 if not with_perceptual else g0[on].abs().sum() > 0
    # 3x on the part: the MSE and the part's own crop both scale with lambda_j (exactly, up to
    # float rounding where the MSE and perceptual gradients nearly cancel)
    assert torch.allclose(g1[on], 3.0 * g0[on], rtol=1e-5, atol=1e-6 * float(g0[on].abs().max()))
    # identical on every other part, and zero on the background
    assert torch.equal(g1[others], g0[others]) and g0[others].abs().sum() > 0
    assert torch.all(g0[bg] == 0) and torch.all(g1[bg] == 0)


def test_level_weight_scales_that_levels_views_only():
    pred, gt, parts, level, *_ = _batch()

    def grad(lw):
        x = pred.clone().requires_grad_()
        L.hierarchical_loss(x, gt, parts, level, None, level_weights=lw, perceptual_in_lh=False)[
            0
        ].backward()
        return x.grad

    g0, g1 = grad((1.0, 1.0, 1.0)), grad((1.0, 1.0, 2.5))
    face = (level == 2).view(B, T, 1, 1, 1).expand_as(g0)
    assert torch.allclose(g1[face], 2.5 * g0[face], rtol=1e-5)
    assert torch.equal(g1[~face], g0[~face])


def test_absent_part_contributes_nothing_and_no_nan(effnet):
    pred, gt, parts, level, *_ = _batch()
    pw = list(L.PART_WEIGHTS)
    a, _ = L.hierarchical_loss(pred, gt, parts, level, effnet, part_weights=pw, crop_size=32)
    pw[RHAND] = 1e6  # RHAND is in no view
    b, _ = L.hierarchical_loss(pred, gt, parts, level, effnet, part_weights=pw, crop_size=32)
    assert torch.equal(a, b)
    # no labelled pixel at all: exactly zero loss, zero finite gradient
    x = pred.clone().requires_grad_()
    none = torch.full_like(parts, -1)
    loss, terms = L.hierarchical_loss(x, gt, none, level, effnet, crop_size=32)
    loss.backward()
    assert loss.item() == 0.0 and terms["h/pairs"].item() == 0
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() == 0


def test_part_crops_hold_only_their_part():
    pred, gt, parts, *_ = _batch()
    imgs = torch.cat([pred, gt], 2).flatten(0, 1).requires_grad_()  # [V,6,H,W]
    p = parts.flatten(0, 1).clone()
    p[0, 0:5, 0:7] = LHAND  # a part touching the image corner: zero-padded square crop
    crops = L.part_crops(imgs, p, 24, crop_size=24, min_pixels=16)
    counts, _ = L.part_pixel_stats(p, 24)
    keep = counts >= 16
    assert crops.images.shape == (int(keep.sum()), 6, 24, 24)
    assert torch.equal(crops.pixels, counts[crops.view, crops.part])
    # gradient of crop k reaches exactly the pixels of its part in its view
    for k in range(0, crops.images.shape[0], 3):
        (g,) = torch.autograd.grad(crops.images[k].sum(), imgs, retain_graph=True)
        touched = g.abs().sum(1) > 0  # [V,H,W]
        expect = torch.zeros_like(touched)
        expect[crops.view[k]] = p[crops.view[k]] == crops.part[k]
        assert torch.equal(touched, expect)


def test_lh_perceptual_is_pixel_weighted_mean_over_crops(effnet):
    # one sample, two views of level 1, one part: term = l_1 l_j/(n m) * sum_v N_v/sum N d_v
    pred, gt, parts, *_ = _batch()
    pred, gt = pred[:1, :2], gt[:1, :2]
    parts = torch.full((1, 2, H, W), -1, dtype=torch.long)
    parts[0, 0, 5:25, 5:20] = HEAD
    parts[0, 1, 10:40, 10:40] = HEAD
    level = torch.tensor([[1, 1]])
    _, terms = L.hierarchical_loss(pred, gt, parts, level, effnet, crop_size=32, lambda_p=1.0)
    crops = L.part_crops(torch.cat([pred, gt], 2)[0], parts[0], 24, crop_size=32)
    d = effnet(crops.images[:, :3], crops.images[:, 3:], reduction="none")
    w = crops.pixels.float() / crops.pixels.sum()
    expect = 1.0 * 2.0 / (3 * 24) * (w * d).sum()
    assert torch.allclose(terms["h/perceptual[effnet-lite0]"], expect, rtol=1e-5)


def test_reconstruction_loss_matches_formula(effnet):
    pred, gt, _, _, alpha, mask = _batch()
    total, terms = L.reconstruction_loss(pred, gt, alpha, mask, effnet, lambda_m=0.5, lambda_p=2.0)
    mse = sum(((pred[:, t] - gt[:, t]) ** 2).mean(dim=(1, 2, 3)) for t in range(T)).mean()
    mmse = sum(((alpha[:, t, 0] - mask[:, t]) ** 2).mean(dim=(1, 2)) for t in range(T)).mean()
    perc = sum(effnet(pred[:, t], gt[:, t], reduction="none") for t in range(T)).mean()
    assert torch.allclose(terms["rec/mse"], mse) and torch.allclose(terms["rec/mask_mse"], mmse)
    assert torch.allclose(terms["rec/perceptual[effnet-lite0]"], perc, rtol=1e-5)
    assert torch.allclose(total, mse + 0.5 * mmse + 2.0 * perc, rtol=1e-5)
    # [B,T,1,H,W] masks are accepted too; lambda 0 skips a term entirely
    t2, terms2 = L.reconstruction_loss(
        pred, gt, alpha, mask.unsqueeze(2), None, lambda_m=0.0, lambda_p=0.0
    )
    assert set(terms2) == {"rec/mse", "rec/total"} and torch.allclose(t2, mse)
    with pytest.raises(ValueError, match="perceptual is None"):
        L.reconstruction_loss(pred, gt, alpha, mask, None)


def test_total_loss_switches(effnet):
    pred, gt, parts, level, alpha, mask = _batch()
    cfg = L.LossConfig(perceptual_in_lh=False, crop_size=32)
    x = pred.clone().requires_grad_()
    tot, terms = L.total_loss(x, gt, alpha, mask, parts, level, effnet, cfg)
    rec, _ = L.reconstruction_loss(pred, gt, alpha, mask, effnet)
    h, _ = L.hierarchical_loss(pred, gt, parts, level, None, perceptual_in_lh=False)
    assert torch.allclose(tot, rec + h, rtol=1e-6) and torch.allclose(terms["loss"], tot.detach())
    tot.backward()
    assert torch.isfinite(x.grad).all()
    off, terms_off = L.total_loss(
        pred, gt, alpha, mask, None, None, effnet, L.LossConfig(use_hierarchical=False)
    )
    assert torch.allclose(off, rec) and not any(k.startswith("h/") for k in terms_off)
    h_only, t_h = L.total_loss(
        pred,
        gt,
        alpha,
        mask,
        parts,
        level,
        effnet,
        L.LossConfig(use_reconstruction=False, crop_size=32),
    )
    assert "h/perceptual[effnet-lite0]" in t_h and not any(k.startswith("rec/") for k in t_h)
    with pytest.raises(ConfigError):
        L.LossConfig(use_reconstruction=False, use_hierarchical=False)
    with pytest.raises(ValueError, match="gt_parts and level"):
        L.total_loss(pred, gt, alpha, mask, None, None, effnet)


@pytest.mark.parametrize(
    "field,bad,match",
    [
        ("pred_rgb", torch.rand(B, T, 4, H, W), "pred_rgb"),
        ("gt_parts", torch.zeros(B, T, H, W), "gt_parts"),
        ("gt_parts", torch.full((B, T, H, W), 24, dtype=torch.long), "gt_parts values"),
        ("level", torch.full((B, T), 3, dtype=torch.long), "level values"),
        ("level", torch.zeros(B, dtype=torch.long), "level must"),
    ],
)
def test_hierarchical_bad_input_names_the_argument(field, bad, match):
    pred, gt, parts, level, *_ = _batch()
    args = dict(pred_rgb=pred, gt_rgb=gt, gt_parts=parts, level=level)
    args[field] = bad
    with pytest.raises(ValueError, match=match):
        L.hierarchical_loss(**args, perceptual_in_lh=False)


def test_weights_are_validated():
    pred, gt, parts, level, *_ = _batch()
    with pytest.raises(ValueError, match="part_weights"):
        L.hierarchical_loss(
            pred, gt, parts, level, part_weights=[1.0, -1.0], perceptual_in_lh=False
        )
