"""``humansplat eval``: novel-view metrics on a held-out split, every method in one run.

Protocol (the paper's, at our scale): for every subject of the split, the model sees the one
input photo (plus the generated views and the fitted body it would get in the app) and is
scored on every stored target view around the subject (16 full-body azimuths on the test
splits, plus the upper-body and face cycles, reported per level). PSNR and SSIM on the full
image (white background), the perceptual metric whose name the JSON key carries
(``effnet-lite0`` offline, ``lpips-vgg`` when its weights are provided), and the silhouette:
IoU of the render's alpha (> 0.5) with the ground-truth mask per view (``mask_iou``), and
over the full-body views 45-135 degrees from the input view alone (``mask_iou_side``: where
a coat or a dress loses its volume first).

Every method is rendered at ``supersample`` (2) times the targets' size and area-averaged
down, as the ground truth was rendered: a splat denser than the targets' pixels (the
photo's own Gaussians) is scored as a viewer at its density shows it, not point-sampled
(point-sampled, the shipped splat read 2 dB lower, its edges bloated by the rasterizer's
0.3 px dilation).

Methods compared in the same run:

- ``prior-mesh``: the structure prior alone, the fitted body textured by the projection
  synthesizer and rendered as a mesh (the strongest no-learning baseline we have).
- ``prior-gaussians``: the same textured body as Gaussians (what ``humansplat prior`` exports).
- every checkpoint given as NAME=PATH (the bundled model, the ablations...): the network's
  own Gaussians.
- ``NAME+faithful`` for each checkpoint (``EvalConfig.faithful``): the splat the app ships
  for that model, made by the same ``refine.make_faithful`` step with the checkpoint's own
  ``pipeline.json`` (else the defaults; ``pipeline_overrides`` on top) and its CPU settings:
  the input photo's own Gaussians at its resolution on the sample's clothed body (and the
  generated back view's where ``view_resolution`` asks for them; off by default), the
  model's others carved by the photo's mask, then pruned at the pipeline's ``min_opacity``.

Writes ``results.json`` (per subject, per level, per method), ``results.md`` (a table) and
``grids/<subject>.png`` (ground truth and every method at 4 azimuths).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..cameras import Cameras, view_azimuths
from ..metrics import mask_iou
from .metrics import MetricResult, MetricSet

__all__ = ["EvalConfig", "evaluate", "body_fit_from_sample", "format_table",
           "format_azimuth_table"]

LEVELS = ("full_body", "upper_body", "face")
BASELINES = ("prior-mesh", "prior-gaussians")


@dataclass
class EvalConfig:
    root: str = "data/synth"
    split: str = "test"
    checkpoints: dict[str, str] = field(default_factory=dict)  # name -> model folder
    baselines: tuple[str, ...] = BASELINES
    max_subjects: int | None = None
    perceptual: str = "effnet-lite0"
    grid_subjects: int = 4  # image grids for the first N subjects
    faithful: bool = True  # also score each checkpoint's shipped splat (NAME+faithful)
    # every method is rendered at this many times the targets' size and area-averaged, as
    # the ground truth is (data.subject_render): a splat denser than the targets' pixels
    # is seen as a viewer at its own density shows it, not point-sampled
    supersample: int = 2
    # pipeline.json fields the NAME+faithful rows use instead of the checkpoint's own
    # (its folder's pipeline.json, else the defaults), e.g. {"view_resolution": 0}
    pipeline_overrides: dict = field(default_factory=dict)
    output_dir: str = "eval"


def body_fit_from_sample(sample: dict, body_model):
    """A :class:`~humansplat.prior.fit.BodyFit` for a dataset sample's body (the vertices the
    model gets) seen by the sample's input camera (view 0, rescaled to the input photo)."""
    from ..prior.fit import BodyFit

    S = sample["input_image"].shape[-1]
    size = sample["views"].shape[-1]  # pixel space: the Ks are for this size
    cam = Cameras(sample["viewmats"][:1].float(), sample["Ks"][:1].float(), size,
                  size).resized(S, S)
    verts = sample["body_vertices"].float()
    return BodyFit(vertices=verts, faces=body_model.faces.cpu(), joints=torch.zeros(0, 3),
                   keypoints=torch.zeros(23, 3), part_labels=body_model.part_labels.cpu(),
                   params={}, viewmat=cam.viewmats[0], K=cam.Ks[0], image_size=(S, S))


