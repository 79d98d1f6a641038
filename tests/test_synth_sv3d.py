"""SV3D wiring without downloaded weights: tiny random configs on CPU, the real-size UNet on
the meta device, the single-file key mapping, and the missing-weights error."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from humansplat import cameras as cam
from humansplat.errors import MissingWeightsError
from humansplat.synth import sv3d_convert as conv
from humansplat.synth.base import SynthInput
from humansplat.synth.sv3d import (SV3D_CLIP_CONFIG, SV3D_UNET_CONFIG, SV3D_UNET_PARAMS,
                                   SV3D_VAE_CONFIG, SVD_UNET_PARAMS, SV3DPipeline,
                                   SV3DSynthesizer, SV3DUNet, edm_v_scalings, karras_sigmas,
                                   plan_frames, tiny_sv3d_configs, triangular_cfg_scales)

TINY = tiny_sv3d_configs()
RES = 16  # tiny VAE factor 2 -> 8x8 latents


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny ops are dominated by thread hand-off on the shared 2-core machine.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def pipe():
    return SV3DPipeline.from_configs(**TINY, seed=0)


def _input(size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(3, size, size, generator=g)
    mask = torch.zeros(1, size, size)
    mask[:, 4:-4, 8:-8] = 1.0
    return SynthInput(img, mask, cam.orbit_cameras([0.0], 0.0, width=size, height=size),
                      cam.orthogonal_views(width=size, height=size))


def _ref_sinusoid(x, dim):
    """sgm timestep_embedding, written from its definition: [cos(x f), sin(x f)],
    f_i = 10000^(-i / (dim/2))."""
    half = dim // 2
    f = np.exp(-math.log(10000.0) * np.arange(half) / half)
    a = np.asarray(x, dtype=np.float64)[:, None] * f[None]
    return torch.from_numpy(np.concatenate([np.cos(a), np.sin(a)], axis=1)).float()


# --- the sampler maths -------------------------------------------------------------------------

def test_karras_sigmas_and_step_match_diffusers_edm_scheduler():
    from diffusers import EulerDiscreteScheduler

    n = 7
    sch = EulerDiscreteScheduler(use_karras_sigmas=True, sigma_min=0.002, sigma_max=700.0,
                                 prediction_type="v_prediction", timestep_type="continuous",
                                 final_sigmas_type="zero")
    sch.set_timesteps(n)
    ours = karras_sigmas(n)
    assert torch.allclose(ours.float(), sch.sigmas, rtol=1e-5)
    assert float(ours[0]) == pytest.approx(700.0, rel=1e-12)
    assert float(ours[-2]) == pytest.approx(0.002, rel=1e-12) and ours[-1] == 0
    # c_noise = ln(sigma)/4 is what the scheduler feeds the UNet as timestep.
    c_noise = torch.tensor([edm_v_scalings(float(s))[3] for s in ours[:-1]])
    assert torch.allclose(c_noise.float(), sch.timesteps, atol=1e-5)
    # One Euler step on the same model output.
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)
    s0, s1 = float(ours[0]), float(ours[1])
    c_skip, c_out, c_in, _ = edm_v_scalings(s0)
    assert torch.allclose(sch.scale_model_input(x, sch.timesteps[0]), x * c_in)
    ref = sch.step(v, sch.timesteps[0], x).prev_sample
    D = c_skip * x + c_out * v
    assert torch.allclose(x + (x - D) / s0 * (s1 - s0), ref, atol=1e-4)


@pytest.mark.parametrize("sigma", [0.002, 0.5, 3.0, 700.0])
def test_v_scalings_recover_clean_sample_from_true_velocity(sigma):
    # x = x0 + s eps; in VP terms alpha = 1/sqrt(1+s^2), sigma_vp = s/sqrt(1+s^2),
    # v = alpha eps - sigma_vp x0: the denoiser must return x0 exactly.
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(2, 64, generator=g, dtype=torch.float64)
    x = x0 + sigma * eps
    a, b = 1 / math.sqrt(1 + sigma**2), sigma / math.sqrt(1 + sigma**2)
    c_skip, c_out, c_in, c_noise = edm_v_scalings(sigma)
    assert torch.allclose(c_in * x, a * x0 + b * eps)  # the VP noisy sample the UNet sees
    assert torch.allclose(c_skip * x + c_out * (a * eps - b * x0), x0)
    assert c_noise == pytest.approx(math.log(sigma) / 4)


def test_triangular_cfg_scales():
    T = 21
    s = triangular_cfg_scales(torch.linspace(0, 1, T), 1.0, 2.5)
    ref = [1.0 + 1.5 * (1.0 - abs(2.0 * i / (T - 1) - 1.0)) for i in range(T)]  # sgm triangle
    assert torch.allclose(s, torch.tensor(ref, dtype=s.dtype))
    assert s[0] == 1.0 and s[-1] == 1.0 and s[10] == 2.5
    assert torch.allclose(s, s.flip(0))
    # Four orthogonal views by azimuth: 1 at the input, 2.5 at the back.
    four = triangular_cfg_scales(torch.tensor([0, 90, 180, 270]) / 360.0, 1.0, 2.5)
    assert four.tolist() == pytest.approx([1.0, 1.75, 2.5, 1.75])


# --- which frames ------------------------------------------------------------------------------

def test_orbit_plan_for_public_weights():
    plan = plan_frames([0.0] * 4, [0.0, 90.0, 180.0, 270.0], input_elevation=0.0, num_frames=21)
    assert plan.orbit and plan.target_frames == [20, 4, 9, 15]
    sgm = np.linspace(0, 360, 22)[1:] % 360  # sgm default schedule; the input is last
    az = plan.azimuths_deg.numpy()
    assert az[20] == 0.0 and az[4] == 90.0 and az[9] == 180.0 and az[15] == 270.0
    untouched = [i for i in range(21) if i not in (4, 9, 15)]
    assert np.allclose(az[untouched], sgm[untouched])
    polar, azim = plan.sv3d_angles_rad()
    assert torch.allclose(polar, torch.full((21,), math.pi / 2, dtype=polar.dtype))
    assert float(azim[-1]) == 0.0 and float(azim[4]) == pytest.approx(math.pi / 2)


def test_orbit_plan_interpolates_elevation_and_keeps_input_last():
    plan = plan_frames([10.0, 0.0, 0.0, 0.0], [0.0, 90.0, 180.0, 270.0], input_elevation=10.0,
                       num_frames=21)
    el = plan.elevations_deg.numpy()
    assert el[20] == 10.0 and el[4] == 0.0 and el[9] == 0.0
    assert 0.0 < el[1] < 10.0  # between the input (360 = 0) and the 90-degree target
    # A target near (not at) the input azimuth may not take the input's frame.
    near = plan_frames([0.0], [5.0], num_frames=21)
    assert near.target_frames != [20] and float(near.azimuths_deg[20]) == 0.0


def test_direct_plan_uses_target_order_and_azimuth_cfg():
    plan = plan_frames([0.0] * 4, [0.0, 90.0, 180.0, 270.0], num_frames=4)
    assert not plan.orbit and plan.target_frames == [0, 1, 2, 3]
    assert plan.guidance_positions.tolist() == [0.0, 0.25, 0.5, 0.75]


# --- the UNet's per-frame camera conditioning ------------------------------------------------

def test_camera_embedding_is_per_frame_and_matches_reference(pipe):
    unet = pipe.unet
    T = 5
    az = torch.tensor([0.3, 1.1, 2.0, 3.9, 0.3])
    ids = torch.stack([torch.full((T,), 1e-5), torch.full((T,), math.pi / 2), az], -1)[None]
    e = unet.camera_embedding(ids)
    assert e.shape == (T, unet.time_embedding.linear_2.out_features)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(e[i], e[j]), (i, j)
    assert torch.allclose(e[0], e[4])  # same camera, same embedding
    d = unet.angle_embed_dim
    feats = torch.cat([_ref_sinusoid(ids[0, :, 0], unet.config.addition_time_embed_dim),
                       _ref_sinusoid(ids[0, :, 1], d), _ref_sinusoid(ids[0, :, 2], d)], -1)
    assert torch.allclose(e, unet.add_embedding(feats), atol=1e-5)


def test_forward_equals_stock_diffusers_when_frames_share_a_camera(pipe):
    from diffusers import UNetSpatioTemporalConditionModel

    unet = pipe.unet
    stock = UNetSpatioTemporalConditionModel(**TINY["unet_config"]).eval()
    stock.load_state_dict(unet.state_dict())
    g = torch.Generator().manual_seed(2)
    B, T = 2, 3
    x = torch.randn(B, T, 8, 8, 8, generator=g)
    ehs = torch.randn(B, 1, 16, generator=g)
    ids = torch.tensor([[1e-5, 1.2, 0.7], [0.02, 1.5, 2.5]])
    t = torch.tensor([0.3, -0.2])
    with torch.no_grad():
        ours = unet(x, t, ehs, ids[:, None].expand(B, T, 3)).sample
        ref = stock(x, t, ehs, ids).sample
        # Equal up to float32 reordering (the embedding MLP runs on B*T rows instead of B).
        assert torch.allclose(ours, ref, atol=1e-4)
        # Different cameras per frame change the frames' outputs.
        ids2 = ids[:, None].expand(B, T, 3).clone()
        ids2[:, 1, 2] += 1.0
        moved = unet(x, t, ehs, ids2).sample
    assert not torch.allclose(moved[:, 1], ours[:, 1], atol=1e-4)


# --- the full sampler --------------------------------------------------------------------------

@pytest.mark.parametrize("num_frames,frames", [(4, [0, 1, 2, 3]), (21, [20, 4, 9, 15])])
def test_sampler_runs_two_steps(pipe, num_frames, frames):
    syn = SV3DSynthesizer(pipe, num_frames=num_frames, resolution=RES, num_steps=2)
    calls = []
    out = syn(_input(), seed=3, progress=lambda i, n, m: calls.append((i, n)))
    assert out.features.shape == (4, 4, RES // 2, RES // 2) and out.space == "sd-vae"
    assert out.previews.shape == (4, 3, RES, RES)
    assert torch.isfinite(out.features).all()
    assert 0.0 <= float(out.previews.min()) and float(out.previews.max()) <= 1.0
    assert (out.cameras.width, out.cameras.height) == (RES, RES)
    assert out.info["frame_indices"] == frames and out.info["num_frames"] == num_frames
    assert out.info["steps"] == 2 and out.info["seed"] == 3 and out.info["seconds"] > 0
    assert calls == [(1, 3), (2, 3), (3, 3)]
    # The input view is the input itself; generated views are not.
    z_in = syn.space.encode(out.previews[:1])
    assert torch.allclose(out.features[0], z_in[0], atol=1e-4)
    again = syn(_input(), seed=3)
    other = syn(_input(), seed=4)
    assert torch.equal(again.features, out.features)
    assert not torch.allclose(other.features[1:], out.features[1:])


def test_target_azimuths_are_taken_in_the_input_cameras_orbit_frame(pipe):
    inp = _input()
    inp.input_camera = cam.orbit_cameras([30.0], 0.0, width=32, height=32)
    inp.target_cameras = cam.orthogonal_views(width=32, height=32, start_azimuth_deg=30.0)
    out = SV3DSynthesizer(pipe, num_frames=4, resolution=RES, num_steps=1)(inp)
    assert out.info["sv3d_azimuth_deg"] == [0.0, 90.0, 180.0, 270.0]
    assert out.info["input_view_replaced"] == [True, False, False, False]


def test_cfg_batched_equals_sequential_and_guidance_one_skips_uncond(pipe):
    batches = []
    hook = pipe.unet.register_forward_pre_hook(lambda m, a: batches.append(a[0].shape[0]))
    try:
        kw = dict(num_frames=4, resolution=RES, num_steps=2)
        a = SV3DSynthesizer(pipe, cfg_batch=True, **kw)(_input(), seed=5)
        b = SV3DSynthesizer(pipe, cfg_batch=False, **kw)(_input(), seed=5)
        assert batches == [2, 2, 1, 1, 1, 1]
        # Batch-size-dependent float32 kernels, amplified from sigma 700: ~1e-4 of ~1.
        assert torch.allclose(a.features, b.features, atol=2e-3)
        batches.clear()
        SV3DSynthesizer(pipe, **kw)(_input(), seed=5, guidance=1.0)
        assert batches == [1, 1]
    finally:
        hook.remove()


# --- the real-size model -----------------------------------------------------------------------

def test_real_size_models_on_meta_match_published_parameter_counts():
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    def count(m, pre=""):
        return sum(p.numel() for n, p in m.named_parameters() if n.startswith(pre))

    with torch.device("meta"):
        unet = SV3DUNet(**SV3D_UNET_CONFIG)
        svd = SV3DUNet(**dict(SV3D_UNET_CONFIG, projection_class_embeddings_input_dim=768))
    assert next(unet.parameters()).is_meta
    assert count(unet) == SV3D_UNET_PARAMS == 1_525_278_442
    # SVD's UNet as published (Ctrl-Crash, arXiv 2506.00227, Tab. G.6: 1,524,623,082).
    assert count(svd) == SVD_UNET_PARAMS == 1_524_623_082
    with init_empty_weights():
        vae = AutoencoderKLTemporalDecoder(**SV3D_VAE_CONFIG)
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**SV3D_CLIP_CONFIG))
    # Same table: VAE encoder 34,163,592 (+72 for quant_conv), decoder 63,579,183,
    # CLIP image encoder 632,076,800.
    assert count(vae, "encoder.") == 34_163_592 and count(vae, "quant_conv.") == 72
    assert count(vae, "decoder.") == 63_579_183
    assert count(clip) == 632_076_800
    # The key mapping covers the real-size models exactly, in both directions.
    orig = conv.to_original(unet=unet.state_dict(), vae=vae.state_dict(),
                            image_encoder=clip.state_dict(), unet_config=unet.config,
                            vae_config=vae.config, clip_num_layers=32)
    for key in ("model.diffusion_model.input_blocks.3.0.op.weight",
                "model.diffusion_model.output_blocks.2.1.conv.weight",
                "model.diffusion_model.output_blocks.5.2.conv.weight",
                "model.diffusion_model.input_blocks.1.1.time_stack.0.norm_in.weight",
                "model.diffusion_model.middle_block.1.time_pos_embed.0.weight",
                "model.diffusion_model.label_emb.0.0.weight",
                "first_stage_model.decoder.up.3.block.0.time_stack.in_layers.2.weight",
                "first_stage_model.decoder.conv_out.time_mix_conv.weight",
                "first_stage_model.decoder.mid.block_1.mix_factor",
                "conditioner.embedders.1.encoder.encoder.down.1.block.0.nin_shortcut.weight",
                "conditioner.embedders.0.open_clip.model.visual.transformer.resblocks.31.attn."
                "in_proj_weight"):
        assert key in orig, key
    assert orig["model.diffusion_model.label_emb.0.0.weight"].shape == (1280, 1280)
    back = conv.from_original(orig, unet_config=unet.config, vae_config=vae.config,
                              clip_num_layers=32)
    assert set(back.unet) == set(unet.state_dict()) and set(back.vae) == set(vae.state_dict())
    assert set(back.image_encoder) == set(clip.state_dict()) and back.unused == []


# --- single file and diffusers layout ----------------------------------------------------------

def _synthetic_single_file(pipe):
    orig = conv.to_original(unet=pipe.unet.state_dict(), vae=pipe.vae.state_dict(),
                            image_encoder=pipe.image_encoder.state_dict(),
                            unet_config=pipe.unet.config, vae_config=pipe.vae.config,
                            clip_num_layers=pipe.image_encoder.config.num_hidden_layers)
    junk = {"conditioner.embedders.0.open_clip.model.ln_final.weight": torch.ones(3),
            "conditioner.embedders.1.encoder.post_quant_conv.weight": torch.ones(4, 4, 1, 1),
            "model_ema.decay": torch.tensor(0.999)}
    orig.update(junk)
    return {k: v.clone().contiguous() for k, v in orig.items()}, set(junk)


def test_single_file_mapping_roundtrip_is_strict_and_lossless(pipe):
    orig, junk = _synthetic_single_file(pipe)
    assert "model.diffusion_model.input_blocks.0.0.weight" in orig
    assert orig["first_stage_model.decoder.mid.attn_1.q.weight"].ndim == 4  # sgm 1x1 conv
    clip = "conditioner.embedders.0.open_clip.model.visual."
    qkv = orig[clip + "transformer.resblocks.0.attn.in_proj_weight"]
    assert qkv.shape[0] == 3 * pipe.image_encoder.config.hidden_size
    back = conv.from_original(orig, unet_config=pipe.unet.config, vae_config=pipe.vae.config,
                              clip_num_layers=2)
    assert set(back.unused) == junk
    fresh = SV3DPipeline.from_configs(**TINY, seed=99)
    for name in ("unet", "vae", "image_encoder"):
        model, sd = getattr(fresh, name), getattr(back, name)
        result = model.load_state_dict(sd, strict=True)
        assert not result.missing_keys and not result.unexpected_keys
        loaded = model.state_dict()
        for k, v in getattr(pipe, name).state_dict().items():
            assert torch.equal(loaded[k], v), k


def test_single_file_loader_reproduces_the_source_model(pipe, tmp_path):
    from safetensors.torch import save_file

    orig, _ = _synthetic_single_file(pipe)
    path = tmp_path / "sv3d_p.safetensors"
    save_file(orig, str(path))
    configs = {"unet_config": TINY["unet_config"], "vae_config": TINY["vae_config"],
               "clip_config": TINY["clip_config"]}
    loaded = SV3DSynthesizer.from_single_file(str(path), configs=configs, num_frames=4,
                                              resolution=RES, num_steps=1)
    ref = SV3DSynthesizer(pipe, num_frames=4, resolution=RES, num_steps=1)
    a, b = loaded(_input(), seed=7), ref(_input(), seed=7)
    # Same weights bit for bit (checked above); memory layout alone moves float32 by ~1e-4.
    assert torch.allclose(a.features, b.features, atol=2e-3)
    assert a.info["weights"] == str(path)


def test_diffusers_layout_loader(pipe, tmp_path):
    pipe.unet.save_pretrained(tmp_path / "unet")
    pipe.vae.save_pretrained(tmp_path / "vae")
    pipe.image_encoder.save_pretrained(tmp_path / "image_encoder")
    (tmp_path / "scheduler").mkdir()
    (tmp_path / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"_class_name": "EulerDiscreteScheduler", "sigma_min": 0.002,
                    "sigma_max": 700.0}))
    loaded = SV3DSynthesizer.from_pretrained(str(tmp_path), num_frames=21, resolution=RES,
                                             num_steps=1)
    assert loaded.pipeline.sigma_max == 700.0 and loaded.space.temporal
    ref = SV3DSynthesizer(pipe, num_frames=21, resolution=RES, num_steps=1)
    assert torch.allclose(loaded(_input(), seed=8).features, ref(_input(), seed=8).features,
                          atol=2e-3)


def test_missing_local_weights_name_the_path(tmp_path):
    with pytest.raises(MissingWeightsError, match="sv3d_p.safetensors"):
        SV3DSynthesizer.from_single_file(str(tmp_path / "sv3d_p.safetensors"))
    with pytest.raises(MissingWeightsError, match="subfolder 'unet'"):
        SV3DSynthesizer.from_pretrained(str(tmp_path))


def test_offline_without_weights_raises_missing_weights_error(tmp_path):
    code = (
        "from humansplat.errors import MissingWeightsError\n"
        "from humansplat.synth.sv3d import SV3DSynthesizer\n"
        "for f in (SV3DSynthesizer.from_pretrained, SV3DSynthesizer.from_single_file):\n"
        "    try:\n"
        "        f()\n"
        "    except MissingWeightsError as e:\n"
        "        print('MISSING:', e)\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"),
               PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(__file__)),
                                           os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("MISSING:")]
    assert res.returncode == 0 and len(lines) == 2, res.stdout + res.stderr
    assert "chenguolin/sv3d-diffusers" in lines[0] and "subfolder 'unet'" in lines[0]
    assert "stabilityai/sv3d" in lines[1] and "sv3d_p.safetensors" in lines[1]
    assert all("hf download" in ln and "HF_HUB_OFFLINE" in ln for ln in lines)
    assert "accept the licence" in lines[1]
