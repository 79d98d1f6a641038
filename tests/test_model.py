"""The reconstruction transformer: outputs, gradients, learning, Hub round trip, bad input."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from humansplat.cameras import project_points
from humansplat.config import PRESETS, ModelConfig, get_preset
from humansplat.errors import ConfigError, MissingWeightsError
from humansplat.gaussians import Gaussians
from humansplat.model import LatentReconstructionTransformer
from humansplat.model.dummy_inputs import capsule_body, synthetic_inputs
from humansplat.render import rasterize

from torch_threads import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")
MICRO = get_preset("micro")


def _model(cfg=MICRO, seed=0):
    torch.manual_seed(seed)
    return LatentReconstructionTransformer(cfg)


# -- outputs -------------------------------------------------------------------------------
def test_outputs_have_the_configured_count_and_bounded_values():
    cfg = MICRO
    x = synthetic_inputs(cfg, batch_size=2, n_body_vertices=500)
    out = _model(cfg)(**x.as_kwargs())
    N = cfg.n_views * cfg.gaussian_grid ** 2
    assert len(out) == N == cfg.n_gaussians and out.batch_size == 2
    assert out.means.shape == (2, N, 3) and out.part_logits.shape == (2, N, 24)
    assert out.raw.shape == (2, N, cfg.raw_channels) and cfg.raw_channels == 14 + 24
    assert (out.depths >= cfg.near).all() and (out.depths <= cfg.far).all()
    assert (out.scales >= cfg.scale_min).all() and (out.scales <= cfg.scale_max).all()
    assert torch.allclose(out.quats.norm(dim=-1), torch.ones(2, N), atol=1e-5)
    assert ((out.opacities > 0) & (out.opacities < 1)).all()
    assert ((out.colors >= 0) & (out.colors <= 1)).all()
    g = out.gaussians(1)
    assert isinstance(g, Gaussians) and len(g) == N
    assert g.labels.dtype == torch.int64 and int(g.labels.max()) < 24
    assert out.window_stats.n_active_queries > 0


def test_gaussians_are_pixel_aligned():
    """With no sideways offset each Gaussian projects onto its own pixel centre of its view
    (at the Gaussian-grid resolution), in the documented order."""
    cfg = MICRO.replace(max_offset=0.0, gaussians_from="generated")
    x = synthetic_inputs(cfg, batch_size=1, n_body_vertices=300)
    out = _model(cfg)(**x.as_kwargs())
    G, ids = cfg.gaussian_grid, out.view_ids
    assert ids == tuple(v for v in range(cfg.n_views) if v != cfg.input_view)
    means = out.means[0].reshape(len(ids), G * G, 3)
    Ks = x.Ks[0, list(ids)].clone()
    Ks[:, :2] *= G / cfg.image_size
    uv, z = project_points(means, x.viewmats[0, list(ids)], Ks)
    v, u = torch.meshgrid(torch.arange(G) + 0.5, torch.arange(G) + 0.5, indexing="ij")
    centres = torch.stack([u, v], -1).reshape(1, G * G, 2).expand_as(uv)
    torch.testing.assert_close(uv, centres, atol=1e-3, rtol=0)
    assert (z > 0).all()


@pytest.mark.parametrize("k_win", [None, 1, 2, 3, 4])
def test_every_window_size_runs(k_win):
    cfg = MICRO.replace(k_win=k_win)
    x = synthetic_inputs(cfg, n_body_vertices=200)
    out = _model(cfg)(**x.as_kwargs())
    assert torch.isfinite(out.raw).all()
    assert (out.window_stats is None) == (k_win is None)


def test_human_prior_off_needs_no_body_and_has_no_body_branch():
    cfg = MICRO.replace(use_human_prior=False)
    m = _model(cfg)
    assert m.body_tokenizer is None and len(m.inter) == 0
    assert not any("body" in n or "inter" in n for n, _ in m.named_parameters())
    x = synthetic_inputs(cfg)
    out = m(x.views, x.viewmats, x.Ks)
    assert torch.isfinite(out.raw).all() and out.window_stats is None


def test_window_changes_what_the_body_contributes():
    """The window must matter: a body seen by the views changes the output; a body outside
    every view's image reaches no view token, whatever it is."""
    cfg = MICRO
    m = _model(cfg)
    x = synthetic_inputs(cfg, n_body_vertices=200)
    far = x.body_vertices + torch.tensor([0.0, 50.0, 0.0])  # above every image
    a = m(**x.as_kwargs())
    x.body_vertices = far
    b = m(**x.as_kwargs())
    assert b.window_stats.n_active_queries == 0
    assert not torch.allclose(a.raw, b.raw)
    x.body_vertices = far * torch.tensor([1.5, 1.0, -1.0])  # another body, also unseen
    c = m(**x.as_kwargs())
    assert torch.equal(b.raw, c.raw)  # unseen body tokens cannot reach any view token