class _Prior:
    """The prior for one sample: the textured body behind both baselines, and the generated
    views the faithful step turns into Gaussians (each made once per sample, on demand)."""

    def __init__(self, body_model):
        from ..synth.projection import ProjectionSynthesizer

        self.synth = ProjectionSynthesizer(body_model)
        self.body_model = body_model
        self._key = None
        self._inp = self._body = None

    def _for(self, sample: dict):
        from ..front import synth_input

        if self._key is not sample:
            fit = body_fit_from_sample(sample, self.body_model)
            self._inp = synth_input(sample["input_image"].float(),
                                    sample["input_mask"].float(), fit)
            self._body, self._key = None, sample
        return self._inp

    def _textured(self, sample: dict):
        inp = self._for(sample)
        if self._body is None:
            self._body = self.synth.texture(inp)
        return self._body

    def generated_views(self, sample: dict):
        """The synthesizer's 4 orthogonal views of the sample (``refine.GeneratedViews``),
        rendered from the same texturing as the baselines (the synthesizer renders them so;
        only its view at the input camera, which the faithful step never uses, differs)."""
        from ..refine import GeneratedViews

        inp = self._for(sample)
        R = inp.size
        cams = inp.target_cameras.to("cpu", torch.float32).resized(R, R)
        rgb, alpha = self.synth.render(self._textured(sample), cams, R, with_alpha=True)
        return GeneratedViews(rgb, alpha, cams)

    def render(self, sample: dict, cams: Cameras, which: list[str]
               ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{name: (rgb [T,3,R,R], alpha [T,R,R])} renders of the baselines in ``which``
        ("prior-mesh", "prior-gaussians"), from one texturing of the sample's body."""
        R = cams.width
        body = self._textured(sample)
        out = {}
        if "prior-mesh" in which:
            out["prior-mesh"] = self.synth.render(body, cams, R, with_alpha=True)
        if "prior-gaussians" in which:
            out["prior-gaussians"] = _render_gaussians(self.synth.gaussians_of(body), cams)
        return out


def _render_gaussians(g, cams: Cameras) -> tuple[torch.Tensor, torch.Tensor]:
    """(rgb [T,3,R,R], alpha [T,R,R]) of Gaussians (RGB or SH) on white."""
    from ..render import TorchRasterConfig, render_gaussians, tile_threads

    img, alpha = render_gaussians(g, cams.viewmats, cams.Ks, cams.width, cams.height,
                                  torch_config=TorchRasterConfig(threads=tile_threads()))
    return img.permute(0, 3, 1, 2).clamp(0, 1), alpha


def _load_model(path: str):
    from ..model import LatentReconstructionTransformer

    return LatentReconstructionTransformer.from_pretrained(path).eval()


@torch.no_grad()
def _model_render(model, sample: dict, cams: Cameras):
    """(rgb [T,3,R,R], alpha [T,R,R]) of the model's splat for one sample, and the model's
    output (for the faithful step)."""
    from ..train.step import collate_samples, model_kwargs, render_views

    batch = collate_samples([sample])
    out = model(**model_kwargs(batch))
    r = render_views(out, cams.viewmats[None], cams.Ks[None], cams.width, with_parts=False)
    return r.rgb[0].clamp(0, 1), r.alpha[0, :, 0], out


def sample_evidence(sample: dict):
    """The sample's input photo as ``refine.PhotoEvidence`` (seen whole, on white)."""
    from ..refine import PhotoEvidence

    img = sample["input_image"].float().clamp(0, 1)
    mask = sample["input_mask"].float()[0].clamp(0, 1)
    S = img.shape[-1]
    size = sample["views"].shape[-1]  # pixel space: the Ks are for this size
    cam = Cameras(sample["viewmats"][:1].float(), sample["Ks"][:1].float(), size,
                  size).resized(S, S)
    return PhotoEvidence(image=img, composite=img * mask + (1 - mask), mask=mask, camera=cam,
                         frame=torch.ones(mask.shape, dtype=torch.bool),
                         background=(1.0, 1.0, 1.0))


def _faithful_render(model, out, sample: dict, cams: Cameras, generated, faces,
                     pipeline_config) -> tuple[torch.Tensor, torch.Tensor]:
    """(rgb, alpha) of the splat the app would ship for this model's output ``out``."""
    from ..model.inputs import ModelInputs
    from ..refine import make_faithful, output_view_cameras

    inputs = ModelInputs(sample["views"], sample["viewmats"], sample["Ks"], None)
    g = out.gaussians(0).detach().to("cpu", torch.float32)
    res = make_faithful(g, grid=model.config.gaussian_grid,
                        view_cameras=output_view_cameras(model.config, inputs),
                        evidence=sample_evidence(sample),
                        config=pipeline_config.faithful_config("cpu"), generated=generated,
                        body=(sample["body_vertices"].float(), faces))
    g = res.gaussians
    if pipeline_config.min_opacity > 0:
        g = g.prune(pipeline_config.min_opacity)
    return _render_gaussians(g, cams)


def format_table(summary: dict, perceptual_key: str) -> str:
    """Markdown: one row per method, full-body metrics first, then per level PSNR."""
    head = (f"| method | PSNR (dB) | SSIM | {perceptual_key} | mask IoU | mask IoU sides | "
            "PSNR upper body | PSNR face |\n|---|---|---|---|---|---|---|---|\n")
    rows = []
    for name, lv in summary.items():
        def g(level, key, fmt):
            v = lv.get(level, {}).get(key)
            return "-" if v is None else fmt.format(v)
        rows.append(f"| {name} | {g('full_body', 'psnr', '{:.2f}')} | "
                    f"{g('full_body', 'ssim', '{:.4f}')} | "
                    f"{g('full_body', perceptual_key, '{:.4f}')} | "
                    f"{g('full_body', 'mask_iou', '{:.4f}')} | "
                    f"{g('full_body', 'mask_iou_side', '{:.4f}')} | "
                    f"{g('upper_body', 'psnr', '{:.2f}')} | {g('face', 'psnr', '{:.2f}')} |")
    return head + "\n".join(rows) + "\n"


def format_azimuth_table(by_azimuth: dict, perceptual_key: str) -> str:
    """Markdown: full-body PSNR / perceptual per method and azimuth bin (degrees from the
    input view, either way), so a gain or a loss can be placed on the front, sides or back."""
    bins = sorted({int(b) for lv in by_azimuth.values() for b in lv})
    head = ("| method | " + " | ".join(f"{b}°" for b in bins) + " |\n|---|"
            + "---|" * len(bins) + "\n")
    rows = []
    for name, lv in by_azimuth.items():
        cells = []
        for b in bins:
            v = lv.get(str(b))
            cells.append("-" if v is None else
                         f"{v['psnr']:.2f} / {v.get(perceptual_key, float('nan')):.3f}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def evaluate(cfg: EvalConfig, *, progress: Callable[[int, int, str], None] | None = None
             ) -> dict:
    """Run the protocol; returns the summary dict also written to ``results.json``."""
    from ..io.video import save_image_grid
    from ..pipeline.config import PipelineConfig
    from ..prior.body import AnnyBody
    from ..train.dataset import SyntheticHumans
    from ..train.perceptual import get_perceptual, perceptual_key

    out_dir = Path(cfg.output_dir)
    (out_dir / "grids").mkdir(parents=True, exist_ok=True)
    data = SyntheticHumans(cfg.root, split=cfg.split, targets=None)
    n = len(data) if cfg.max_subjects is None else min(cfg.max_subjects, len(data))
    if n == 0:
        raise RuntimeError(f"no subjects in split {cfg.split!r} under {cfg.root!r}")
    perc = get_perceptual(cfg.perceptual) if cfg.perceptual != "none" else None
    pkey = perceptual_key(perc) if perc is not None else "perceptual"
    metrics = MetricSet(perc)
    models = {name: _load_model(path) for name, path in cfg.checkpoints.items()}
    prior = _Prior(AnnyBody()) if cfg.baselines or (cfg.faithful and models) else None
    faithful = [f"{m}+faithful" for m in models] if cfg.faithful else []
    pipeline_configs = {}
    for name, path in cfg.checkpoints.items():
        pj = Path(path) / "pipeline.json"
        pc = PipelineConfig.read(pj) if pj.is_file() else PipelineConfig()
        pipeline_configs[name] = pc.replace(**cfg.pipeline_overrides)
    methods = list(cfg.baselines) + list(models) + faithful

    per_subject = []
    acc: dict[str, dict[str, list[dict]]] = {m: {lv: [] for lv in LEVELS} for m in methods}
    by_az: dict[str, dict[str, list[dict]]] = {m: {} for m in methods}  # full body only
    seconds: dict[str, float] = {m: 0.0 for m in methods}
    for i in range(n):
        s = data[i]
        R = s["target_rgb"].shape[-1]
        cams = Cameras(s["target_viewmats"].float(), s["target_Ks"].float(), R, R)
        gt = s["target_rgb"].float()
        gt_mask = s["target_mask"].float()[:, 0]  # [T,R,R]
        levels = s["target_levels"]
        # full-body views seen from a side (45-135 degrees from the input view, either way)
        az = view_azimuths(s["viewmats"][0], s["target_viewmats"]).abs()
        side = (levels == 0) & (az >= 45.0) & (az <= 135.0)
        # nearest 45 degrees, halves up (22.5 -> 45): 0 front, 90 sides, 180 back
        az_bin = torch.floor(az / 45.0 + 0.5 + 1e-6).long() * 45
        renders, alphas = {}, {}
        ss = int(cfg.supersample)
        rcams = cams.resized(R * ss, R * ss) if ss > 1 else cams
        if cfg.baselines:
            t = time.perf_counter()
            for m, (rgb, alpha) in prior.render(s, rcams, list(cfg.baselines)).items():
                renders[m], alphas[m] = rgb, alpha
            for m in cfg.baselines:  # one shared texturing: its time split evenly
                seconds[m] += (time.perf_counter() - t) / len(cfg.baselines)
        t = time.perf_counter()
        views = prior.generated_views(s) if faithful else None  # once for every checkpoint
        t_views = time.perf_counter() - t
        for m in models:
            t = time.perf_counter()
            renders[m], alphas[m], out = _model_render(models[m], s, rcams)
            dt = time.perf_counter() - t
            seconds[m] += dt
            if faithful:
                t = time.perf_counter()
                f = f"{m}+faithful"
                renders[f], alphas[f] = _faithful_render(
                    models[m], out, s, rcams, views, prior.body_model.faces.cpu(),
                    pipeline_configs[m])
                seconds[f] += time.perf_counter() - t + dt + t_views  # model and views too
        if ss > 1:
            for m in methods:
                renders[m] = torch.nn.functional.avg_pool2d(renders[m], ss)
                alphas[m] = torch.nn.functional.avg_pool2d(alphas[m][:, None], ss)[:, 0]
        row = {"subject": s["subject"], "methods": {}}
        for m in methods:
            res = metrics.compute(renders[m], gt)
            for j, r in enumerate(res.per_image):  # the silhouette, per view
                r["mask_iou"] = mask_iou(alphas[m][j], gt_mask[j])
                if bool(side[j]):
                    r["mask_iou_side"] = r["mask_iou"]
                if int(levels[j]) == 0:
                    by_az[m].setdefault(str(int(az_bin[j])), []).append(r)
            row["methods"][m] = {}
            for li, lv in enumerate(LEVELS):
                sel = [j for j in range(len(levels)) if int(levels[j]) == li]
                if not sel:
                    continue
                rows = [res.per_image[j] for j in sel]
                acc[m][lv].extend(rows)
                row["methods"][m][lv] = MetricResult.from_rows(rows).mean
        per_subject.append(row)
        if i < cfg.grid_subjects:
            full = [j for j in range(len(levels)) if int(levels[j]) == 0]
            pick = full[:: max(1, len(full) // 4)][:4]
            tiles = []
            for src in [gt] + [renders[m] for m in methods]:
                tiles += [(src[j].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
                          for j in pick]
            save_image_grid(tiles, out_dir / "grids" / f"{s['subject']}.png", ncols=len(pick))
        if progress is not None:
            progress(i + 1, n, f"evaluated {s['subject']}")

    summary = {m: {lv: MetricResult.from_rows(rows).mean for lv, rows in acc[m].items()
                   if rows}
               for m in methods}
    by_azimuth = {m: {b: {**MetricResult.from_rows(rows).mean, "views": len(rows)}
                      for b, rows in sorted(by_az[m].items(), key=lambda kv: int(kv[0]))}
                  for m in methods}
    result = {
        "split": cfg.split, "root": cfg.root, "subjects": n, "perceptual": pkey,
        "methods": methods, "checkpoints": cfg.checkpoints, "supersample": cfg.supersample,
        "faithful_pipeline": {m: pipeline_configs[m].to_dict() for m in models
                              if cfg.faithful},
        "grid_rows": ["ground truth"] + methods,
        "summary": summary,
        "by_azimuth": by_azimuth,
        "seconds_per_subject": {m: seconds[m] / n for m in methods},
        "per_subject": per_subject,
    }
    (out_dir / "results.json").write_text(json.dumps(result, indent=2))
    (out_dir / "results.md").write_text(
        f"Split `{cfg.split}` ({n} subjects), novel views around each subject; "
        f"rows of the grids: {', '.join(result['grid_rows'])}.\n\n" + format_table(summary, pkey)
        + "\nFull-body PSNR (dB) / perceptual by azimuth from the input view:\n\n"
        + format_azimuth_table(by_azimuth, pkey))
    return result
