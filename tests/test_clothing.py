"""The clothed body (humansplat.prior.clothing): grown to the person's silhouette, as deep as
it grows wide, tight where the clothes are tight, and better than the naked body from the
sides of a synthetic dressed person (against that person's true masks)."""

import pytest
import torch

from humansplat import cameras as cam
from humansplat.errors import ConfigError
from humansplat.metrics import mask_iou
from humansplat.prior.clothing import ClothingConfig, clothe_body
from humansplat.prior.parts import PART_NAMES
from humansplat.render.mesh import rasterize_mesh
from meshes import uv_sphere

TORSO = PART_NAMES.index("spine2")


def silhouette(vertices, faces, camera, S):
    r = rasterize_mesh(vertices, faces, camera.viewmats[0], camera.Ks[0], S, S)
    return (r.face_ids >= 0).float()


S = 128


@pytest.fixture()
def views():
    front = cam.orbit_cameras([0.0], width=S, height=S)
    side = cam.orbit_cameras([90.0], width=S, height=S)
    return front, side


def test_a_body_grows_to_its_silhouette_and_as_deep_as_it_grows_wide(views):
    front, side = views
    V, F = uv_sphere(0.10)
    big, Fb = uv_sphere(0.16)  # the "dressed" person: 6 cm of cloth all round
    mask = silhouette(big, Fb, front, S)[None]
    labels = torch.full((len(V),), TORSO)
    res = clothe_body(V, F, labels, front, mask, ClothingConfig(resolution=S),
                      part_names=PART_NAMES)
    naked_front = mask_iou(silhouette(V, F, front, S), mask[0])
    assert naked_front < 0.5
    assert mask_iou(silhouette(res.vertices, F, front, S), mask[0]) > 0.9
    # the hidden depth: from the side the clothed body is as big as the dressed one
    truth_side = silhouette(big, Fb, side, S)
    assert mask_iou(silhouette(V, F, side, S), truth_side) < 0.5
    assert mask_iou(silhouette(res.vertices, F, side, S), truth_side) > 0.85
    assert res.rim.any() and 0.04 < float(res.offsets.median()) < 0.08


def test_tight_clothes_stay_on_the_body(views):
    front, _ = views
    V, F = uv_sphere(0.12)
    mask = silhouette(V, F, front, S)[None]
    res = clothe_body(V, F, torch.full((len(V),), TORSO), front, mask,
                      ClothingConfig(resolution=S), part_names=PART_NAMES)
    assert float(res.offsets.max()) < 0.01


def test_a_body_wider_than_the_person_shrinks_only_when_asked(views):
    front, _ = views
    V, F = uv_sphere(0.14)
    small, Fs = uv_sphere(0.12)  # the fit came out 2 cm too wide
    mask = silhouette(small, Fs, front, S)[None]
    torso = torch.full((len(V),), TORSO)
    grow = clothe_body(V, F, torso, front, mask, ClothingConfig(resolution=S),
                       part_names=PART_NAMES)
    assert float(grow.offsets.min()) >= 0.0
    res = clothe_body(V, F, torso, front, mask, ClothingConfig(resolution=S, max_shrink=0.04),
                      part_names=PART_NAMES)
    assert -0.03 < float(res.offsets.median()) < -0.01
    assert mask_iou(silhouette(res.vertices, F, front, S), mask[0]) > \
        mask_iou(silhouette(V, F, front, S), mask[0]) + 0.05


def test_hands_do_not_swell_into_what_they_hold(views):
    front, _ = views
    V, F = uv_sphere(0.05)
    big, Fb = uv_sphere(0.15)  # a ball held in the hand
    mask = silhouette(big, Fb, front, S)[None]
    hand = torch.full((len(V),), PART_NAMES.index("left_hand"))
    cfg = ClothingConfig(resolution=S)
    res = clothe_body(V, F, hand, front, mask, cfg, part_names=PART_NAMES)
    assert float(res.offsets.max()) <= cfg.extremity_max + 1e-6
    off = clothe_body(V, F, hand, front, mask, ClothingConfig(enabled=False))
    assert torch.equal(off.vertices, V) and float(off.offsets.abs().max()) == 0.0