# -- learning --------------------------------------------------------------------------
def test_gradients_reach_every_parameter():
    cfg = MICRO.replace(n_intra=2, n_body_blocks=2, n_inter=2)
    m = _model(cfg)
    m.train()
    x = synthetic_inputs(cfg, batch_size=2, n_body_vertices=400)
    out = m(**x.as_kwargs())
    g = torch.Generator().manual_seed(0)
    loss = sum((t * torch.randn(t.shape, generator=g)).sum()
               for t in (out.means, out.quats, out.scales, out.opacities, out.colors,
                         out.part_logits))
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing, f"no gradient reaches {missing}"


def test_gradient_checkpointing_gives_the_same_outputs_and_gradients():
    x = synthetic_inputs(MICRO, n_body_vertices=200)
    results = []
    for ckpt in (False, True):
        m = _model(MICRO.replace(grad_checkpointing=ckpt))
        m.train()
        out = m(**x.as_kwargs())
        out.raw.square().mean().backward()
        results.append((out.raw.detach(), [p.grad.clone() for p in m.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_tiny_model_overfits_one_example():
    """Rendered through humansplat.render.rasterize, the model's Gaussians learn to
    reproduce 4 views of a fixed Gaussian figure: the image loss falls by 10x."""
    cfg = MICRO.replace(gaussians_from="generated")
    m = _model(cfg)
    m.train()
    x = synthetic_inputs(cfg, n_body_vertices=300, seed=3)
    views = list(m.output_views(x.input_view))
    vm, Ks, S = x.viewmats[0, views], x.Ks[0, views], cfg.image_size
    pts = capsule_body(400, seed=5)
    quats = torch.zeros(400, 4)
    quats[:, 0] = 1
    with torch.no_grad():
        target, _, _ = rasterize(pts, quats, torch.full((400, 3), 0.05),
                                 torch.full((400,), 0.9), 0.5 + 0.5 * torch.sin(4 * pts),
                                 vm, Ks, S, S, backend="torch")
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(120):
        g = m(**x.as_kwargs()).gaussians(0)
        img, _, _ = rasterize(g.means, g.quats, g.scales, g.opacities, g.colors, vm, Ks, S, S,
                              backend="torch")
        loss = (img - target).square().mean()
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert min(losses[-5:]) < losses[0] / 10, (losses[0], losses[-5:])


# -- Hub -----------------------------------------------------------------------------------
def test_save_and_from_pretrained_round_trip(tmp_path):
    m = _model()
    m.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "model.safetensors",
                                                    "README.md"}
    saved = json.loads((tmp_path / "config.json").read_text())
    assert ModelConfig.from_dict(saved) == MICRO
    card = (tmp_path / "README.md").read_text()
    assert "pipeline_tag: image-to-3d" in card and "license: mit" in card
    assert "arxiv.org/abs/2406.12459" in card
    loaded = LatentReconstructionTransformer.from_pretrained(tmp_path)
    assert loaded.config == MICRO
    x = synthetic_inputs(MICRO, n_body_vertices=200)
    m.eval()
    with torch.no_grad():
        a, b = m(**x.as_kwargs()), loaded(**x.as_kwargs())
    assert torch.equal(a.raw, b.raw) and torch.equal(a.means, b.means)


@pytest.mark.parametrize("damage", ["missing", "unexpected", "wrong_shape"])
def test_from_pretrained_is_strict(tmp_path, damage):
    _model().save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    sd = load_file(path)
    if damage == "missing":
        sd.pop("head.proj.weight")
    elif damage == "unexpected":
        sd["head.extra"] = torch.zeros(3)
    else:
        sd["head.proj.bias"] = torch.zeros(5)
    save_file(sd, path)
    with pytest.raises(RuntimeError, match=r"head\.(proj|extra)"):
        LatentReconstructionTransformer.from_pretrained(tmp_path)


def test_from_pretrained_without_weights_or_with_a_bad_config(tmp_path):
    _model().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(MissingWeightsError, match="model.safetensors"):
        LatentReconstructionTransformer.from_pretrained(tmp_path)
    _model().save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["n_layers"] = 3
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="n_layers"):
        LatentReconstructionTransformer.from_pretrained(tmp_path)


# -- bad input -------------------------------------------------------------------------
def _bad(kind, x):
    kw = x.as_kwargs()
    if kind == "view_count":
        kw["views"] = kw["views"][:, :3]
    elif kind == "resolution":
        kw["views"] = torch.nn.functional.interpolate(kw["views"][0], size=(16, 16))[None]
    elif kind == "channels":
        kw["views"] = torch.cat([kw["views"], kw["views"][:, :, :1]], 2)
    elif kind == "camera_count":
        kw["viewmats"] = kw["viewmats"][:, :4]
    elif kind == "intrinsics_size":
        kw["Ks"] = kw["Ks"] * torch.tensor([[4.0], [4.0], [1.0]])  # Ks of a 4x larger image
    elif kind == "no_body":
        kw["body_vertices"] = None
    elif kind == "body_shape":
        kw["body_vertices"] = kw["body_vertices"][..., :2]
    elif kind == "input_view":
        kw["input_view"] = 7
    return kw


@pytest.mark.parametrize("kind, error, words", [
    ("view_count", ConfigError, "expected 5 views"),
    ("resolution", ConfigError, "expected shape [1, 5, 3, 32, 32]"),
    ("channels", ConfigError, "expected shape [1, 5, 3, 32, 32]"),
    ("camera_count", ConfigError, "viewmats: expected [B,V,4,4] = [1, 5, 4, 4]"),
    ("intrinsics_size", ConfigError, "32 px image"),
    ("no_body", ConfigError, "body_vertices [B,L_H,3] is required"),
    ("body_shape", ConfigError, "body_vertices: expected [B,L_H,3]"),
    ("input_view", ValueError, "input_view must be an int in [0, 5)"),
])
def test_bad_input_is_named(kind, error, words):
    m = _model()
    x = synthetic_inputs(MICRO, n_body_vertices=50)
    with pytest.raises(error) as e:
        m(**_bad(kind, x))
    assert words in str(e.value)


# -- config ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    cfg = get_preset(name)
    assert ModelConfig.from_json(cfg.to_json()) == cfg


def test_paper_preset_matches_the_paper():
    cfg = get_preset("paper")
    assert (cfg.space, cfg.image_size, cfg.feature_size, cfg.in_channels) == (
        "latent", 512, 64, 4)
    assert cfg.grid == 64 and cfg.k_win == 2 and cfg.n_gaussians == 65_536
    tiny = get_preset("tiny")
    assert tiny.space == "pixel" and tiny.n_views * tiny.tokens_per_view <= 4096


@pytest.mark.parametrize("changes, field", [
    ({"patch_size": 5}, "patch_size"),
    ({"dim": 30, "heads": 4}, "heads"),
    ({"k_win": 0}, "k_win"),
    ({"near": 3.0, "far": 2.0}, "near"),
    ({"space": "voxel"}, "space"),
    ({"feature_size": 16}, "feature_size"),  # pixel space must read the image itself
    ({"autocast": "fp8"}, "autocast"),
    ({"n_inter": 0}, "n_inter"),  # body tokens nobody attends to
])
def test_invalid_configs_are_named(changes, field):
    with pytest.raises(ConfigError, match=field):
        MICRO.replace(**changes)
