"""The ViewSynthesizer contract (input checks, output checks, info) and the latent spaces."""

import pytest
import torch

from humansplat import cameras as cam
from humansplat.errors import ConfigError, MissingWeightsError
from humansplat.synth.base import SynthInput, SynthOutput, ViewSynthesizer
from humansplat.latent_space import PixelSpace, SDVAESpace, resize_images

S = 32


def _inp(**over):
    kw = dict(image=torch.rand(3, S, S), mask=torch.ones(1, S, S),
              input_camera=cam.orbit_cameras([0.0], width=S, height=S),
              target_cameras=cam.orthogonal_views(width=S, height=S))
    kw.update(over)
    return SynthInput(**kw)


@pytest.mark.parametrize("over,match", [
    (dict(image=torch.rand(4, S, S)), "SynthInput.image"),
    (dict(image=torch.rand(3, S, S + 2)), "SynthInput.image"),
    (dict(image=torch.rand(3, S, S) * 2), r"SynthInput.image must lie in \[0,1\]"),
    (dict(image=torch.full((3, S, S), float("nan"))), "NaN"),
    (dict(image=torch.randint(0, 2, (3, S, S))), "float"),
    (dict(mask=torch.ones(1, S // 2, S // 2)), "SynthInput.mask size"),
    (dict(input_camera=cam.orthogonal_views(width=S, height=S)), "input_camera"),
])
def test_synth_input_rejects_bad_arguments(over, match):
    with pytest.raises(ValueError, match=match):
        _inp(**over)


def test_target_angles_need_orbit_cameras():
    c = cam.orthogonal_views(width=S, height=S)
    bare = cam.Cameras(c.viewmats, c.Ks, S, S)
    with pytest.raises(ConfigError, match="azimuths and elevations"):
        _inp(target_cameras=bare).target_angles()
    el, az = _inp().target_angles()
    assert az.tolist() == [0.0, 90.0, 180.0, 270.0] and el.tolist() == [0.0] * 4


class _Copier(ViewSynthesizer):
    """A test double: every view is the input image, in pixel space."""

    name = "copier"

    def __init__(self, channels_bug=False):
        self.space = PixelSpace()
        self.channels_bug = channels_bug

    def _synthesize(self, inp, *, seed, num_steps, guidance, progress):
        V = len(inp.target_cameras)
        imgs = inp.image[None].expand(V, -1, -1, -1).clone()
        feats = self.space.encode(imgs)
        if self.channels_bug:
            feats = feats[:, :2]
        if progress:
            progress(1, 1, "copy")
        return SynthOutput(feats, imgs, inp.target_cameras, "pixel", {"extra": 1})


def test_base_call_resolves_defaults_and_records_info():
    seen = []
    out = _Copier()(_inp(), seed=4, progress=lambda *a: seen.append(a))
    assert seen == [(1, 1, "copy")] and len(out) == 4
    assert out.info["synthesizer"] == "copier" and out.info["space"] == "pixel"
    assert out.info["seed"] == 4 and out.info["extra"] == 1 and out.info["seconds"] >= 0
    with pytest.raises(ValueError, match="seed"):
        _Copier()(_inp(), seed=1.5)
    with pytest.raises(ValueError, match="num_steps"):
        _Copier()(_inp(), num_steps=0)
    with pytest.raises(RuntimeError, match="channels"):
        _Copier(channels_bug=True)(_inp())


def test_synth_output_checks_consistency():
    c = cam.orthogonal_views(width=S, height=S)
    with pytest.raises(ValueError, match="same number of views"):
        SynthOutput(torch.zeros(3, 3, S, S), torch.zeros(4, 3, S, S), c, "pixel")
    with pytest.raises(ValueError, match="space"):
        SynthOutput(torch.zeros(4, 3, S, S), torch.zeros(4, 3, S, S), c, "rgb")
    with pytest.raises(ValueError, match="previews are"):
        SynthOutput(torch.zeros(4, 3, 8, 8), torch.zeros(4, 3, 8, 8), c, "pixel")


# --- latent spaces -----------------------------------------------------------------------------

def test_pixel_space_is_the_identity_and_resizes():
    x = torch.rand(2, 3, S, S)
    sp = PixelSpace()
    assert torch.equal(sp.encode(x), x) and torch.equal(sp.decode(x), x)
    assert sp.feature_size(S) == S and sp.channels == 3
    small = PixelSpace(size=16)
    f = small.encode(x)
    assert f.shape == (2, 3, 16, 16) and small.feature_size(S) == 16
    # Shrinking is antialiased: a pixel checkerboard averages to grey instead of aliasing
    # to one of its colours; a constant image stays constant.
    checker = ((torch.arange(S)[:, None] + torch.arange(S)[None]) % 2).float().expand(1, 3, S, S)
    assert torch.allclose(resize_images(checker, 8), torch.full((1, 3, 8, 8), 0.5), atol=0.05)
    assert torch.allclose(resize_images(torch.full((1, 3, S, S), 0.3), 8), torch.tensor(0.3))
    with pytest.raises(ValueError, match="images"):
        sp.encode(torch.rand(2, 4, S, S))


TINY_VAE = dict(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4,
                norm_num_groups=32)


@pytest.fixture(scope="module")
def vae_space():
    return SDVAESpace.from_config(TINY_VAE, chunk_size=3)


def test_sd_vae_space_scales_latents_and_chunks(vae_space):
    x = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    z = vae_space.encode(x)
    assert z.shape == (5, 4, 8, 8) and vae_space.scaling_factor == pytest.approx(0.18215)
    # Reference straight from diffusers: posterior mode of 2x-1, times the scaling factor.
    with torch.no_grad():
        ref = vae_space.vae.encode(x * 2 - 1).latent_dist.mode() * 0.18215
    assert torch.allclose(z, ref, atol=1e-5)
    assert torch.allclose(vae_space.encode(x, unscaled=True) * 0.18215, z, atol=1e-6)
    img = vae_space.decode(z)  # chunks of 3 + 2
    with torch.no_grad():
        ref_img = ((vae_space.vae.decode(z / 0.18215).sample + 1) / 2).clamp(0, 1)
    assert img.shape == (5, 3, 16, 16) and torch.allclose(img, ref_img, atol=1e-5)
    with pytest.raises(ValueError, match="multiple"):
        vae_space.encode(torch.rand(1, 3, 15, 15))
    with pytest.raises(ValueError, match=r"features must be \[B,4,h,w\]"):
        vae_space.decode(torch.rand(1, 3, 8, 8))


def test_sd_vae_space_temporal_decoder_gets_frame_count():
    from diffusers import AutoencoderKLTemporalDecoder

    cfg = dict(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2,
               layers_per_block=1, latent_channels=4)
    sp = SDVAESpace.from_config(cfg, temporal=True, chunk_size=4)
    assert isinstance(sp.vae, AutoencoderKLTemporalDecoder) and sp.temporal
    z = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = ((sp.vae.decode(z / sp.scaling_factor, num_frames=4).sample + 1) / 2).clamp(0, 1)
    assert torch.allclose(sp.decode(z), ref, atol=1e-5)


def test_sd_vae_space_missing_weights(tmp_path):
    with pytest.raises(MissingWeightsError, match="SD-VAE weights not found"):
        SDVAESpace.from_pretrained(str(tmp_path / "nope"))
    with pytest.raises(MissingWeightsError, match="stabilityai/sd-vae-ft-mse"):
        SDVAESpace.from_pretrained(local_files_only=True)
