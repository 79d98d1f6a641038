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
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from . import __version__
from .errors import ConfigError, MissingWeightsError
from .hub import ResolvedSource, resolve_source
from .reconstruction import Reconstruction

__all__ = ["HumanSplatPipeline", "PipelineConfig", "Prepared", "PIPELINE_CONFIG_NAME",
           "STAGES"]

PIPELINE_CONFIG_NAME = "pipeline.json"
MODEL_FILES = ("config.json", "model.safetensors")
#: the stages a run reports through ``progress``, in order
STAGES = ("load", "preprocess", "body_fit", "view_synthesis", "model_inputs", "reconstruction")

Progress = Callable[[float, int, str], None]

_BODY_MODELS = ("anny", "smpl")
_SYNTHESIZERS = ("projection", "sv3d")
_SPACES = ("pixel", "sd-vae")


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PipelineConfig:
    """What ``pipeline.json`` holds: the components of a pipeline.

    body_model: "anny" (offline, bundled assets) or "smpl" (licensed files);
    body_model_source: for SMPL, a file, folder or Hub repo id (None: $HUMANSPLAT_SMPL_PATH).
    view_synthesizer: "projection" (offline) or "sv3d" (diffusers weights);
    synthesizer_repo / synthesizer_revision: SV3D weights (repo id, folder, or a
        ``.safetensors`` single file); None = the default diffusers-format repo.
    sv3d_frames: frames SV3D samples: 21 for the public ``sv3d_p`` orbit (the 4 views are
        picked from it), 4 for weights fine-tuned on the 4 orthogonal views (the paper's).
    space: the reconstruction space, "pixel" or "sd-vae" (must match the model's config);
    vae_repo / vae_revision: the SD-VAE for "sd-vae" with the projection synthesizer
        (SV3D brings its own VAE); None = stabilityai/sd-vae-ft-mse.
    reconstruction_repo: where the transformer's config.json + model.safetensors live:
        None = this checkpoint (in ``reconstruction_subfolder``), else a Hub repo id or folder;
    reconstruction_revision: its revision (Hub).
    crop_size: side of the square crop the body is fitted to (px).
    foreground_ratio: default share of the crop the person's longer side fills.
    min_opacity: Gaussians below this opacity never render and are dropped.
    part_labels: where each Gaussian's body-part label comes from: "body" (the part of the
        nearest point on the fitted body) or "model" (the transformer's part head). The
        bundled tiny checkpoint's head reaches a mean per-part IoU of 0.13 on held-out
        subjects vs 0.80 for the nearest body part (benchmarks/parts_model.py, parts.py),
        so "body" is the default.
    faithful: make the splat faithful to the photo (``humansplat.refine``): the input view
        as Gaussians at the photo's resolution, the other views carved by the photo's mask,
        a short test-time refinement; False gives the model's Gaussians as they are.
    input_resolution: input-view Gaussians per side of the crop, re-sampled from the photo
        at its native resolution up to this cap (never below ``crop_size``): the density
        setting (512: ~60-90k Gaussians for a full-body photo).
    refine: when the test-time refinement runs: "cuda" (only on a GPU, the default: on
        the 2-core CPU three steps at 512 px take longer than the whole 15 s budget),
        "always" or "off";
    refine_seconds / refine_steps: it stops at whichever comes first.
    beyond_edge: a photo cut at the person ("cut": the splat holds what the photo shows,
        nothing beyond its edge; "complete": keep the model's guess of the rest).
    """

    body_model: str = "anny"
    body_model_source: str | None = None
    view_synthesizer: str = "projection"
    synthesizer_repo: str | None = None
    synthesizer_revision: str | None = None
    sv3d_frames: int = 21
    space: str = "pixel"
    vae_repo: str | None = None
    vae_revision: str | None = None
    reconstruction_repo: str | None = None
    reconstruction_subfolder: str = ""
    reconstruction_revision: str | None = None
    crop_size: int = 512
    foreground_ratio: float = 0.85
    min_opacity: float = 1.0 / 255.0
    part_labels: str = "body"
    faithful: bool = True
    input_resolution: int = 512
    refine: str = "cuda"
    refine_seconds: float = 2.0
    refine_steps: int = 30
    beyond_edge: str = "cut"
    format_version: int = 1

    def __post_init__(self) -> None:
        def bad(name: str, msg: str):
            raise ConfigError(f"pipeline config: {name} {msg}")

        if self.body_model not in _BODY_MODELS:
            bad("body_model", f"must be one of {_BODY_MODELS}, got {self.body_model!r}")
        if self.view_synthesizer not in _SYNTHESIZERS:
            bad("view_synthesizer", f"must be one of {_SYNTHESIZERS}, got "
                f"{self.view_synthesizer!r}")
        if self.space not in _SPACES:
            bad("space", f"must be one of {_SPACES}, got {self.space!r}")
        if self.view_synthesizer == "sv3d" and self.space != "sd-vae":
            bad("space", "must be 'sd-vae' with the sv3d synthesizer (SV3D samples latents)")
        if not isinstance(self.sv3d_frames, int) or self.sv3d_frames < 4:
            bad("sv3d_frames", f"must be an int >= 4, got {self.sv3d_frames!r}")
        if not isinstance(self.crop_size, int) or not 64 <= self.crop_size <= 2048:
            bad("crop_size", f"must be an int in [64, 2048], got {self.crop_size!r}")
        if not 0.1 <= float(self.foreground_ratio) <= 1.0:
            bad("foreground_ratio", f"must be in [0.1, 1], got {self.foreground_ratio!r}")
        if self.part_labels not in ("body", "model"):
            bad("part_labels", f"must be 'body' or 'model', got {self.part_labels!r}")
        if not 0.0 <= float(self.min_opacity) < 1.0:
            bad("min_opacity", f"must be in [0, 1), got {self.min_opacity!r}")
        if ".." in Path(self.reconstruction_subfolder).parts or \
                Path(self.reconstruction_subfolder).is_absolute():
            bad("reconstruction_subfolder", f"must be a relative folder inside the checkpoint, "
                f"got {self.reconstruction_subfolder!r}")
        if self.refine not in ("cuda", "always", "off"):
            bad("refine", f"must be 'cuda', 'always' or 'off', got {self.refine!r}")
        if not float(self.refine_seconds) >= 0:
            bad("refine_seconds", f"must be >= 0, got {self.refine_seconds!r}")
        self.faithful_config()  # validates input_resolution, refine_seconds, beyond_edge
        if self.format_version != 1:
            bad("format_version", f"{self.format_version} is newer than this humansplat "
                f"({__version__}) reads; upgrade humansplat")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"pipeline config must be a JSON object, got "
                              f"{type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"_class_name", "_humansplat_version"})
        if unknown:
            raise ConfigError(f"pipeline config: unknown field(s) {unknown}; known: "
                              f"{sorted(known)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def read(cls, path: str | os.PathLike) -> PipelineConfig:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"{p} is not valid JSON ({err})") from err
        return cls.from_dict(data)

    def write(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        data = {"_class_name": "HumanSplatPipeline", "_humansplat_version": __version__,
                **self.to_dict()}
        p.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return p

    def replace(self, **changes: Any) -> PipelineConfig:
        return replace(self, **changes)

    def faithful_config(self, device: str = "cpu"):
        """The ``refine.FaithfulConfig`` these fields select for a run on ``device``."""
        from .refine import FaithfulConfig

        on = self.refine == "always" or (self.refine == "cuda" and
                                         torch.device(device).type == "cuda")
        return FaithfulConfig(resolution=self.input_resolution,
                              refine_seconds=float(self.refine_seconds) if on else 0.0,
                              refine_steps=self.refine_steps,
                              beyond_edge=self.beyond_edge)


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


def _default_device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _resolve_dtype(dtype, device: torch.device) -> torch.dtype:
    """fp32 on CPU; on CUDA bf16 where supported, else fp16 (autocast of the transformer,
    SV3D weights). Strings "fp32"/"fp16"/"bf16" are accepted."""
    if isinstance(dtype, str):
        names = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16,
                 "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
        if dtype not in names:
            raise ConfigError(f"dtype must be one of {sorted(names)}, got {dtype!r}")
        dtype = names[dtype]
    if dtype is None:
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ConfigError(f"dtype must be float32, float16 or bfloat16, got {dtype}")
    if device.type != "cuda" and dtype != torch.float32:
        raise ConfigError(f"{dtype} runs on CUDA only; on {device} use float32")
    return dtype


_DTYPE_NAMES = {torch.float32: None, torch.float16: "fp16", torch.bfloat16: "bf16"}


def _versions() -> dict[str, str]:
    import huggingface_hub

    return {"humansplat": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "huggingface_hub": huggingface_hub.__version__,
            "python": platform.python_version()}


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
        self.device = _default_device(device)
        self.dtype = _resolve_dtype(dtype, self.device)
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
        ``checkpoints/humansplat-tiny/``, offline), a local folder, or a Hub repo id.
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
                "the bundled one is checkpoints/humansplat-tiny/.")
        hub = {"token": token, "local_files_only": local_files_only}
        if config is None:
            from .config import ModelConfig

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
                   dtype=None) -> HumanSplatPipeline:
        """The prior-only baseline: no checkpoint, no learned model (the textured fitted
        body is the splat)."""
        return cls.from_components(config or PipelineConfig(), model=None, device=device,
                                   dtype=dtype)

    @classmethod
    def from_components(cls, config: PipelineConfig, *, model=None, device=None, dtype=None,
                        body_model=None, source: ResolvedSource | None = None,
                        model_source: ResolvedSource | None = None,
                        model_card: str | None = None, token=None,
                        local_files_only: bool | None = None) -> HumanSplatPipeline:
        """Build the body model, synthesizer and space that ``config`` names around a ready
        ``model`` (a LatentReconstructionTransformer, or None for prior-only)."""
        dev = _default_device(device)
        dt = _resolve_dtype(dtype, dev)
        body = body_model if body_model is not None else cls._load_body(config)
        res = model.config.image_size if model is not None else 256
        synth, space = cls._load_synthesizer(config, body, res, dev, dt, token=token,
                                             local_files_only=local_files_only)
        return cls(config, body_model=body, synthesizer=synth, space=space, model=model,
                   device=dev, dtype=dt, source=source, model_source=model_source,
                   model_card=model_card)

    @staticmethod
    def _load_body(config: PipelineConfig):
        from .prior.body import load_body_model

        if config.body_model == "smpl":
            return load_body_model("smpl", source=config.body_model_source)
        return load_body_model("anny")

    @staticmethod
    def _load_synthesizer(config: PipelineConfig, body, resolution: int, device, dtype, *,
                          token=None, local_files_only=None):
        from .synth.latent_space import PixelSpace, SDVAESpace
        from .synth.projection import ProjectionSynthesizer

        if config.view_synthesizer == "sv3d":
            from .synth.sv3d import DEFAULT_SV3D_REPO, SV3DSynthesizer

            synth = SV3DSynthesizer.from_pretrained(
                config.synthesizer_repo or DEFAULT_SV3D_REPO, device=device,
                dtype=dtype if device.type == "cuda" else torch.float32,
                local_files_only=local_files_only, revision=config.synthesizer_revision,
                token=token, num_frames=config.sv3d_frames, resolution=resolution)
            return synth, synth.space
        if config.space == "sd-vae":
            from .synth.latent_space import DEFAULT_SD_VAE_REPO

            space = SDVAESpace.from_pretrained(config.vae_repo or DEFAULT_SD_VAE_REPO,
                                               device=device, local_files_only=local_files_only,
                                               revision=config.vae_revision)
        else:
            space = PixelSpace()
        return ProjectionSynthesizer(body, resolution=resolution, space=space), space

    @staticmethod
    def _load_model(config: PipelineConfig, src: ResolvedSource, *, token=None,
                    local_files_only=None):
        from .model import LatentReconstructionTransformer

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
        from .config import ModelConfig

        c = self.config
        m = self.model.config if self.model is not None else None
        params = self.model.num_parameters() if self.model is not None else 0
        src = self.source.as_dict() if self.source is not None else {}
        lines = [
            "---",
            "library_name: humansplat",
            "license: mit",
            "pipeline_tag: image-to-3d",
            "tags:", "- gaussian-splatting", "- 3d-human", "- single-image-reconstruction",
            "- humansplat",
            "---", "",
            "# HumanSplat pipeline", "",
            "One photo of a person in, a 3D Gaussian splat of that person out: an open "
            "implementation of *HumanSplat: Generalizable Single-Image Human Gaussian Splatting "
            "with Structure Priors* (NeurIPS 2024, https://arxiv.org/abs/2406.12459).", "",
            "| stage | component |", "|---|---|",
            f"| body prior | {c.body_model}"
            + (f" ({c.body_model_source})" if c.body_model_source else "") + " |",
            f"| view synthesis | {c.view_synthesizer}"
            + (f" ({c.synthesizer_repo})" if c.synthesizer_repo else "") + " |",
            f"| reconstruction space | {c.space} |",
        ]
        if m is not None:
            assert isinstance(m, ModelConfig)
            lines.append(f"| reconstruction | LatentReconstructionTransformer, preset "
                         f"`{m.name}`, {params:,} parameters, {m.n_views} views of "
                         f"{m.image_size} px, {m.n_gaussians:,} Gaussians |")
        lines += ["", "Files: `pipeline.json` (the components), `config.json` + "
                  "`model.safetensors` (the reconstruction transformer).", "",
                  "## Use", "", "```python",
                  "from humansplat import HumanSplatPipeline",
                  "pipe = HumanSplatPipeline.from_pretrained(\"<this repo or folder>\")",
                  "rec = pipe(\"photo.jpg\", seed=0)",
                  "rec.save(\"outputs/photo\")  # gaussians.ply/.splat, orbit.mp4, meta.json ...",
                  "```", "",
                  "or `humansplat reconstruct photo.jpg -o outputs --checkpoint <repo or folder>`.",
                  ""]
        if src:
            lines += [f"Saved from the {src.get('kind')} checkpoint `{src.get('id')}`"
                      + (f" at commit `{src['commit']}`" if src.get("commit") else "") + ".", ""]
        marker = "## From the source checkpoint's card"
        body = _card_body(self.source_card) if self.source_card else ""
        if marker in body:  # re-saving a saved pipeline: keep the original card once
            body = body[body.index(marker) + len(marker):]
        if body.strip():
            lines += [marker, "", body.strip(), ""]
        return "\n".join(lines)

    def push_to_hub(self, repo_id: str, *, token: str | bool | None = None,
                    private: bool | None = None, revision: str | None = None,
                    commit_message: str = "Upload HumanSplat pipeline"):
        """:meth:`save_pretrained` into a temporary folder and upload it (``HfApi``)."""
        from .hub import upload_folder

        with tempfile.TemporaryDirectory(prefix="humansplat-push-") as tmp:
            self.save_pretrained(tmp)
            return upload_folder(tmp, repo_id, token=token, private=private, revision=revision,
                                 commit_message=commit_message)

    # -- running --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _inference(self):
        """Eval mode and this pipeline's mixed precision (applied by the model's forward,
        which keeps geometry in fp32) for one forward; the model is left as it was (it may
        be a model in training, evaluated through the pipeline)."""
        model = self.model
        cfg, training = model.config, model.training
        model.config = cfg.replace(autocast=_DTYPE_NAMES[self.dtype])
        model.eval()
        try:
            yield
        finally:
            model.config = cfg
            model.train(training)

    def _rng(self, seed: int):
        """Fork the global RNGs and seed them: a run never depends on (or changes) what
        ran before."""
        @contextlib.contextmanager
        def ctx():
            devices = [self.device.index or 0] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                yield
        return ctx()

    def _check_run(self, seed, prior_only) -> tuple[int, bool]:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an int, got {seed!r}")
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
        from .io import load_image
        from .prior.fit import fit_preprocessed
        from .prior.preprocess import preprocess

        seed, prior = self._check_run(seed, prior_only)
        fg = self.config.foreground_ratio if foreground_ratio is None else float(foreground_ratio)
        timings: dict[str, float] = {}
        with self._rng(seed):
            t = time.perf_counter()
            loaded = image if hasattr(image, "rgb") and hasattr(image, "alpha") \
                else load_image(image)
            self._stage_done(0, t, timings, progress)
            t = time.perf_counter()
            pre = preprocess(loaded, size=self.config.crop_size, foreground_ratio=fg,
                             remove_background=remove_background)
            self._stage_done(1, t, timings, progress)
            t = time.perf_counter()
            fit = fit_preprocessed(pre, self.body_model)
            self._stage_done(2, t, timings, progress)
        settings = {"foreground_ratio": fg, "remove_background": bool(remove_background),
                    "crop_size": pre.size}
        return self._views_and_inputs(loaded, pre, fit, settings, timings, seed=seed,
                                      num_steps=num_steps, guidance=guidance,
                                      progress=progress, prior=prior)

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
        """Stages view_synthesis and model_inputs."""
        from .cameras import orthogonal_views
        from .io import to_tensor
        from .synth.base import SynthInput

        total = len(STAGES)
        with self._rng(seed):
            t = time.perf_counter()
            synth = self._projection_synth() if prior else self.synthesizer
            S = pre.size
            inp = SynthInput(image=to_tensor(pre.rgb), mask=torch.as_tensor(pre.mask)[None],
                             input_camera=fit.cameras,
                             target_cameras=orthogonal_views(
                                 radius=float(fit.cameras.centers[0].norm()), width=S, height=S),
                             body_fit=fit)
            sub = None
            if progress is not None:
                sub = lambda d, n, msg: progress(3 + min(d / max(n, 1), 1.0) * 0.999, total,  # noqa: E731
                                                 f"view_synthesis: {msg}")
            out = synth(inp, seed=seed, num_steps=num_steps, guidance=guidance, progress=sub)
            self._stage_done(3, t, timings, progress)
            t = time.perf_counter()
            if prior:
                inputs = None
                latents = self._prior_latents(inp, out)
            else:
                from .model.inputs import assemble_inputs

                inputs = assemble_inputs(self.model.config, inp.image, inp.mask, fit.cameras,
                                         out.features, out.cameras, fit.vertices,
                                         space=self.space)
                latents = inputs.views
            self._stage_done(4, t, timings, progress)
        settings = {"seed": seed, **settings, "num_steps": out.info.get("steps"),
                    "guidance": _jsonable(out.info.get("guidance")), "prior_only": prior,
                    "device": str(self.device), "dtype": str(self.dtype).replace("torch.", "")}
        info = {"segmentation": pre.mask_source, "body_model": type(self.body_model).__name__,
                "view_synthesizer": out.info.get("synthesizer", synth.name),
                "space": out.space, "synthesizer_info": _jsonable(out.info)}
        return Prepared(loaded=loaded, pre=pre, fit=fit, synth_input=inp, synth=out,
                        inputs=inputs, latents=latents, seed=seed, settings=settings,
                        prior_only=prior, timings=timings, info=info)

    def _projection_synth(self):
        if self._projection is None:
            from .synth.projection import ProjectionSynthesizer

            self._projection = ProjectionSynthesizer(self.body_model, resolution=256)
        return self._projection

    @staticmethod
    def _prior_latents(inp, out) -> Tensor:
        """Input photo (on white, at the views' size) + the generated views' features."""
        from .synth.latent_space import resize_images

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
            from .model.inputs import ModelInputs

            batch = [prepared[i].inputs for i in todo]
            stacked = ModelInputs(views=torch.stack([b.views for b in batch]),
                                  viewmats=torch.stack([b.viewmats for b in batch]),
                                  Ks=torch.stack([b.Ks for b in batch]),
                                  body_vertices=torch.stack([b.body_vertices for b in batch]),
                                  input_view=batch[0].input_view)
            kw = {k: (v.to(self.device) if isinstance(v, Tensor) else v)
                  for k, v in stacked.__dict__.items()}
            with self._rng(prepared[todo[0]].seed), torch.no_grad(), self._inference():
                out = self.model(**kw)
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
                from .parts_export import assign_labels

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
        from .refine import PhotoEvidence, make_faithful, output_view_cameras

        t = time.perf_counter()
        ev = PhotoEvidence.from_preprocessed(p.pre, p.fit.cameras, photo=p.loaded.rgb,
                                             max_size=self.config.input_resolution)
        with self._rng(p.seed):
            res = make_faithful(g, grid=self.model.config.gaussian_grid,
                                view_cameras=output_view_cameras(self.model.config, p.inputs),
                                evidence=ev,
                                config=self.config.faithful_config(self.device),
                                device=self.device)
        p.info["faithful"] = _jsonable(res.info)
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
        from .io import to_uint8
        from .prior.overlay import overlay_fit

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
        meta = {
            "format": "humansplat-reconstruction/1",
            "method": method,
            "seed": p.seed,
            "versions": _versions(),
            "checkpoint": self.checkpoint_info() if not p.prior_only else
            {"id": None, "kind": "prior-only"},
            "input": {"source": getattr(p.loaded, "source", None),
                      "original_size": [int(v) for v in pre.original_size],
                      "crop_box": [float(v) for v in pre.crop_box],
                      "crop_scale": float(pre.scale),
                      "n_people_detected": int(pre.n_people_detected),
                      "notes": list(pre.notes)},
            "camera": {"viewmat": fit.viewmat.tolist(), "K": fit.K.tolist(),
                       "image_size": [int(v) for v in fit.image_size],
                       "convention": "OpenCV world-to-camera; world +y up, person faces +z"},
            "view_cameras": {"azimuths_deg": [float(a) for a in out.cameras.azimuths]
                             if out.cameras.azimuths is not None else None,
                             "viewmats": out.cameras.viewmats.tolist(),
                             "Ks": out.cameras.Ks.tolist(),
                             "image_size": [int(out.cameras.width), int(out.cameras.height)]},
            "settings": dict(p.settings),
            "components": info,
            "fit": {k: v for k, v in fit.diagnostics.items()
                    if isinstance(v, (int, float, str)) or v is None},
            "num_gaussians": len(g),
            "num_gaussians_before_pruning": n_raw,
            "files_up_axis": "-y (rotated 180 deg about x for splat viewers; load_ply undoes it)",
            "timings_s": timings,
        }
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


def _card_body(card: str) -> str:
    """A model card without its YAML header."""
    text = card.lstrip()
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            text = text[end + 4:]
    return text.strip()


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    if isinstance(x, Tensor) and x.numel() == 1:
        return x.item()
    return str(x)