def test_a_held_thing_of_another_colour_is_not_clothing(views):
    """Beyond the body's left rim the mask shows the garment's colour (a coat), beyond its
    right rim something black (a held helmet): with the colour stop only the coat grows."""
    front, side = views
    V, F = uv_sphere(0.10)
    big, Fb = uv_sphere(0.16)
    mask = silhouette(big, Fb, front, S)[None]
    body = silhouette(V, F, front, S)
    orange = torch.tensor([0.9, 0.4, 0.15])[:, None, None]
    right = (torch.arange(S) >= S // 2)[None, :].expand(S, S)
    image = torch.where((right & (body == 0))[None], torch.zeros(3, 1, 1), orange)
    labels = torch.full((len(V),), TORSO)
    xs = V @ front.viewmats[0, :3, :3].T  # camera x: + is the image's right
    on_left, on_right = xs[:, 0] < -0.07, xs[:, 0] > 0.07
    plain = clothe_body(V, F, labels, front, mask, ClothingConfig(resolution=S),
                        part_names=PART_NAMES, image=image)
    assert float(plain.offsets[on_right].median()) > 0.04  # the helmet swells the body
    cfg = ClothingConfig(resolution=S, colour_stop=0.3)
    res = clothe_body(V, F, labels, front, mask, cfg, part_names=PART_NAMES, image=image)
    assert float(res.offsets[on_left].median()) > 0.04
    assert float(res.offsets[on_right].median()) < 0.015
    # without the photo the setting cannot apply: the same as no colour stop
    blind = clothe_body(V, F, labels, front, mask, cfg, part_names=PART_NAMES)
    assert torch.allclose(blind.offsets, plain.offsets)


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="resolution"):
        ClothingConfig(resolution="256")
    with pytest.raises(ConfigError, match="shared_gap"):
        ClothingConfig(shared_gap=2.0)
    with pytest.raises(ConfigError, match="colour_stop"):
        ClothingConfig(colour_stop=-0.1)
    with pytest.raises(ConfigError, match="unknown clothing"):
        ClothingConfig.from_dict({"thickness": 1})
    assert ClothingConfig.from_dict({"max_offset": 1}).max_offset == 1.0
    from humansplat.pipeline.config import PipelineConfig

    assert PipelineConfig().clothing_config() == ClothingConfig()
    assert PipelineConfig(clothing=None).clothing_config() is None
    with pytest.raises(ConfigError, match="colour_stop"):
        ClothingConfig(colour_stop=-0.1)
    with pytest.raises(ConfigError, match="unknown clothing"):
        PipelineConfig(clothing={"thickness": 1})
    with pytest.raises(ConfigError, match="clothing"):
        PipelineConfig(clothing=[1])


def test_a_dress_keeps_its_volume_from_the_sides():
    """A synthetic person in a dress (its true target views are the reference): the prior
    rendered from the clothed body covers the person's side-view silhouette better than the
    naked body does, and loses nothing at the input view."""
    from humansplat.data.synthetic_humans import sample_subject, subject_seed
    from humansplat.front import synth_input
    from humansplat.train.dataset import SynthDataConfig, decode_sample, generate_subject
    from humansplat.eval.evaluate import body_fit_from_sample
    from humansplat.synth.projection import ProjectionSynthesizer

    index = next(i for i in range(40) if sample_subject(
        subject_seed(0, "hard", i), hard=True).outfit.bottom == "dress")
    cfg = SynthDataConfig(eval_views=(8, 0, 0), clothing=None)  # the naked body is stored
    s = decode_sample(generate_subject("hard", index, 0, cfg))
    fit = body_fit_from_sample(s, _anny())
    synth = ProjectionSynthesizer(_anny())
    R = s["target_rgb"].shape[-1]
    cams = cam.Cameras(s["target_viewmats"].float(), s["target_Ks"].float(), R, R)
    az = cam.view_azimuths(s["viewmats"][0], s["target_viewmats"]).abs()
    sides = [j for j in range(len(az)) if 45 <= az[j] <= 135]
    front = [j for j in range(len(az)) if az[j] < 1]
    gt = s["target_mask"].float()[:, 0]
    iou = {}
    for name, clothing in (("naked", None), ("clothed", {})):
        inp = synth_input(s["input_image"].float(), s["input_mask"].float(), fit, clothing)
        _, alpha = synth.render(synth.texture(inp), cams, R, with_alpha=True)
        iou[name] = {k: sum(mask_iou(alpha[j], gt[j]) for j in js) / len(js)
                     for k, js in (("sides", sides), ("front", front))}
    assert iou["clothed"]["sides"] > iou["naked"]["sides"] + 0.05, iou
    assert iou["clothed"]["front"] > iou["naked"]["front"] - 0.01, iou


def test_data_sets_record_the_body_they_give_the_model():
    from humansplat.train.dataset import SynthDataConfig

    assert SynthDataConfig().clothing == {}  # new data: the clothed body, as the pipeline
    old = SynthDataConfig().to_json()
    del old["clothing"]  # a data set made before clothing existed stored the naked body
    assert SynthDataConfig.from_json(old).clothing is None
    naked = SynthDataConfig(clothing=None).to_json()
    assert SynthDataConfig.from_json(naked).clothing is None


_BODY = []


def _anny():
    if not _BODY:
        from humansplat.prior.body import AnnyBody

        _BODY.append(AnnyBody())
    return _BODY[0]


def test_gaussian_blur_is_normalised_separable_and_zero_outside():
    from humansplat.image_filters import gaussian_blur

    x = torch.zeros(2, 21, 21)
    x[:, 10, 10] = 1.0
    y = gaussian_blur(x, 1.5)
    assert y.shape == x.shape and torch.allclose(y.sum((1, 2)), torch.ones(2))
    g = torch.exp(-0.5 * (torch.arange(-5, 6).float() / 1.5) ** 2)
    g = g / g.sum()
    assert torch.allclose(y[0, 5:16, 5:16], g[:, None] * g[None, :], atol=1e-6)
    edge = gaussian_blur(torch.ones(1, 9, 9), 1.0)
    assert edge[0, 4, 4] == pytest.approx(1.0) and edge[0, 0, 0] < 0.6  # zero beyond the edge
