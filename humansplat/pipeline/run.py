"""One call from a photo to a finished reconstruction: :class:`HumanSplatPipeline`.

    pipe = HumanSplatPipeline.from_pretrained()       # the bundled checkpoint, offline
    rec = pipe("photo.jpg", seed=0)                   # -> humansplat.reconstruction.Reconstruction
    rec.save("outputs/photo")                         # .ply .splat .mp4 .png .obj meta.json

Stages (``progress(done, total, stage)`` is called as each finishes; ``done`` may be
fractional inside a stage):

    load ─► preprocess ─► body_fit ─► view_synthesis ─► model_inputs ─► reconstruction
    photo   mask, crop    fitted body  4 orthogonal     assemble_inputs  transformer
                                       views            (as in training) -> Gaussians

A checkpoint folder (or Hub repo) holds ``pipeline.json`` (:class:`PipelineConfig`: which
body model, view synthesizer, reconstruction space and reconstruction weights to use),
plus the reconstruction transformer's ``config.json`` + ``model.safetensors`` and a model
card. A bare transformer folder (no ``pipeline.json``) loads with the offline defaults.

The prior-only baseline (the fitted body textured from the photo, no learned model) runs
through the same front half: ``HumanSplatPipeline.prior_only()`` or
``pipe(image, prior_only=True)``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, MissingWeightsError
from ..hub import ResolvedSource, resolve_source
from ..reconstruction import Reconstruction
from .card import model_card as _model_card
from .components import build_body_model, build_synthesizer
from .config import (MODEL_FILES, PIPELINE_CONFIG_NAME, PipelineConfig, autocast_name,
                     default_device, resolve_dtype)
from .meta import jsonable, reconstruction_meta

__all__ = ["HumanSplatPipeline", "Prepared", "STAGES"]

#: the stages a run reports through ``progress``, in order
STAGES = ("load", "preprocess", "body_fit", "view_synthesis", "model_inputs", "reconstruction")

Progress = Callable[[float, int, str], None]

# --------------------------------------------------------------------------------------------
# the front half of a run, kept for batching
# --------------------------------------------------------------------------------------------

@dataclass
class Prepared:
    """One photo after preprocess, body fit, view synthesis and input assembly: what the
    reconstruction stage consumes (:meth:`HumanSplatPipeline.prepare`)."""

    loaded: Any  # io.LoadedImage
    pre: Any  # prior.preprocess.Preprocessed
    fit: Any  # prior.fit.BodyFit
    synth_input: Any  # synth.base.SynthInput
    synth: Any  # synth.base.SynthOutput
    inputs: Any  # model.inputs.ModelInputs, or None (prior only)
    latents: Tensor  # [V,C,h,w] input view + generated views in the reconstruction space
    seed: int
    settings: dict[str, Any]
    prior_only: bool
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)




# --------------------------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------------------------

class HumanSplatPipeline:
    """Photo in, :class:`~humansplat.reconstruction.Reconstruction` out (module docs).

    Build it with :meth:`from_pretrained` (or :meth:`prior_only`); the constructor takes
    ready components: ``model`` None means prior-only."""

    def __init__(self, config: PipelineConfig, *, body_model, synthesizer, space,
                 model=None, device=None, dtype=None,
                 source: ResolvedSource | None = None,
                 model_source: ResolvedSource | None = None, model_card: str | None = None):
        self.config = config
        self.body_model = body_model
        self.synthesizer = synthesizer
        self.space = space
        self.device = default_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model = model
        self.source = source
        self.model_source = model_source
        self.source_card = model_card  # the loaded checkpoint's README.md, if any
        self._projection = synthesizer if synthesizer.name == "projection" else None
        if model is not None:
            mcfg = model.config
            want = "latent" if config.space == "sd-vae" else "pixel"
            if mcfg.space != want:
                raise ConfigError(f"pipeline space {config.space!r} does not match the "
                                  f"reconstruction model's space {mcfg.space!r}")
            model.to(self.device)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike | None = None,
                        revision: str | None = None, device=None, dtype=None,
                        token: str | bool | None = None,
                        local_files_only: bool | None = None) -> HumanSplatPipeline:
        """Load a pipeline: ``None`` = the bundled default (``$HUMANSPLAT_CHECKPOINT`` or
        ``humansplat/checkpoints/humansplat-tiny/``, offline), a local folder, or a Hub repo id.
        Safetensors only. Raises :class:`MissingWeightsError` naming what is missing, where
        it looked and how to provide it."""
        src = resolve_source(path_or_repo_id, revision=revision, token=token,
                             local_files_only=local_files_only)
        cfg_path = src.path / PIPELINE_CONFIG_NAME
        if cfg_path.is_file():
            config = PipelineConfig.read(cfg_path)
        elif all((src.path / f).is_file() for f in MODEL_FILES):
            config = None  # a bare transformer checkpoint: offline defaults for its space
        else:
            have = sorted(p.name for p in src.path.iterdir())[:12] if src.path.is_dir() else []
            raise MissingWeightsError(
                f"{src.path} ({src.kind} checkpoint {src.id!r}) holds no {PIPELINE_CONFIG_NAME} "
                f"and no {' + '.join(MODEL_FILES)} (found: {have or 'nothing'}). A pipeline "
                f"checkpoint is what HumanSplatPipeline.save_pretrained() writes; "
                "the bundled one is humansplat/checkpoints/humansplat-tiny/.")
        hub = {"token": token, "local_files_only": local_files_only}
        if config is None:
            from ..config import ModelConfig

            mcfg = ModelConfig.from_json((src.path / "config.json").read_text())
            config = PipelineConfig(space="sd-vae" if mcfg.space == "latent" else "pixel")
        model, model_src = cls._load_model(config, src, **hub)
        card = src.path / "README.md"
        return cls.from_components(config, model=model, device=device, dtype=dtype,
                                   source=src, model_source=model_src,
                                   model_card=card.read_text(encoding="utf-8")
                                   if card.is_file() else None, **hub)

    @classmethod
    def prior_only(cls, config: PipelineConfig | None = None, *, device=None,
                   dtype=None, body_model=None) -> HumanSplatPipeline:
        """The prior-only baseline: no checkpoint, no learned model (the textured fitted
        body is the splat). ``body_model``: a ready body model (default: the config's)."""
        return cls.from_components(config or PipelineConfig(), model=None, device=device,
                                   dtype=dtype, body_model=body_model)

    @classmethod
    def from_components(cls, config: PipelineConfig, *, model=None, device=None, dtype=None,
                        body_model=None, synthesizer=None, space=None,
                        source: ResolvedSource | None = None,
                        model_source: ResolvedSource | None = None,
                        model_card: str | None = None, token=None,
                        local_files_only: bool | None = None) -> HumanSplatPipeline:
        """Build the body model, synthesizer and space that ``config`` names (through the
        component registry, :mod:`.components`) around a ready ``model`` (a
        LatentReconstructionTransformer, or None for prior-only). A ``body_model``, or a
        ``synthesizer`` with its ``space``, passed in is used as it is."""
        dev = default_device(device)
        dt = resolve_dtype(dtype, dev)
        body = body_model if body_model is not None else build_body_model(config)
        if synthesizer is None:
            res = model.config.image_size if model is not None else 256
            synthesizer, space = build_synthesizer(config, body, res, dev, dt, token=token,
                                                   local_files_only=local_files_only)
        elif space is None:
            raise ConfigError("from_components: a synthesizer passed in needs its space "
                              "(the reconstruction space its features are in)")
        synth = synthesizer
        return cls(config, body_model=body, synthesizer=synth, space=space, model=model,
                   device=dev, dtype=dt, source=source, model_source=model_source,
                   model_card=model_card)

    @staticmethod
    def _load_model(config: PipelineConfig, src: ResolvedSource, *, token=None,
                    local_files_only=None):
        from ..model import LatentReconstructionTransformer

        if config.reconstruction_repo is None:
            model_src = src
            folder = src.path / config.reconstruction_subfolder
        else:
            sub = config.reconstruction_subfolder
            patterns = None
            if sub:
                patterns = [f"{sub}/*.json", f"{sub}/*.safetensors", f"{sub}/*.md"]
            model_src = resolve_source(config.reconstruction_repo,
                                       revision=config.reconstruction_revision, token=token,
                                       local_files_only=local_files_only,
                                       allow_patterns=patterns)
            folder = model_src.path / sub
        missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
        if missing:
            raise MissingWeightsError(
                f"reconstruction weights missing: no {', '.join(missing)} in {folder} "
                f"({model_src.kind} checkpoint {model_src.id!r}). Train and save a model "
                "(`humansplat train`, or LatentReconstructionTransformer.save_pretrained), or "
                "point pipeline.json's reconstruction_repo at a checkpoint that has them.")
        with contextlib.redirect_stdout(io.StringIO()):  # the mixin prints where it loads from
            model = LatentReconstructionTransformer.from_pretrained(str(folder))
        return model, model_src

    # -- saving ---------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write a self-contained checkpoint: ``pipeline.json``, the transformer's
        ``config.json`` + ``model.safetensors`` at the top level, and a generated
        ``README.md`` model card. :meth:`from_pretrained` reads it back to identical
        outputs."""
        if self.model is None:
            raise ConfigError("a prior-only pipeline has no weights to save")
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out)
        self.config.replace(reconstruction_repo=None, reconstruction_subfolder="",
                            reconstruction_revision=None).write(out / PIPELINE_CONFIG_NAME)
        (out / "README.md").write_text(self.model_card(), encoding="utf-8")
        return out

    def model_card(self) -> str:
        """A model card for :meth:`save_pretrained`/``push``: Hub metadata, the components,
        usage, and the loaded checkpoint's own card (training, metrics, limitations)."""
        return _model_card(self)

    def push_to_hub(self, repo_id: str, *, token: str | bool | None = None,
                    private: bool | None = None, revision: str | None = None,
                    commit_message: str = "Upload HumanSplat pipeline"):
        """:meth:`save_pretrained` into a temporary folder and upload it (``HfApi``)."""
        from ..hub import upload_folder

        with tempfile.TemporaryDirectory(prefix="humansplat-push-") as tmp:
            self.save_pretrained(tmp)
            return upload_folder(tmp, repo_id, token=token, private=private, revision=revision,
                                 commit_message=commit_message)

    # -- running --------------------------------------------------------------------------
    # A run shares no mutable state with another run (the app runs several at once over one
    # pipeline): randomness comes from generators seeded per run and passed down (the fit's
    # numpy Generator, the synthesizer's torch.Generator), never the global RNGs; precision is
    # a per-call argument of the model's forward (autocast is thread-local); torch's thread
    # count is fixed once at start-up (humansplat.runtime.fix_threads), never per stage.
    # The model's train/eval mode is left alone: under no_grad its forward does not depend
    # on it (no dropout, no batch-norm; checkpointing only with gradients).

    def _check_run(self, seed, prior_only) -> tuple[int, bool]:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ConfigError(f"seed must be an int, got {seed!r}")
        prior = self.model is None if prior_only is None else bool(prior_only)
        if not prior and self.model is None:
            raise ConfigError("this pipeline has no reconstruction model (prior-only); "
                              "load one with HumanSplatPipeline.from_pretrained()")
        return int(seed), prior

    def prepare(self, image, *, seed: int = 0, foreground_ratio: float | None = None,
                remove_background: bool = True, num_steps: int | None = None,
                guidance=None, progress: Progress | None = None,
                prior_only: bool | None = None) -> Prepared:
        """The front half of :meth:`__call__` (load .. model_inputs) for one photo."""
        from ..io import load_image
        from ..prior.fit import fit_preprocessed

        seed, prior = self._check_run(seed, prior_only)
        fg = self.config.foreground_ratio if foreground_ratio is None else float(foreground_ratio)
        timings: dict[str, float] = {}
        t = time.perf_counter()
        loaded = image if hasattr(image, "rgb") and hasattr(image, "alpha") \
            else load_image(image)
        self._stage_done(0, t, timings, progress)
        t = time.perf_counter()
        pre = self.preprocess(loaded, foreground_ratio=fg, remove_background=remove_background)
        self._stage_done(1, t, timings, progress)
        t = time.perf_counter()
        fit = fit_preprocessed(pre, self.body_model, config=self.config.fit_config())
        self._stage_done(2, t, timings, progress)
        settings = {"foreground_ratio": fg, "remove_background": bool(remove_background),
                    "crop_size": pre.size}
        return self._views_and_inputs(loaded, pre, fit, settings, timings, seed=seed,
                                      num_steps=num_steps, guidance=guidance,
                                      progress=progress, prior=prior)

    def preprocess(self, image, *, foreground_ratio: float | None = None,
                   remove_background: bool = True):
        """The person cut out and cropped with this pipeline's settings (its first stage):
        a :class:`humansplat.prior.preprocess.Preprocessed` (crop, person mask, landmarks).
        ``image``: anything :func:`humansplat.io.load_image` takes, or its result."""
        from ..io import load_image
        from ..prior.preprocess import preprocess

        loaded = image if hasattr(image, "rgb") and hasattr(image, "alpha") \
            else load_image(image)
        fg = self.config.foreground_ratio if foreground_ratio is None else float(foreground_ratio)
        return preprocess(loaded, size=self.config.crop_size, foreground_ratio=fg,
                          remove_background=remove_background,
                          colour_refine=self.config.colour_mask,
                          landmark_head=self.config.landmark_head,
                          landmark_limbs=self.config.landmark_limbs,
                          head_core=float(self.config.head_core),
                          segment_shifts=self.config.segment_shifts,
                          colour_seeds=self.config.colour_seeds)

    def resynthesize(self, prepared: Prepared, *, seed: int | None = None,
                     num_steps: int | None = None, guidance=None,
                     progress: Progress | None = None,
                     prior_only: bool | None = None) -> Prepared:
        """Redo view synthesis and input assembly of a prepared photo with new settings (a new
        seed, steps, guidance, or this pipeline's synthesizer), keeping its crop and body fit:
        no second fit."""
        seed, prior = self._check_run(prepared.seed if seed is None else seed, prior_only)
        timings = {k: prepared.timings[k] for k in STAGES[:3] if k in prepared.timings}
        settings = {k: prepared.settings[k] for k in
                    ("foreground_ratio", "remove_background", "crop_size")}
        return self._views_and_inputs(prepared.loaded, prepared.pre, prepared.fit, settings,
                                      timings, seed=seed, num_steps=num_steps,
                                      guidance=guidance, progress=progress, prior=prior)

    @staticmethod
    def _stage_done(i: int, t0: float, timings: dict, progress: Progress | None) -> None:
        timings[STAGES[i]] = time.perf_counter() - t0
        if progress is not None:
            progress(i + 1, len(STAGES), STAGES[i])

    def _views_and_inputs(self, loaded, pre, fit, settings: dict, timings: dict, *, seed: int,
                          num_steps, guidance, progress: Progress | None,
                          prior: bool) -> Prepared:
        """Stages view_synthesis and model_inputs (:func:`humansplat.front.front_half`, the
        function training data and evaluation build their inputs with)."""
        from ..front import front_half
        from ..io import to_tensor

        total = len(STAGES)
        t = time.perf_counter()
        synth = self._projection_synth() if prior else self.synthesizer
        sub = None
        if progress is not None:
            sub = lambda d, n, msg: progress(3 + min(d / max(n, 1), 1.0) * 0.999, total,  # noqa: E731
                                             f"view_synthesis: {msg}")
        front = front_half(to_tensor(pre.rgb), torch.as_tensor(pre.mask)[None], fit, synth,
                           None if prior else self.model.config,
                           clothing=self.config.clothing_config(), space=self.space, seed=seed,
                           num_steps=num_steps, guidance=guidance, progress=sub)
        inp, out, inputs = front.synth_input, front.synth, front.inputs
        self._stage_done(3, t, timings, progress)
        t = time.perf_counter()
        latents = self._prior_latents(inp, out) if prior else inputs.views
        self._stage_done(4, t, timings, progress)
        settings = {"seed": seed, **settings, "num_steps": out.info.get("steps"),
                    "guidance": jsonable(out.info.get("guidance")), "prior_only": prior,
                    "device": str(self.device), "dtype": str(self.dtype).replace("torch.", "")}
        info = {"segmentation": pre.mask_source, "body_model": type(self.body_model).__name__,
                "view_synthesizer": out.info.get("synthesizer", synth.name),
                "space": out.space, "synthesizer_info": jsonable(out.info),
                "clothing": jsonable(inp.body_fit.diagnostics.get("clothing"))}
        return Prepared(loaded=loaded, pre=pre, fit=fit, synth_input=inp, synth=out,
                        inputs=inputs, latents=latents, seed=seed, settings=settings,
                        prior_only=prior, timings=timings, info=info)

    def _projection_synth(self):
        if self._projection is None:
            from ..synth.projection import ProjectionSynthesizer

            self._projection = ProjectionSynthesizer(self.body_model, resolution=256)
        return self._projection

    @staticmethod
    def _prior_latents(inp, out) -> Tensor:
        """Input photo (on white, at the views' size) + the generated views' features."""
        from ..latent_space import resize_images

        R = out.previews.shape[-1]
        m = inp.mask.float().clamp(0, 1)
        photo = inp.image.float() * m + (1 - m)
        photo = resize_images(photo[None], R, mode="bicubic").clamp(0, 1)
        if out.space == "pixel":
            feats = out.features
            if feats.shape[-1] != R:
                feats = resize_images(feats, R)
            return torch.cat([photo, feats.float()], 0)
        return out.features.float()

    def finish(self, prepared: Sequence[Prepared], *,
               progress: Progress | None = None) -> list[Reconstruction]:
        """The reconstruction stage for prepared photos: one batched transformer forward for
        those that need the model (shapes match within a pipeline), then the outputs."""
        todo = [i for i, p in enumerate(prepared) if not p.prior_only]
        gaussians: dict[int, Any] = {}
        t = time.perf_counter()
        if todo:
            from ..model.inputs import ModelInputs

            batch = [prepared[i].inputs for i in todo]
            stacked = ModelInputs(views=torch.stack([b.views for b in batch]),
                                  viewmats=torch.stack([b.viewmats for b in batch]),
                                  Ks=torch.stack([b.Ks for b in batch]),
                                  body_vertices=torch.stack([b.body_vertices for b in batch]),
                                  input_view=batch[0].input_view)
            kw = {k: (v.to(self.device) if isinstance(v, Tensor) else v)
                  for k, v in stacked.__dict__.items()}
            with torch.no_grad():
                out = self.model(**kw, autocast=autocast_name(self.dtype))
            for j, i in enumerate(todo):
                gaussians[i] = out.gaussians(j).detach().to("cpu", torch.float32)
        model_seconds = (time.perf_counter() - t) / max(len(todo), 1)
        recs = []
        for i, p in enumerate(prepared):
            t = time.perf_counter()
            if p.prior_only:
                g = self._projection_synth().prior_gaussians(p.synth_input)
            else:
                g = gaussians[i]
                if self.config.faithful:
                    g = self._make_faithful(p, g)
            n_raw = len(g)
            g = g.prune(self.config.min_opacity) if self.config.min_opacity > 0 else g
            if self.config.part_labels == "body" or g.labels is None:
                from ..parts_export import assign_labels

                g = assign_labels(g, self.body_model, p.fit, overwrite=True)
            p.timings["reconstruction"] = (time.perf_counter() - t) - \
                p.timings.get("faithful", 0.0) + \
                (0.0 if p.prior_only else model_seconds)
            if progress is not None:
                progress(len(STAGES), len(STAGES), "reconstruction")
            recs.append(self._reconstruction(p, g, n_raw))
        return recs

    def _make_faithful(self, p: Prepared, g):
        """The model's Gaussians made faithful to the photo (``humansplat.refine``)."""
        from ..refine import GeneratedViews, PhotoEvidence, make_faithful, output_view_cameras
        from .meta import jsonable

        t = time.perf_counter()
        ev = PhotoEvidence.from_preprocessed(p.pre, p.fit.cameras, photo=p.loaded.rgb,
                                             max_size=self.config.input_resolution,
                                             sharp_mask=self.config.sharp_mask)
        # deterministic: the refinement draws no random numbers
        res = make_faithful(g, grid=self.model.config.gaussian_grid,
                            view_cameras=output_view_cameras(self.model.config, p.inputs),
                            evidence=ev, config=self.config.faithful_config(self.device),
                            generated=None if p.synth.masks is None else GeneratedViews(
                                p.synth.previews, p.synth.masks, p.synth.cameras),
                            device=self.device,
                            body=(p.synth_input.body_fit.vertices.float().cpu(),
                                  p.synth_input.body_fit.faces.cpu()))
        p.info["faithful"] = jsonable(res.info)
        p.timings["faithful"] = time.perf_counter() - t
        return res.gaussians

    def __call__(self, image, *, seed: int = 0, foreground_ratio: float | None = None,
                 remove_background: bool = True, num_steps: int | None = None,
                 guidance=None, progress: Progress | None = None,
                 prior_only: bool | None = None) -> Reconstruction:
        """Reconstruct one photo (path, bytes, PIL image, uint8/float array, LoadedImage).

        seed: makes the run deterministic (same seed -> same outputs on a given device);
        foreground_ratio: share of the crop the person fills (default from the config);
        remove_background: composite the crop on white (the mask is used either way);
        num_steps / guidance: the diffusion synthesizer's settings (ignored by projection);
        progress(done, total, stage): called as stages finish (``STAGES``);
        prior_only: skip the transformer and return the textured fitted body (the baseline).
        Raises InvalidImageError / NoPersonError with readable messages."""
        t0 = time.perf_counter()
        p = self.prepare(image, seed=seed, foreground_ratio=foreground_ratio,
                         remove_background=remove_background, num_steps=num_steps,
                         guidance=guidance, progress=progress, prior_only=prior_only)
        rec = self.finish([p], progress=progress)[0]
        rec.timings["total"] = time.perf_counter() - t0
        rec.meta["timings_s"] = dict(rec.timings)
        return rec

    # -- outputs --------------------------------------------------------------------------
    def checkpoint_info(self) -> dict[str, Any]:
        """Which checkpoint (id, kind, revision, commit) and model ran."""
        if self.model is None:
            return {"id": None, "kind": "prior-only"}
        src = self.source.as_dict() if self.source is not None else {"id": None,
                                                                      "kind": "in-memory"}
        info = dict(src)
        if self.model_source is not None and self.model_source is not self.source:
            info["reconstruction"] = self.model_source.as_dict()
        info["subfolder"] = self.config.reconstruction_subfolder
        info["model_preset"] = self.model.config.name
        info["model_parameters"] = self.model.num_parameters()
        return info

    def _reconstruction(self, p: Prepared, g, n_raw: int) -> Reconstruction:
        from ..io import to_uint8
        from ..prior.overlay import overlay_fit

        fit, pre, out = p.fit, p.pre, p.synth
        views = to_uint8(out.previews.clamp(0, 1))
        if self.model is not None and not p.prior_only:
            rec_name = (f"LatentReconstructionTransformer ({self.model.config.name}, "
                        f"{self.model.config.space} space)")
            method = "humansplat (body prior + view synthesis + reconstruction transformer)"
        else:
            rec_name = "prior-only (textured fitted body)"
            method = "prior-only (fitted body textured by the projection synthesizer)"
        info = {**p.info, "reconstruction": rec_name,
                "renderer": "gsplat" if torch.cuda.is_available() else "torch",
                "device": str(self.device) if not p.prior_only else "cpu"}
        timings = dict(p.timings)
        meta = reconstruction_meta(
            method=method, seed=p.seed,
            checkpoint=self.checkpoint_info() if not p.prior_only else
            {"id": None, "kind": "prior-only"},
            loaded=p.loaded, pre=pre, fit=fit, synth=out, settings=p.settings,
            components=info, num_gaussians=len(g), num_before_pruning=n_raw, timings=timings)
        return Reconstruction(gaussians=g, views=views, latents=p.latents.detach().float().cpu(),
                              overlay=overlay_fit(pre.rgb, fit), crop=pre.rgb,
                              mask=np.asarray(pre.mask, np.float32), fit=fit,
                              input_camera=fit.cameras, cameras=out.cameras, timings=timings,
                              info=info, meta=meta)

    def __repr__(self) -> str:
        c = self.config
        model = "none (prior-only)" if self.model is None else self.model.config.name
        return (f"HumanSplatPipeline(body={c.body_model}, synthesizer={c.view_synthesizer}, "
                f"space={c.space}, model={model}, device={self.device}, dtype={self.dtype})")

