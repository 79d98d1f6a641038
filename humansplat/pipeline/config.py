"""``pipeline.json``: which components a pipeline runs (:class:`PipelineConfig`), and the
device / precision rules of a run."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..errors import ConfigError
from ..prior.preprocess import FOREGROUND_RATIO, check_foreground_ratio
from ..refine.faithful import FaithfulConfig

# The shipped splat's settings, settable in pipeline.json: PipelineConfig field -> the
# FaithfulConfig field it sets. Their defaults live in FaithfulConfig alone.
FAITHFUL_FIELDS = {
    "input_resolution": "resolution",
    **{name: name for name in (
        "view_resolution", "view_fill", "view_fill_erode", "view_fill_labels",
        "view_min_azimuth", "body_band", "band_grazing", "silhouette_sigmas", "surfel_stretch",
        "view_stretch", "back_lobe",
        "side_opacity_scale", "photo_recede", "photo_recede_search",
        "photo_recede_search_resolution", "depth_split", "deblur_passes",
        "deblur_interior_passes", "render_threads", "frame_band", "correction_lobe",
        "correction_lobe_shape", "hull_reach", "hull_alpha",
        "refine_seconds", "refine_steps", "beyond_edge")},
}
_FAITHFUL = FaithfulConfig()

__all__ = ["PipelineConfig", "PIPELINE_CONFIG_NAME", "MODEL_FILES", "default_device",
           "parse_setting", "resolve_dtype", "autocast_name"]

PIPELINE_CONFIG_NAME = "pipeline.json"
MODEL_FILES = ("config.json", "model.safetensors")
_SPACES = ("pixel", "sd-vae")


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
    body_fit: settings of the body fit that differ from ``prior.fit.FitConfig``'s defaults,
        by field name (e.g. ``{"iters_pose": 60}``); {} = the defaults.
    clothing: how the fitted body is grown to the person's silhouette before the views are
        synthesized and the model anchors on it (``prior.clothing.ClothingConfig`` settings
        that differ from the defaults; {} = the defaults; null = the naked body). Skirts,
        coats and hair keep their volume from the sides and the back.
    foreground_ratio: default share of the crop the person's longer side fills.
    colour_mask: settle the person segmenter's uncertain pixels by colour (GrabCut on the
        crop, ``prior.segmentation.refine_with_colour``): a dark coat over dark grass that
        the 256-px selfie segmenter leaves half-on becomes person (benchmarks/preprocess.py,
        real_photos.py); False: the segmenter's mask as it is.
    landmark_head: in that colour step, the head the pose detector places where the
        segmenter saw background is decided by colour too (``prior.landmark_regions``,
        real-photos item 30: the top of a capped head).
    landmark_limbs: the same for the limbs the pose places (arms, legs, feet; real-photos
        item 33).
    head_core: with landmark_head, where the segmenter lost the head (it holds under half of
        the ellipse's core, its semi-axes times this, 0..1; 0: never), the core is person
        even where colour cannot tell it from the wall behind (a grey cap, a pixelated face;
        real-photos item 38), and the crop frames the whole ellipse.
    segment_shifts: the person segmenter averaged over this many one-pixel shifts of its
        input (1-4; real-photos item 34): the same photo with a grey level of noise gives the
        same crop and mask.
    colour_seeds: the colour step's GrabCut run from this many seeds, a pixel person where
        most runs call it so (1: one run; real-photos item 37).
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
        setting. 768 (was 512): a photo up to 768 px is rendered at its own camera from one
        Gaussian per pixel (grace_hopper, 674 px: 24.3 -> 26.0 dB, 114k -> 194k Gaussians;
        a 1024 px photo: 262k Gaussians, +2.6 s on 2 CPU cores, a 63 MiB .ply).
    sharp_mask: the person mask, upsampled from ``crop_size`` to that resolution, keeps its
        soft edge as many pixels wide as the segmenter drew it (``refine.evidence.
        upsample_mask``); False: bilinear, the edge stretched as much as the mask (a ramp
        of half-transparent Gaussians round the person, the background blended into them).
    view_resolution: the unseen sides: Gaussians per side of each generated view (back,
        left, right; capped at the synthesizer's view size), coloured from that view and
        opaque where it shows the person, beside the model's own; 0 (the default, real-photos
        item 39): the model's alone, which the bundled model makes opaque itself.
    view_fill: those Gaussians only where the model's own splat (without its input view)
        seen from that view is more transparent than this alpha: they close its holes, and
        the front shows through less from behind; 1: everywhere. view_fill_erode: and only
        this many of the view's pixels inside its mask; view_fill_labels: and only on these
        parts (ids in ``prior.parts.PART_NAMES`` order; []: all).
    view_min_azimuth: only the generated views at least this many degrees around from the
        input view become Gaussians (135, the default: the back alone; 0: every one).
    body_band: metres the model's depth (under the photo's and the views' Gaussians) may
        lie from the clothed body's surface (``refine.faithful.anchor_to_body``); None: the
        model's depth as it is.
    band_grazing: that band times |cos|^band_grazing, cos of the ray and the clothed body's
        normal: down to the body's surface where it is seen edge-on (a limb's rim, where the
        model's coarse depth is the front's; ``refine.faithful.anchor_to_body``); 0: the
        full band everywhere.
    silhouette_sigmas: the other Gaussians crossing the photo's silhouette at its camera are
        narrowed across the edge until this many stds lie inside (``refine.coverage.
        narrow_at_silhouette``): no soft halo round the person there; 0: off.
    surfel_stretch / view_stretch: the photo's / the generated back view's Gaussians as
        thin discs on the clothed body's surface, stretched along its slope by up to this
        (``refine.input_view.surfels``; 1: discs facing the camera);
    back_lobe: the photo's Gaussians seen from behind take the generated back view's
        colours (degree-3 SH; off: ``refine.FaithfulConfig``);
    side_opacity_scale: the model's side views' opacity logits times this (``refine.
        FaithfulConfig``; 1: as predicted);
    photo_recede: metres the photo's Gaussians move back along the photo camera's rays, its
        picture unchanged (``refine.FaithfulConfig``; 0: at the depth);
    photo_recede_search: candidate recedes instead, the one chosen per person whose splat
        best matches the model's own from its other views (``refine.sheet_depth``; []: off);
    photo_recede_search_resolution: pixels a side of the photo's sheet in that search when
        the photo's is finer (``refine.FaithfulConfig``);
    depth_split: metres; a photo pixel off the clothed body whose upsampled depth would
        average surfaces further apart than this takes the nearest-looking one's instead
        (``refine.FaithfulConfig``; None: the average);
    deblur_passes: forward renders at the photo's camera that correct the input-view
        Gaussians' colours for the splat's own blur (``refine.deblur``; 0 = off);
    deblur_interior_passes: further such passes on the person's solid interior only
        (``refine.deblur.deblur_colours``; the soft rim keeps the first passes' colours);
    render_threads: threads those renders (and the photo depth search's) composite their
        tiles on: the same splat to the bit, only sooner (``refine.FaithfulConfig``; None:
        2 on a CPU with 2 cores or more);
    frame_band: px beside an edge of the photo that cuts the person that count as inside
        the person when the model's Gaussians are moved behind what the photo shows
        (``refine.FaithfulConfig``; None: off);
    correction_lobe: that correction (and the refinement's) seen only near the photo's
        camera axis, the photo's own colours from the side (degree-3 SH; the viewer's
        .splat keeps the colours the photo's camera sees; ``refine.FaithfulConfig``);
    correction_lobe_shape: how much of it shows in between ("symmetric": half at 45 and
        135 degrees; "front": the first shape, 85 % at 45; ``refine.deblur.LOBE_SHAPES``);
    hull_reach / hull_alpha: metres the photo's Gaussians may move along its camera's rays
        into the model's own silhouettes seen from the side, and the alpha that counts as
        inside (``refine.sheet_depth.into_silhouettes``; real-photos item 40; 0: off);
    refine: when the test-time refinement (``refine.test_time``) runs: "off" (the
        default), "cuda" (only on a GPU) or "always". Off on every device: its 30 steps
        (what a GPU runs in its 2 s) lowered the real photos' re-render on 7 of the 8 dev
        photos (-0.49 dB on average; it fits the pipeline's own mask and composite, not
        the photo), though they raise the synthetic people's input view by 2.6 dB
        (docs/faithful_splat.md, item 3); so a GPU ships the splat the CPU figures measure;
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
    body_fit: dict[str, Any] = field(default_factory=dict)
    clothing: dict[str, Any] | None = field(default_factory=dict)
    foreground_ratio: float = FOREGROUND_RATIO
    colour_mask: bool = True
    landmark_head: bool = True
    landmark_limbs: bool = False
    head_core: float = 0.8
    segment_shifts: int = 4
    colour_seeds: int = 1
    min_opacity: float = 1.0 / 255.0
    part_labels: str = "body"
    faithful: bool = True
    input_resolution: int = _FAITHFUL.resolution
    sharp_mask: bool = True
    view_resolution: int = _FAITHFUL.view_resolution
    view_fill: float = _FAITHFUL.view_fill
    view_fill_erode: int = _FAITHFUL.view_fill_erode
    view_fill_labels: tuple[int, ...] = _FAITHFUL.view_fill_labels
    view_min_azimuth: float = _FAITHFUL.view_min_azimuth
    body_band: float | None = _FAITHFUL.body_band
    band_grazing: float = _FAITHFUL.band_grazing
    silhouette_sigmas: float = _FAITHFUL.silhouette_sigmas
    surfel_stretch: float = _FAITHFUL.surfel_stretch
    view_stretch: float = _FAITHFUL.view_stretch
    back_lobe: bool = _FAITHFUL.back_lobe
    side_opacity_scale: float = _FAITHFUL.side_opacity_scale
    photo_recede: float = _FAITHFUL.photo_recede
    photo_recede_search: tuple[float, ...] = _FAITHFUL.photo_recede_search
    photo_recede_search_resolution: int = _FAITHFUL.photo_recede_search_resolution
    depth_split: float | None = _FAITHFUL.depth_split
    deblur_passes: int = _FAITHFUL.deblur_passes
    deblur_interior_passes: int = _FAITHFUL.deblur_interior_passes
    render_threads: int | None = _FAITHFUL.render_threads
    frame_band: int | None = _FAITHFUL.frame_band
    correction_lobe: bool = _FAITHFUL.correction_lobe
    correction_lobe_shape: str = _FAITHFUL.correction_lobe_shape
    hull_reach: float = _FAITHFUL.hull_reach
    hull_alpha: float = _FAITHFUL.hull_alpha
    refine: str = "off"
    refine_seconds: float = _FAITHFUL.refine_seconds
    refine_steps: int = _FAITHFUL.refine_steps
    beyond_edge: str = _FAITHFUL.beyond_edge
    format_version: int = 1

    def __post_init__(self) -> None:
        def bad(name: str, msg: str):
            raise ConfigError(f"pipeline config: {name} {msg}")

        from .components import body_model_names, synthesizer_names

        search = self.photo_recede_search
        if not isinstance(search, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in search):
            bad("photo_recede_search", f"must be a list of metres, got {search!r}")
        object.__setattr__(self, "photo_recede_search", tuple(float(v) for v in search))
        if isinstance(self.view_fill_labels, list):  # JSON's list; faithful_config checks it
            object.__setattr__(self, "view_fill_labels", tuple(self.view_fill_labels))
        if self.body_model not in body_model_names():
            bad("body_model", f"must be one of {body_model_names()} (or a name registered "
                f"with register_body_model), got {self.body_model!r}")
        if self.view_synthesizer not in synthesizer_names():
            bad("view_synthesizer", f"must be one of {synthesizer_names()} (or a name "
                f"registered with register_synthesizer), got {self.view_synthesizer!r}")
        if self.space not in _SPACES:
            bad("space", f"must be one of {_SPACES}, got {self.space!r}")
        if self.view_synthesizer == "sv3d" and self.space != "sd-vae":
            bad("space", "must be 'sd-vae' with the sv3d synthesizer (SV3D samples latents)")
        if not isinstance(self.sv3d_frames, int) or self.sv3d_frames < 4:
            bad("sv3d_frames", f"must be an int >= 4, got {self.sv3d_frames!r}")
        if not isinstance(self.crop_size, int) or not 64 <= self.crop_size <= 2048:
            bad("crop_size", f"must be an int in [64, 2048], got {self.crop_size!r}")
        self.fit_config()  # validates body_fit
        if self.clothing is not None and not isinstance(self.clothing, dict):
            bad("clothing", f"must be an object of ClothingConfig settings or null, got "
                f"{self.clothing!r}")
        self.clothing_config()  # validates clothing
        check_foreground_ratio(self.foreground_ratio)
        if not isinstance(self.colour_mask, bool):
            bad("colour_mask", f"must be true or false, got {self.colour_mask!r}")
        if type(self.segment_shifts) is not int or not 1 <= self.segment_shifts <= 4:
            bad("segment_shifts", f"must be an int in 1..4, got {self.segment_shifts!r}")
        if type(self.colour_seeds) is not int or not 1 <= self.colour_seeds <= 16:
            bad("colour_seeds", f"must be an int in 1..16, got {self.colour_seeds!r}")
        if isinstance(self.head_core, bool) or not isinstance(self.head_core, (int, float)) \
                or not 0.0 <= self.head_core <= 1.0:
            bad("head_core", f"must be a number in [0, 1], got {self.head_core!r}")
        for name in ("landmark_head", "landmark_limbs"):
            if not isinstance(getattr(self, name), bool):
                bad(name, f"must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.sharp_mask, bool):
            bad("sharp_mask", f"must be true or false, got {self.sharp_mask!r}")
        if not isinstance(self.correction_lobe, bool):
            bad("correction_lobe", f"must be true or false, got {self.correction_lobe!r}")
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
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise ConfigError(f"pipeline config: unknown field(s) {unknown}")
        return replace(self, **changes)

    def fit_config(self):
        """The ``prior.fit.FitConfig`` of ``body_fit``."""
        from ..prior.fit import FitConfig

        if not isinstance(self.body_fit, dict):
            raise ConfigError(f"pipeline config: body_fit must be an object of FitConfig "
                              f"settings, got {self.body_fit!r}")
        known = {f.name for f in fields(FitConfig)}
        unknown = sorted(set(self.body_fit) - known)
        if unknown:
            raise ConfigError(f"pipeline config: body_fit has unknown setting(s) {unknown}; "
                              f"known: {sorted(known)}")
        return FitConfig(**self.body_fit)

    def clothing_config(self):
        """The ``prior.clothing.ClothingConfig`` of ``clothing`` (None: the naked body)."""
        from ..prior.clothing import ClothingConfig

        return None if self.clothing is None else ClothingConfig.from_dict(self.clothing)

    def faithful_config(self, device: str = "cpu"):
        """The ``refine.FaithfulConfig`` these fields select for a run on ``device``."""
        on = self.refine == "always" or (self.refine == "cuda" and
                                         torch.device(device).type == "cuda")
        values = {}
        for mine, theirs in FAITHFUL_FIELDS.items():
            v = getattr(self, mine)
            # JSON writes 2.0 as 2: the faithful stage's float settings get floats
            if isinstance(getattr(_FAITHFUL, theirs), float) and type(v) is int:
                v = float(v)
            values[theirs] = v
        if not on:
            values["refine_seconds"] = 0.0
        return FaithfulConfig(**values)


def parse_setting(item: str) -> tuple[str, object]:
    """``FIELD=VALUE`` (a ``--set`` on the command line) -> (field, the JSON value, or the
    text itself when it is not JSON: ``refine=always`` and ``refine="always"`` alike)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects FIELD=VALUE (a JSON value), got {item!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def default_device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype, device: torch.device) -> torch.dtype:
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


_AUTOCAST_NAMES = {torch.float32: None, torch.float16: "fp16", torch.bfloat16: "bf16"}


def autocast_name(dtype: torch.dtype) -> str | None:
    """The model's per-call ``autocast`` argument for a pipeline dtype (None = fp32)."""
    return _AUTOCAST_NAMES[dtype]
