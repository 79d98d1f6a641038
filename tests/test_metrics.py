"""PSNR / SSIM against scikit-image; MetricSet bookkeeping."""

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.filters import gaussian
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from humansplat.eval.metrics import PSNR_CAP_DB, MetricSet, psnr, ssim
from humansplat.train.perceptual import EfficientNetLite0Perceptual


def _pairs():
    """(name, gt HWC, pred HWC) in [0,1], float64: random, natural photo with noise/blur, grey."""
    rng = np.random.default_rng(0)
    photo = skdata.astronaut()[64:160, 180:300].astype(np.float64) / 255  # 96 x 120, non-square
    cat = skdata.chelsea()[:80, :64].astype(np.float64) / 255
    return [
        ("random", rng.random((40, 37, 3)), rng.random((40, 37, 3))),
        ("photo_noise", photo, np.clip(photo + rng.normal(0, 0.05, photo.shape), 0, 1)),
        ("photo_blur", photo, gaussian(photo, sigma=1.5, channel_axis=-1)),
        ("photo_shift", cat, np.roll(cat, 2, axis=1)),
        ("grey", photo[..., :1], np.clip(photo[..., :1] * 0.8 + 0.1, 0, 1)),
    ]


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()


@pytest.mark.parametrize("name,gt,pred", _pairs(), ids=[p[0] for p in _pairs()])
def test_psnr_ssim_match_skimage(name, gt, pred):
    ref_psnr = peak_signal_noise_ratio(gt, pred, data_range=1.0)
    ref_ssim = structural_similarity(
        gt,
        pred,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=-1,
    )
    assert psnr(_t(pred), _t(gt)).item() == pytest.approx(ref_psnr, abs=1e-4)
    assert ssim(_t(pred), _t(gt)).item() == pytest.approx(ref_ssim, abs=1e-4)


def test_batched_values_are_per_image():
    pairs = [p for p in _pairs() if p[1].shape == (96, 120, 3)]
    pred = torch.cat([_t(p[2]) for p in pairs])
    gt = torch.cat([_t(p[1]) for p in pairs])
    assert torch.allclose(
        ssim(pred, gt), torch.cat([ssim(pred[i : i + 1], gt[i : i + 1]) for i in range(len(pairs))])
    )
    assert psnr(pred, gt).shape == (len(pairs),)


def test_masked_psnr_matches_skimage_on_the_masked_pixels():
    _, gt, pred = _pairs()[1]
    mask = np.zeros(gt.shape[:2], bool)
    mask[10:60, 30:90] = True
    ref = peak_signal_noise_ratio(gt[mask], pred[mask], data_range=1.0)
    got = psnr(_t(pred), _t(gt), mask=torch.from_numpy(mask)[None])
    assert got.item() == pytest.approx(ref, abs=1e-4)
    with pytest.raises(ValueError, match="mask is empty"):
        psnr(_t(pred), _t(gt), mask=torch.zeros(1, *mask.shape))


def test_identical_images():
    x = _t(_pairs()[1][1])
    assert psnr(x, x.clone()).item() == PSNR_CAP_DB  # capped instead of inf
    assert ssim(x, x.clone()).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("fn", [psnr, ssim])
def test_bad_inputs(fn):
    with pytest.raises(ValueError, match="pred"):
        fn(torch.rand(3, 16, 16), torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="same shape"):
        fn(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))


def test_ssim_needs_the_window():
    with pytest.raises(ValueError, match="11x11"):
        ssim(torch.rand(1, 3, 10, 40), torch.rand(1, 3, 10, 40))


def test_metric_set():
    m = MetricSet(EfficientNetLite0Perceptual())
    torch.manual_seed(0)
    gt = torch.rand(3, 3, 32, 32)
    pred = gt.clone()
    pred[1:] = (pred[1:] + 0.1 * torch.randn_like(pred[1:])).clamp(0, 1)
    res = m(pred, gt)
    key = "perceptual[effnet-lite0]"
    assert m.perceptual_key == key
    assert len(res.per_image) == 3 and set(res.mean) == {"psnr", "ssim", key}
    assert res.per_image[0] == {
        "psnr": PSNR_CAP_DB,
        "ssim": pytest.approx(1.0),
        key: pytest.approx(0.0, abs=1e-6),
    }
    assert res.mean["psnr"] == pytest.approx(np.mean([r["psnr"] for r in res.per_image]))
    assert res.per_image[1]["psnr"] == pytest.approx(psnr(pred[1:2], gt[1:2]).item(), abs=1e-4)
    # accumulation across batches, masks adding psnr_masked where given
    m.update(pred[:2], gt[:2])
    m.update(pred[2:], gt[2:], mask=torch.ones(1, 32, 32))
    acc = m.result()
    assert len(acc.per_image) == 3
    assert acc.mean["ssim"] == pytest.approx(res.mean["ssim"])
    assert acc.mean["psnr_masked"] == pytest.approx(res.per_image[2]["psnr"], abs=1e-4)
    m.reset()
    assert m.result().per_image == []
    # out-of-range predictions are clamped like a saved image
    assert MetricSet()(gt + 5.0, torch.ones_like(gt)).mean["psnr"] == PSNR_CAP_DB


def test_mask_iou_one_threshold():
    from humansplat.metrics import MASK_THRESHOLD, mask_iou

    a = torch.zeros(4, 4)
    a[:2] = 1.0  # 8 covered
    b = torch.zeros(4, 4)
    b[1:3] = 0.9  # 8 covered, 4 shared
    assert mask_iou(a, b) == pytest.approx(4 / 12)
    edge = torch.full((4, 4), MASK_THRESHOLD)  # exactly at the threshold: not covered
    assert mask_iou(edge, torch.zeros(4, 4)) == 1.0  # both empty
    assert mask_iou(a.numpy(), b.numpy()) == mask_iou(a, b)  # arrays too
    with pytest.raises(ValueError, match="shapes differ"):
        mask_iou(a, b[:2])
