"""Faithful to the photo: the model's Gaussians + the photo's own, carved and refined.

    model Gaussians (V views x G x G, pixel-aligned)
        ├─ views at the input camera ─► their depth + opacity ─► photo Gaussians at the
        │                                (edge-aware upsampling)  photo's resolution
        └─ the other views ─► carved by the photo's mask and frame ─┐
                                                                    ├─► test-time refinement
                                              photo Gaussians ──────┘   (time budget)

The photo Gaussians carry the input view at up to the crop's resolution, as thin discs on
the clothed body's surface where it covers them (:func:`.input_view.surfels`). The model's own
low-resolution Gaussians of that view stay where they cannot show through the photo's: at
least 3 of their sigmas inside its solid mask and 2 cm behind the deepest surface it shows
under them (the rasterizer sorts by centre depth: behind the centre's pixel alone, a wide
Gaussian covered a surface sloping away beside it, astronaut -2.8 dB). The model shaped
them for its side views too (seed 7, 16 + 8 people: +0.03 / +0.08 dB, side IoU +0.002 /
+0.006; the real photos within 0.01 dB). The other views keep theirs, and when the view
synthesizer's views and masks are given (``generated``) each such view also becomes
Gaussians the same way: one per pixel at ``view_resolution``, coloured from that view,
opaque where its mask covers the person, at the model's depth for that view, then moved
``view_inset`` further from that view's camera. The model alone leaves the unseen sides
sparse and half transparent (on astronaut: 2,142 Gaussians for back and sides, alpha 0.66
on average over the person seen from behind), so the photo's own Gaussians showed through
from behind: the front's badge on the back. Just behind the model's own, the view's
Gaussians close those holes without blurring what the model put there. All of
it is then carved by the photo's mask (:mod:`.coverage`); the generated views' Gaussians
more strictly (3 sigma inside the silhouette, behind the deepest surface under them), so
the input view renders as before (on the real photos: within 0.03 dB). Off by default
since real-photos item 39 (``view_resolution`` 0): the bundled model, trained with its
input view behind a sheet of the photo's pixels, makes the back opaque itself, and without
the generated back view's Gaussians the sides and the back score better (tuning seed 7,
128 and 256 px, `test` and `hard`: perceptual -0.004 to -0.008, PSNR -0.01 to +0.12 dB).

Last, the model's views away from the photo place the photo's Gaussians in depth, which the
photo cannot tell (:mod:`.sheet_depth`): the whole sheet is receded to where those views see
it best, then each Gaussian that the model's side silhouettes leave out is moved along its
photo ray into them; the picture at the photo's camera stays.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import Cameras, camera_centers, pixel_rays, view_azimuths
from ..errors import ConfigError
from ..gaussians import Gaussians
from ..geometry import vertex_normals
from ..image_filters import max_filter
from ..render import TorchRasterConfig, tile_threads
from .coverage import (BEYOND_EDGE, carve_by_mask, deepest_within, narrow_at_silhouette,
                       opacity_beyond_frame, projected_sigma, push_behind,
                       push_behind_footprint, recede, shown_depth, wholly_inside)
from .evidence import PhotoEvidence
from .input_view import PhotoGaussians, grid_depth, photo_gaussians, resample

__all__ = ["FaithfulConfig", "FaithfulResult", "GeneratedViews", "make_faithful",
           "input_view_ids", "output_view_cameras"]


@dataclass(frozen=True)
class FaithfulConfig:
    """resolution: input-view Gaussians per side (capped at the crop's size): the density
        setting (768: ~150-260k Gaussians for a photo that large);
    min_mask: mask level below which a pixel gets no Gaussian;
    plane_scale / depth_scale: their std across / along the ray, in pixel footprints;
    grow_px: pixels the photo's mask is grown by before carving the other views (negative:
        shrunk). At -1 the model's wide Gaussians no longer darken the photo's soft rim at
        the input camera, which the colour correction (:mod:`.deblur`) then brightened:
        light streaks down limbs seen from the side (seed 7, 16 + 8 people: +0.24 / +0.26
        dB, perceptual -0.005 / -0.011 against 4 px);
    carve_margin: the other views' Gaussians closer to the camera than the photo's surface
        + this (metres; negative: behind it) are carved: they would cover what the photo
        shows (-0.02: they must lie 2 cm behind it; measured +0.5 dB at the input view vs
        +0.03 on astronaut);
    beyond_edge: "cut" (nothing beyond the photo's edge) or "complete" (keep the model's
        guess there);
    view_resolution: Gaussians per side of each generated view (capped at the view's size)
        added beside the model's Gaussians of that view when the views are given; 0 (the
        default, real-photos item 39): none. The bundled model makes its own back opaque
        (trained behind a sheet of the photo's pixels); 128, the back view as Gaussians,
        was the default until then and now scores lower (module docs);
    view_inset: metres the generated views' Gaussians are moved along their view's axis,
        away from it: behind the model's own Gaussians of that view, they close its holes
        instead of blending their coarser, lighter colours into it (seed 7, 16 + 8 people:
        +0.16 / +0.18 dB, the back views +0.4, perceptual -0.002 / -0.002, side IoU +0.001 /
        +0.004 against 0; 2 and 7 cm within 0.03 dB of 4);
    view_fill: the generated views' Gaussians only where the model's own splat without its
        input view, seen from that view's camera, is more transparent than this (alpha
        below it): they close its holes and leave its opaque back as it is (real-photos item
        42); 1: everywhere (item 4);
    view_fill_erode: with ``view_fill`` < 1, and only inside the generated view's mask
        eroded by this many of its pixels (at ``view_resolution``): on its rim, where the
        fitted body's outline and the model's differ, its wider discs only widened the
        back (seed 7 `test`: -0.016 dB, perceptual +0.0011 with 0; +0.012 / -0.0001 with
        2, +0.006 / -0.0001 with 4);
    view_fill_labels: with ``view_fill`` < 1, and only the Gaussians whose part label (the
        model's, ``humansplat.prior.parts.PART_NAMES`` order: 12 neck, 15 head) is one of
        these; (): any label (real-photos item 43);
    view_min_azimuth: only the generated views at least this many degrees around from the
        input view become Gaussians (135: the back; 0: every one). The back's close the
        splat where the photo's own Gaussians would show through from behind; the sides'
        only added a second, blockier surface (on 6 `test` people: full-body 20.74 ->
        20.96 dB, face 14.45 -> 14.81, side IoU 0.813 -> 0.818 with the back's alone);
    deblur_passes: forward renders that correct the photo Gaussians' colours for the
        splat's own blur at the input camera (:mod:`.deblur`; 0 = off). 2 with
        ``correction_lobe`` (seed 7 `test`, 16 people: input view 30.41 -> 31.16 dB); without
        the lobe a second pass brightened the rim seen from the side (3 passes: perceptual
        0.171 -> 0.177);
    deblur_interior_passes: further passes that correct only the solid interior (mask >= 0.99
        within 2 px; :func:`.deblur.deblur_colours`). More passes everywhere lifted the
        interior and over-corrected the soft rim (4 in all on the dev photos: astronaut
        +0.37 dB, zidane -0.29);
    render_threads: the colour correction's and the depth search's renders (no gradients)
        composite their tiles on this many threads (``TorchRasterConfig.threads``: the same
        bits, only faster); None: :func:`humansplat.render.tile_threads` (2 on a CPU of 2
        cores or more);
    refine_seconds: the test-time refinement's time budget (0 = off);
    refine_steps: its most steps; refine_size: side of its input-view render (None: the
        crop's); refine_lr: Adam's base rate; reg_weight: weight of the other views'
        regulariser; reg_size: their render size;
    body_band: metres the model's depth may lie from the clothed body's surface where the
        body is given (:func:`anchor_to_body`); None: the model's depth as it is;
    keep_input_view: keep the model's own input-view Gaussians (module docs): those
        ``input_view_inside`` of their sigmas inside the photo's solid mask, moved at least
        ``input_view_behind`` metres behind the deepest surface the photo shows within 3
        median sigmas; False: the photo Gaussians replace them all;
    correction_lobe: the photo Gaussians' colour corrections (deblur, refinement) made
        view-dependent (:func:`.deblur.correction_lobe`): whole along the photo's camera
        axis, none at right angles, where the photo's own colours show, and the whole splat
        stored as degree-3 SH (the .ply's layout already holds it; RGB-only formats such as
        the viewer's .splat keep the colours the photo's camera sees,
        ``io.compact.rgb_seen_from``). The correction, made for the photo's camera, showed
        from the side as light streaks down limbs (the soft rim's Gaussians, brightened
        where the model's behind them darkened the rim). With ``deblur_passes`` 2, on the
        tuning seeds 7 / 9: perceptual -0.003 to -0.004, PSNR -0.005 to +0.013 dB
        (README, real-photos item 21);
    correction_lobe_shape: how much of the correction shows between the photo's camera axis
        and right angles (:data:`.deblur.LOBE_SHAPES`): "symmetric" (half of it at 45 and
        135 degrees) or "front" (the first shape: 85 % at 45, 15 % at 135). The rim's
        whitened Gaussians showed as white dashes down limbs at 45 degrees with "front";
        "symmetric" on seed 7 / 9: PSNR +0.013 to +0.031 dB, perceptual -0.0019 to -0.0029
        (README, real-photos item 28);
    behind_footprint: the other views' Gaussians whose 3-sigma footprint at the input camera
        lies wholly inside the silhouette are moved behind the deepest surface the photo
        shows anywhere under it (:func:`.coverage.push_behind_footprint`), not only under
        their centre: a wide one showed through a white strap that the model's depth put
        behind the coat (real photos: the astronaut cut at the left 29.22 -> 29.59 dB, and
        28.27 -> 29.29 with weights whose depth put the strap deeper; seed 7, 8 + 8
        people: -0.006 / +0.003 dB).
    frame_band: px beside a cut edge of the photo that count as inside the person for
        ``behind_footprint`` (:func:`.coverage.cut_band`: only where the edge cuts the
        person); None: off. A cut edge is no silhouette, so the model's wide Gaussians near
        it stayed in front of what the photo shows (the astronaut cut at the left 31.28 ->
        34.50 dB with 8; all 11 real photos 23.91 -> 24.25 dB, none lower: README,
        real-photos items 26-27).
    band_grazing: ``body_band`` times |cos|^band_grazing, cos of the ray and the clothed
        body's normal: down to the body's surface where it is seen edge-on
        (:func:`anchor_to_body`), for the photo's and the generated views' Gaussians; 0:
        the full band everywhere. The model's coarse depth on a limb's rim is the front's,
        so a rim pixel sat up to the band in front of its place: a streak beside the limb
        seen from the side and behind (seed 7 / 9 `test`, 16 / 12 people, against 0: +0.12 /
        +0.11 dB with 1, +0.15 / +0.15 dB with 2).
    silhouette_sigmas: the other Gaussians whose footprint at the input camera crosses the
        photo's silhouette are narrowed across its edge until this many of their stds lie
        inside (:func:`.coverage.narrow_at_silhouette`); 0: off. Their soft dark halo
        round the person at the photo's camera goes; the sides keep their extent.
    surfel_stretch: where the clothed body is given, the photo's Gaussians are thin discs
        on its surface stretched along its slope by 1/|cos|, at most this much
        (:func:`.input_view.surfels`; 1: discs facing the camera). Where the surface slopes
        away from the camera, a disc facing it stands across the surface and smears it seen
        from elsewhere (a ball seen 45 degrees round: 24.8 vs 32.0 dB). Seed 7 / 9 (16 + 8 / 12 + 8
        people), with ``view_stretch`` 4, shipped splat PSNR +0.05 to +0.08 dB, perceptual
        -0.001 to -0.004; the 7 dev photos at their camera -0.02 to +0.03 dB (8: no better
        than 4, perceptual worse);
    view_stretch: the same for the generated views' Gaussians (the back's);
    back_lobe: the photo's Gaussians seen from straight behind take the colour the
        generated back view shows along the same line (:func:`.deblur.correction_lobe`),
        so a face or badge seen through a gap in the back looks like the back. Off: on seed
        7 / 9 it cost 0.01-0.02 dB and perceptual 0.0001-0.0015 (the synthetic people's
        fronts and backs are the same cloth; the back view is the prior's blurrier render).
    side_opacity_scale: the opacity logits of the model's Gaussians of its side views
        (less than ``view_min_azimuth`` around from the photo; not the back view's, not the
        input view's) times this (:func:`softened`; 1: as predicted). The model learnt its
        opacities for its own splat, every view's Gaussians overlapping; here the photo's
        mask carves the side views' rim, and their faint edge Gaussians, made a little more
        opaque, close the side silhouettes (seed 7 / 9 at 0.7: side IoU +0.002 to +0.004,
        PSNR +0.00 to +0.05 dB, perceptual +0.0001 to +0.0008). Applied to every other
        view, the back lost perceptual too; as ``1 - (1 - o)^k``, the input view lost 0.2 to
        0.4 dB (the rim's Gaussians show through the photo's soft edge).
    photo_recede: metres the photo's Gaussians move back along the photo camera's rays
        once everything else is placed (:func:`.coverage.recede`: scaled about the camera,
        so its picture is unchanged; the other views then see them that much deeper).
        Less than the margins the other Gaussians keep behind the photo (``carve_margin``,
        ``input_view_behind``), so they stay behind it. 0: where the depth put them.
    photo_recede_search: candidate recedes (metres, each in (-0.02, 0.02)) instead of the
        fixed one: the one whose splat, seen from the model's views away from the photo's
        camera, is closest to the model's own splat there (:mod:`.sheet_depth`; item 31:
        held out +0.02 to +0.10 dB); () off.
    photo_recede_search_resolution: the search sees the photo's sheet rebuilt at this many
        pixels a side when the photo's is finer (a real photo's ~150k Gaussians cost seconds
        there), the photo's own sheet otherwise. 256 (a synthetic person's whole 256 px
        crop) gained on the tuning seeds (+0.070 against +0.021 dB) but not held out (PSNR
        up on 4 of 8 splits, 256 px `test` -0.16 dB: docs/faithful_splat.md, item 31).
    depth_split: metres; where the clothed body does not cover a photo (or generated view)
        pixel and the model's depths it averages while upsampling spread more than this, it
        takes its heaviest cell's depth instead (:func:`.depth.joint_bilateral_upsample`):
        a held object's coarse cells straddle its edge, and their mean floated a row of
        pixels between it and the body, a streak seen from the side (item 32; on the body,
        ``body_band`` puts such a pixel back on the surface; 0.02 everywhere, tried first:
        perceptual +0.0035 on the tuning seeds). None: the average.
    hull_reach: metres the photo's Gaussians may move along the photo camera's rays so
        that the model's own splat, seen from its side views (45-135 degrees around),
        covers them (:func:`.sheet_depth.into_silhouettes`): one the model's side
        silhouette leaves out (a foot, a hand, a shirt's hem that the coarse depth put in
        front of the body) stood out of the profile, a smear beside the person from the
        side; 0: off. Moved right after the sheet is built, so everything placed behind it
        follows (real-photos item 40: held out, all eight splits PSNR +0.009 to +0.053 dB,
        perceptual -0.0024 to -0.0005, the input view unchanged). Dropping them instead
        gained more from the side but lost 0.5-0.8 dB at the photo's camera; 10 cm cost a
        real photo's re-render 0.6 dB (zidane), 5 cm none;
    hull_alpha: the model's alpha below which a Gaussian counts as outside a silhouette.
    """

    resolution: int = 768
    min_mask: float = 0.02
    plane_scale: float = 0.35
    depth_scale: float = 0.6
    grow_px: int = -1
    carve_margin: float = -0.02
    beyond_edge: str = "cut"
    view_resolution: int = 0
    view_inset: float = 0.04
    view_fill: float = 1.0
    view_fill_erode: int = 2
    view_fill_labels: tuple[int, ...] = ()
    view_min_azimuth: float = 135.0
    deblur_passes: int = 2
    deblur_interior_passes: int = 4
    render_threads: int | None = None
    refine_seconds: float = 2.0
    refine_steps: int = 30
    refine_size: int | None = None
    refine_lr: float = 0.05
    reg_weight: float = 0.5
    reg_size: int = 128
    body_band: float | None = 0.03
    keep_input_view: bool = True
    input_view_behind: float = 0.02
    input_view_inside: float = 3.0
    correction_lobe: bool = True
    correction_lobe_shape: str = "symmetric"
    behind_footprint: bool = True
    frame_band: int | None = 8
    band_grazing: float = 2.0
    silhouette_sigmas: float = 2.0
    surfel_stretch: float = 4.0
    view_stretch: float = 4.0
    back_lobe: bool = False
    side_opacity_scale: float = 1.0
    photo_recede: float = 0.0
    photo_recede_search: tuple[float, ...] = (-0.01, -0.005, 0.0, 0.005, 0.01, 0.015)
    photo_recede_search_resolution: int = 128
    depth_split: float | None = 0.05
    hull_reach: float = 0.05
    hull_alpha: float = 0.3

    def __post_init__(self) -> None:
        def bad(name, msg):
            raise ConfigError(f"faithful config: {name} {msg}")

        if not isinstance(self.resolution, int) or not 8 <= self.resolution <= 2048:
            bad("resolution", f"must be an int in [8, 2048], got {self.resolution!r}")
        if self.beyond_edge not in BEYOND_EDGE:
            bad("beyond_edge", f"must be one of {BEYOND_EDGE}, got {self.beyond_edge!r}")
        if not float(self.refine_seconds) >= 0:
            bad("refine_seconds", f"must be >= 0, got {self.refine_seconds!r}")
        if self.render_threads is not None and (
                isinstance(self.render_threads, bool) or not isinstance(self.render_threads, int)
                or not 1 <= self.render_threads <= 64):
            bad("render_threads", f"must be None or an int in [1, 64], got "
                f"{self.render_threads!r}")
        if not isinstance(self.view_resolution, int) or not (
                self.view_resolution == 0 or 8 <= self.view_resolution <= 2048):
            bad("view_resolution", f"must be 0 or an int in [8, 2048], got "
                f"{self.view_resolution!r}")
        if isinstance(self.deblur_passes, bool) or not isinstance(self.deblur_passes, int) \
                or self.deblur_passes < 0:
            bad("deblur_passes", f"must be an int >= 0, got {self.deblur_passes!r}")
        if isinstance(self.deblur_interior_passes, bool) \
                or not isinstance(self.deblur_interior_passes, int) \
                or self.deblur_interior_passes < 0:
            bad("deblur_interior_passes",
                f"must be an int >= 0, got {self.deblur_interior_passes!r}")
        if self.frame_band is not None and (isinstance(self.frame_band, bool) or not isinstance(
                self.frame_band, int) or self.frame_band < 0):
            bad("frame_band", f"must be None or an int >= 0, got {self.frame_band!r}")
        from .deblur import LOBE_SHAPES

        if self.correction_lobe_shape not in LOBE_SHAPES:
            bad("correction_lobe_shape", f"must be one of {sorted(LOBE_SHAPES)}, got "
                f"{self.correction_lobe_shape!r}")
        if not isinstance(self.refine_steps, int) or self.refine_steps < 0:
            bad("refine_steps", f"must be an int >= 0, got {self.refine_steps!r}")
        if not float(self.view_inset) >= 0:
            bad("view_inset", f"must be >= 0 metres, got {self.view_inset!r}")
        if not 0 < float(self.view_fill) <= 1:
            bad("view_fill", f"must be in (0, 1], got {self.view_fill!r}")
        if not isinstance(self.view_fill_erode, int) or self.view_fill_erode < 0:
            bad("view_fill_erode", f"must be an int >= 0, got {self.view_fill_erode!r}")
        labels = self.view_fill_labels
        if not isinstance(labels, (list, tuple)) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in labels):
            bad("view_fill_labels", f"must be a list of part ids >= 0, got {labels!r}")
        object.__setattr__(self, "view_fill_labels", tuple(labels))
        if not 0 <= float(self.min_mask) < 1:
            bad("min_mask", f"must be in [0, 1), got {self.min_mask!r}")
        if not 0.0 <= float(self.view_min_azimuth) <= 180.0:
            bad("view_min_azimuth", f"must be in [0, 180] degrees, got "
                f"{self.view_min_azimuth!r}")
        if not float(self.input_view_inside) >= 0:
            bad("input_view_inside", f"must be >= 0 sigmas, got {self.input_view_inside!r}")
        if not float(self.input_view_behind) >= 0:
            bad("input_view_behind", f"must be >= 0 metres, got {self.input_view_behind!r}")
        # what lies behind the photo must stay behind it, or it covers the photo at its camera
        room = min(-float(self.carve_margin), float(self.input_view_behind))
        search = tuple(float(v) for v in self.photo_recede_search)
        object.__setattr__(self, "photo_recede_search", search)
        if any(not -0.02 < v < max(room, 1e-9) for v in search):
            bad("photo_recede_search", f"each must lie in (-0.02, {room:g}) metres, got "
                f"{search!r}")
        r = self.photo_recede_search_resolution
        if isinstance(r, bool) or not isinstance(r, int) or not 8 <= r <= 2048:
            bad("photo_recede_search_resolution", f"must be an int in [8, 2048], got {r!r}")
        if search and float(self.photo_recede) != 0:
            bad("photo_recede", "is an alternative to photo_recede_search (on by default): "
                "set photo_recede_search to [] to use a fixed recede")
        if not 0 <= float(self.photo_recede) < max(room, 1e-9):
            bad("photo_recede", f"must be >= 0 and less than min(-carve_margin, "
                f"input_view_behind) = {room:g} metres, got {self.photo_recede!r}")
        if self.depth_split is not None and not float(self.depth_split) > 0:
            bad("depth_split", f"must be > 0 metres or None (off), got {self.depth_split!r}")
        if not float(self.band_grazing) >= 0:
            bad("band_grazing", f"must be >= 0 (a power of |cos|), got {self.band_grazing!r}")
        if not float(self.silhouette_sigmas) >= 0:
            bad("silhouette_sigmas", f"must be >= 0 (0: off), got {self.silhouette_sigmas!r}")
        for name in ("surfel_stretch", "view_stretch"):
            if not float(getattr(self, name)) >= 1:
                bad(name, f"must be >= 1 (1: discs facing the camera), got "
                          f"{getattr(self, name)!r}")
        if not float(self.side_opacity_scale) > 0:
            bad("side_opacity_scale", f"must be > 0 (1: as predicted), got "
                                      f"{self.side_opacity_scale!r}")
        if not 0 <= float(self.hull_reach) <= 1:
            bad("hull_reach", f"must be in [0, 1] metres (0: off), got {self.hull_reach!r}")
        if not 0 < float(self.hull_alpha) < 1:
            bad("hull_alpha", f"must be in (0, 1), got {self.hull_alpha!r}")
        if self.body_band is not None and not float(self.body_band) >= 0:
            bad("body_band", f"must be >= 0 metres or None, got {self.body_band!r}")


@dataclass
class GeneratedViews:
    """The view synthesizer's views (``synth.base.SynthOutput``): images [V,3,H,W] in [0,1]
    on the background, masks [V,H,W] the person's coverage, cameras: the V views (H x W)."""

    images: Tensor
    masks: Tensor
    cameras: Cameras

    def evidence(self, j: int, background=(1.0, 1.0, 1.0)) -> PhotoEvidence:
        """View ``j`` as evidence, as if it were a photo (seen whole: no frame edge)."""
        img = self.images[j].detach().float().cpu().clamp(0, 1)
        mask = self.masks[j].detach().float().cpu().clamp(0, 1)
        return PhotoEvidence(image=img, composite=img, mask=mask,
                             camera=self.cameras[j:j + 1].to("cpu", torch.float32),
                             frame=torch.ones(mask.shape, dtype=torch.bool),
                             background=tuple(background))


#: discs of the generated views, in pixel footprints: wide enough that a back seen from
#: behind is opaque between them (at the photo's 0.35 a 128 px grid let ~40 % through at
#: the midpoints, and the front's Gaussians showed through)
VIEW_PLANE_SCALE = 0.6
#: metres further behind the photo's surface than ``carve_margin`` they must lie
VIEW_CARVE_EXTRA = 0.03


class BodySurface:
    """The clothed body (vertices [N,3] world, faces [F,3]) as a camera sees it: its depth
    and normals per pixel. The last camera's are kept: the photo's depth anchor and its
    surfels ask for the same full-resolution raster."""

    def __init__(self, vertices: Tensor, faces: Tensor):
        self.vertices, self.faces = vertices.float(), faces.long()
        self._vertex_normals: Tensor | None = None
        self._last: tuple | None = None

    def at(self, cam: Cameras) -> tuple[Tensor, Tensor]:
        """(depth [H,W]: camera z, inf where the body does not cover the pixel; normals
        [H,W,3]: world, unit, zero where it does not) at ``cam``'s size."""
        from ..render.mesh import rasterize_mesh

        key = (cam.width, cam.height, cam.viewmats[0].float().cpu().numpy().tobytes(),
               cam.Ks[0].float().cpu().numpy().tobytes())
        if self._last is not None and self._last[0] == key:
            return self._last[1], self._last[2]
        if self._vertex_normals is None:
            self._vertex_normals = vertex_normals(self.vertices, self.faces)
        r = rasterize_mesh(self.vertices, self.faces, cam.viewmats[0], cam.Ks[0],
                           cam.width, cam.height)
        n = F.normalize((self._vertex_normals[self.faces[r.face_ids.clamp(min=0)]]
                         * r.bary[..., None]).sum(-2), dim=-1)
        n = torch.where(torch.isfinite(r.depth)[..., None], n, torch.zeros_like(n))
        self._last = (key, r.depth, n)
        return r.depth, n

    def normals(self, cam: Cameras) -> Tensor:
        """``photo_gaussians``' normals: [H,W,3] at ``cam`` (zero where uncovered)."""
        return self.at(cam)[1]


def _surface(body) -> BodySurface | None:
    if body is None or isinstance(body, BodySurface):
        return body
    return BodySurface(body[0], body[1])


def anchor_to_body(z: Tensor, conf: Tensor, body: tuple[Tensor, Tensor] | BodySurface | None,
                   camera: Cameras, band: float | None, *, grazing: float = 0.0
                   ) -> tuple[Tensor, Tensor]:
    """A view's depth [G,G] from the model (camera z, with its confidence [G,G]) kept within
    ``band`` metres of the clothed body's surface where the body covers the cell.

    The model places its Gaussians to look right from its own views, not on the surface: its
    input-view depth is noisy, and the photo Gaussians put there showed as a crumpled sheet
    seen from other angles. The clothed body is grown to the photo's silhouette, so it is a
    smooth surface everywhere the photo shows the person; the model keeps the detail it adds
    within the band. Covered cells are trusted (confidence at least 0.7). body: (vertices
    [N,3] world, faces [F,3]), a :class:`BodySurface`, or None; band None: the model's depth
    unchanged.

    grazing: the band is multiplied by |cos|^grazing, cos of the cell's ray and the body's
    normal (0: the full band), down to the body's surface where it is seen edge-on. There
    the model's coarse depth is a blend across the silhouette (the front's depth on a limb's
    rim), and a pixel put up to ``band`` in front of its true place showed, from the side
    and behind, as a streak beside the limb; the clothed body's rim is the photo's
    silhouette by construction."""
    if body is None or band is None:
        return z, conf
    G = z.shape[-1]
    cam = camera.resized(G, G)
    depth, normal = _surface(body).at(cam)
    cov = torch.isfinite(depth)
    bz = torch.where(cov, depth, z)
    limit = torch.full_like(z, float(band))
    if grazing > 0:
        _, ray = pixel_rays(cam.viewmats.float(), cam.Ks.float(), G, G)  # [1,G,G,3]
        limit = limit * (normal * ray[0]).sum(-1).abs().to(z) ** float(grazing)
    near = bz + torch.maximum(torch.minimum(z - bz, limit), -limit)
    return torch.where(cov, near, z), torch.where(cov, conf.clamp(min=0.7), conf)


def _full_res_anchor(body: BodySurface | None, band: float | None, grazing: float = 0.0):
    """``photo_gaussians``' anchor: the upsampled depth kept within ``band`` of the body at
    every pixel (the body rasterised at the full resolution: its occlusion edges sharp)."""
    if body is None or band is None:
        return None

    def anchor(depth: Tensor, camera: Cameras) -> Tensor:
        return anchor_to_body(depth, torch.ones_like(depth), body, camera, band,
                              grazing=grazing)[0]

    return anchor


def _view_gaussians(g: Gaussians, grid: int, views: GeneratedViews, j: int,
                    cfg: "FaithfulConfig", body=None, open_alpha: Tensor | None = None
                    ) -> Gaussians:
    """The generated view ``j`` as Gaussians at the model's depth for it (``g``: the model's
    Gaussians of that view, ``grid`` x ``grid``); with ``open_alpha`` [H,W] (the model's
    splat without its input view, at that view's camera) only where it is below
    ``cfg.view_fill``."""
    ev = views.evidence(j)
    z, conf = grid_depth(g.means, g.opacities, ev.camera.viewmats[0], grid)
    z, conf = anchor_to_body(z, conf, body, ev.camera, cfg.body_band)
    labels_lo = g.labels.reshape(grid, grid) if g.labels is not None else None
    R = min(cfg.view_resolution, ev.size)
    vg = photo_gaussians(ev, z, ((conf - 0.3) / 0.4).clamp(0, 1), resolution=R,
                         min_mask=max(cfg.min_mask, 0.1), plane_scale=VIEW_PLANE_SCALE,
                         depth_scale=cfg.depth_scale, labels_lo=labels_lo,
                         anchor=_full_res_anchor(body, cfg.body_band, cfg.band_grazing),
                         normals=body.normals if body is not None else None,
                         max_stretch=cfg.view_stretch, depth_split=cfg.depth_split)
    pixels, vg = vg.pixels, vg.gaussians  # pixels [N,2]: (row, col) at R
    if open_alpha is not None and cfg.view_fill < 1:
        from .sheet_depth import alpha_at

        keep = alpha_at(vg.means, open_alpha[None].to(vg.means.device), ev.camera) \
            < float(cfg.view_fill)
        if cfg.view_fill_erode > 0:  # not on the view's rim, where its discs widen the back
            k = int(cfg.view_fill_erode)
            m = resample(ev.mask[None], R)
            solid = -max_filter(-m[0], k) > 0.5  # the mask eroded by k px
            keep &= solid[pixels[:, 0], pixels[:, 1]]
        if cfg.view_fill_labels and vg.labels is not None:  # (no labels: any part)
            keep &= torch.isin(vg.labels, torch.tensor(cfg.view_fill_labels,
                                                       device=vg.labels.device))
        vg = vg[keep]
    if cfg.view_inset > 0:  # behind the model's own Gaussians of the view (config docs)
        fwd = ev.camera.viewmats[0, 2, :3].float()
        vg = replace(vg, means=vg.means + float(cfg.view_inset) * fwd.to(vg.means.dtype))
    return vg


def softened(g: Gaussians, logit_scale: float) -> Gaussians:
    """``g`` with its opacities' logits times ``logit_scale`` (< 1: the faint ones more
    opaque, the solid ones a little less; 1: ``g`` itself)."""
    if logit_scale == 1.0:
        return g
    o = g.opacities.float().clamp(1e-6, 1 - 1e-6)
    return replace(g, opacities=torch.sigmoid(logit_scale * torch.logit(o)).to(g.opacities.dtype))


def _back_colours(means: Tensor, generated: GeneratedViews | None, ev: PhotoEvidence,
                  min_azimuth: float = 150.0) -> Tensor | None:
    """[N,3] what the generated view most nearly behind the photo shows along the line
    through each of ``means`` [N,3] (the back in front of a photo Gaussian seen from
    behind); where that view's mask there is below 0.5, the view's mean person colour.
    None when no generated view lies at least ``min_azimuth`` degrees around."""
    if generated is None or len(generated.cameras) == 0:
        return None
    around = view_azimuths(ev.camera.viewmats[0].float(),
                           generated.cameras.viewmats.float()).abs()
    j = int(around.argmax())
    if float(around[j]) < min_azimuth:
        return None
    bv = generated.evidence(j)
    uv, z = bv.project(means)
    H = bv.size
    grid = (uv / H * 2 - 1)[None, None]  # [1,1,N,2] in [-1,1]
    img = F.grid_sample(bv.image[None], grid, align_corners=False, padding_mode="border")
    m = F.grid_sample(bv.mask[None, None], grid, align_corners=False)[0, 0, 0]
    col = img[0, :, 0].T  # [N,3]
    on = bv.mask >= 0.5
    mean = bv.image[:, on].mean(-1) if bool(on.any()) else torch.ones(3)
    ok = (m >= 0.5) & (z > 0)
    return torch.where(ok[:, None], col, mean[None].expand_as(col)).to(means.dtype)


@dataclass
class FaithfulResult:
    gaussians: Gaussians
    info: dict[str, Any]


def input_view_ids(view_cameras: Cameras, input_camera: Cameras, tol: float = 1e-4
                   ) -> list[int]:
    """Indices of the views whose camera is the input camera (same pose, same normalised
    intrinsics): their Gaussians carry the input view."""
    vm0 = input_camera.viewmats[0].float().cpu()
    K0 = input_camera.Ks[0].float().cpu().clone()
    K0[:2] /= torch.tensor([input_camera.width, input_camera.height])[:, None]
    ids = []
    for v in range(len(view_cameras)):
        K = view_cameras.Ks[v].float().cpu().clone()
        K[:2] /= torch.tensor([view_cameras.width, view_cameras.height])[:, None]
        if torch.allclose(view_cameras.viewmats[v].float().cpu(), vm0, atol=tol) and \
                torch.allclose(K, K0, atol=tol):
            ids.append(v)
    return ids


def output_view_cameras(model_config, inputs) -> Cameras:
    """The cameras of a reconstruction model's output views, in its Gaussians' order, from
    its ``model.inputs.ModelInputs`` (one sample)."""
    ids = list(range(model_config.n_views))
    if model_config.gaussians_from == "generated":
        ids.remove(inputs.input_view)
    sel = torch.tensor(ids)
    S = model_config.image_size
    return Cameras(inputs.viewmats[sel].float().cpu(), inputs.Ks[sel].float().cpu(), S, S)


def make_faithful(model_gaussians: Gaussians, *, grid: int, view_cameras: Cameras,
                  evidence: PhotoEvidence, config: FaithfulConfig = FaithfulConfig(),
                  generated: GeneratedViews | None = None,
                  device=None, body: tuple[Tensor, Tensor] | None = None
                  ) -> FaithfulResult:
    """The splat made faithful to the photo (module docs).

    model_gaussians: the model's Gaussians, unpruned, view by view, ``grid`` x ``grid``
    row-major per view (``ReconstructionOutput``'s layout); view_cameras: those views'
    cameras in order; evidence: the photo; generated: the synthesizer's views and masks
    (each becomes Gaussians beside the model's of the same view), or None; body: the
    clothed body (vertices [N,3] world, faces [F,3], or a :class:`BodySurface`) the photo's
    and the views' depth are kept near (``config.body_band``) and their surfels lie on, or
    None. Returns the
    merged (and refined) Gaussians and what was done (counts, seconds, refinement losses)."""
    t0 = time.perf_counter()
    cfg = config
    ev = evidence
    n_views = len(view_cameras)
    per = grid * grid
    if len(model_gaussians) != n_views * per:
        raise ValueError(f"{len(model_gaussians)} model Gaussians for {n_views} views of "
                         f"{grid}x{grid}")
    g = model_gaussians.detach().to("cpu", torch.float32).with_rgb()
    raster = TorchRasterConfig(threads=cfg.render_threads or tile_threads())
    body = _surface(body)  # rasterised once per camera for the anchor and the surfels
    front = input_view_ids(view_cameras, ev.camera)
    if not front:
        raise ValueError("no model view is at the input camera: the photo Gaussians need "
                         "the model's input-view depth")
    vm = ev.camera.viewmats[0]
    zs, cs = zip(*(grid_depth(g.means[v * per:(v + 1) * per],
                              g.opacities[v * per:(v + 1) * per], vm, grid) for v in front))
    conf = torch.stack(cs).sum(0)
    depth = (torch.stack(zs) * torch.stack(cs)).sum(0) / conf.clamp(min=1e-6)
    depth = torch.where(conf > 1e-6, depth, torch.stack(zs).mean(0))
    depth, conf = anchor_to_body(depth, conf, body, ev.camera, cfg.body_band)
    labels_lo = None
    if g.labels is not None:
        labels_lo = g.labels[front[0] * per:(front[0] + 1) * per].reshape(grid, grid)
    res = min(cfg.resolution, ev.size)
    # trust only cells the model made solid: a half-transparent cell's depth is a guess
    # (measured on astronaut: cells of opacity 0.05-0.5 reach 0.75 m in front of the body)
    trust = ((conf - 0.3) / 0.4).clamp(0, 1)

    def sheet(resolution: int) -> PhotoGaussians:
        return photo_gaussians(ev, depth, trust, resolution=resolution, min_mask=cfg.min_mask,
                               plane_scale=cfg.plane_scale, depth_scale=cfg.depth_scale,
                               labels_lo=labels_lo,
                               anchor=_full_res_anchor(body, cfg.body_band, cfg.band_grazing),
                               normals=body.normals if body is not None else None,
                               max_stretch=cfg.surfel_stretch, depth_split=cfg.depth_split)

    pg = sheet(res)
    centre = camera_centers(ev.camera.viewmats.float())[0]  # the photo's camera
    around = view_azimuths(ev.camera.viewmats[0], view_cameras.viewmats).abs()
    away = [v for v in range(n_views) if v not in front]
    side_views = [v for v in away if 45.0 <= float(around[v]) <= 135.0]
    hull_on = cfg.hull_reach > 0 and bool(side_views)
    seen, t_seen = None, time.perf_counter()  # the model's own splat at its views away from
    if away and (hull_on or cfg.photo_recede_search):  # the photo: rendered once, for both
        from .sheet_depth import render_at

        seen = render_at(g, view_cameras[torch.tensor(away)], torch_config=raster)
    t_seen = time.perf_counter() - t_seen
    hull = None

    def into_side_silhouettes(photo_g: Gaussians) -> tuple[Gaussians, Tensor]:
        from .sheet_depth import into_silhouettes

        at = torch.tensor([away.index(v) for v in side_views])
        return into_silhouettes(photo_g, g, view_cameras[torch.tensor(side_views)], centre,
                                threshold=float(cfg.hull_alpha), reach=float(cfg.hull_reach),
                                torch_config=raster, alphas=seen[1][at])

    if hull_on:
        # before anything is placed behind the photo's surface, which then follows it (moved
        # last, the Gaussians moved back went behind the model's kept ones: a portrait's
        # re-render lost 2.7 dB)
        t = time.perf_counter()
        moved_g, moved = into_side_silhouettes(pg.gaussians)
        depth_px = pg.depth.clone()
        on = moved != 0
        depth_px[pg.pixels[on, 0], pg.pixels[on, 1]] = ev.project(moved_g.means[on])[1].to(
            depth_px.dtype)
        pg = replace(pg, gaussians=moved_g, depth=depth_px)
        hull = {"views": side_views, "moved": int(on.sum()),
                "seconds": time.perf_counter() - t + t_seen}  # with the views' render
    t_photo = time.perf_counter() - t0
    parts, from_view, with_views = [], [], []
    kept_front = []  # the model's own input-view Gaussians, when kept
    for v in range(n_views):
        if v in front:
            if cfg.keep_input_view:
                kept_front.append(g[v * per:(v + 1) * per])
            continue
        gv = g[v * per:(v + 1) * per]
        side = float(around[v]) < cfg.view_min_azimuth - 1e-3  # no generated view's here
        match = input_view_ids(generated.cameras, view_cameras[v:v + 1]) \
            if generated is not None and cfg.view_resolution > 0 and not side else []
        parts.append(softened(gv, cfg.side_opacity_scale) if side else gv)
        from_view.append(torch.zeros(len(gv), dtype=torch.bool))
        if match:
            open_alpha = None
            if cfg.view_fill < 1:  # what the viewer there sees of the model's own splat
                from .sheet_depth import render_at

                behind = Gaussians.cat([g[u * per:(u + 1) * per] for u in range(n_views)
                                        if u not in front])
                open_alpha = render_at(behind, view_cameras[v:v + 1], torch_config=raster)[1][0]
            vg = _view_gaussians(gv, grid, generated, match[0], cfg, body, open_alpha)
            with_views.append(v)
            parts.append(vg)
            from_view.append(torch.ones(len(vg), dtype=torch.bool))
    others = Gaussians.cat(parts) if parts else g[:0]
    from_view = torch.cat(from_view) if from_view else torch.zeros(0, dtype=torch.bool)
    t_views = time.perf_counter() - t0 - t_photo
    keep = carve_by_mask(others, ev, grow_px=cfg.grow_px, beyond_edge=cfg.beyond_edge,
                         surface=pg.depth, margin=cfg.carve_margin)
    # the photo's depth where it shows the person: off the silhouette the depth map holds
    # the model's guess for the background, and the deepest value near the rim was that
    shown = shown_depth(pg.depth, ev)
    n_kept_front = 0
    if kept_front:
        # behind what the photo shows, so only the sides see them (at the input camera
        # they would blur it)
        kf = Gaussians.cat(kept_front)
        uv_k, z_k, spx = projected_sigma(kf, ev)
        keep_f = carve_by_mask(kf, ev, grow_px=cfg.grow_px, beyond_edge=cfg.beyond_edge) \
            & wholly_inside(uv_k, z_k, spx, ev, cfg.input_view_inside)
        keep = torch.cat([keep, keep_f])
        n_kept_front = int(keep_f.sum())
        # behind the deepest surface under its footprint: the rasterizer sorts by centre
        # depth, so a wide Gaussian behind its centre's pixel but in front of a sloping
        # surface beside it covers the photo there
        r = math.ceil(3.0 * float(spx.median()) * pg.depth.shape[-1] / ev.size)
        kf, _ = push_behind(kf, ev, deepest_within(shown, r),
                            margin=-float(cfg.input_view_behind))
        others = Gaussians.cat([others, kf])
        from_view = torch.cat([from_view, torch.zeros(len(kf), dtype=torch.bool)])
    n_pushed = 0
    if bool(from_view.any()):
        # the generated views' wider discs: 3 sigma inside the photo's own silhouette and
        # further behind what it shows, so they never blur or widen the input view
        shrink = math.ceil(3.0 * VIEW_PLANE_SCALE * ev.size / max(cfg.view_resolution, 1))
        # behind the deepest surface the photo shows anywhere under the disc: at a depth
        # edge (the neck inside a collar) a disc behind the near side would cover the far
        # side's pixels
        deepest = deepest_within(shown, math.ceil(shrink * pg.depth.shape[-1] / ev.size))
        # ... where the model put the hidden side too close behind the front, it is moved
        # back rather than dropped (dropping holed the back: the photo showed through)
        margin_v = cfg.carve_margin - VIEW_CARVE_EXTRA
        pushed, moved = push_behind(others[from_view], ev, deepest, margin=margin_v)
        means = others.means.clone()
        means[from_view] = pushed.means
        others = replace(others, means=means)
        keep_v = carve_by_mask(others, ev, grow_px=-shrink, beyond_edge=cfg.beyond_edge,
                               surface=deepest, margin=margin_v)
        keep = torch.where(from_view, keep_v, keep)
        n_pushed = int(moved.sum())
    n_carved = int((~keep).sum())
    others = others[keep]
    n_behind = 0
    if cfg.behind_footprint:
        # the photo wins at its own camera: no other Gaussian in front of what the photo
        # shows anywhere under its footprint (a wide one behind the surface at its centre
        # but in front of a deeper strip beside it showed through a white strap)
        others, moved = push_behind_footprint(others, ev, pg.depth, margin=cfg.carve_margin,
                                              frame_band=cfg.frame_band)
        n_behind = int(moved.sum())
    others, narrowed = narrow_at_silhouette(others, ev, sigmas=float(cfg.silhouette_sigmas))
    photo = pg.gaussians
    info: dict[str, Any] = {"config": asdict(cfg), "resolution": res,
                            "photo_gaussians": len(photo), "model_views_replaced": front,
                            "model_input_view_kept": n_kept_front,
                            "model_views_from_generated": with_views,
                            "other_gaussians": len(others),
                            "gaussians_carved": n_carved,
                            "view_gaussians_pushed_back": n_pushed,
                            "others_pushed_behind_footprint": n_behind,
                            "others_narrowed_at_silhouette": int(narrowed.sum()),
                            "seconds_photo_gaussians": t_photo,
                            "seconds_view_gaussians": t_views}
    if cfg.deblur_passes > 0:
        from .deblur import deblur_colours

        t = time.perf_counter()
        photo, errs = deblur_colours(photo, pg.pixels, pg.resolution, others, ev,
                                     passes=cfg.deblur_passes,
                                     interior_passes=cfg.deblur_interior_passes,
                                     torch_config=raster)
        info["deblur"] = {"passes": cfg.deblur_passes,
                          "interior_passes": cfg.deblur_interior_passes,
                          "mean_abs_error_before": errs,
                          "seconds": time.perf_counter() - t}
    if cfg.refine_seconds > 0 and cfg.refine_steps > 0:
        from .test_time import refine_to_photo

        reg = [v for v in range(n_views) if v not in front]
        reg_cams = view_cameras[torch.tensor(reg)].resized(cfg.reg_size, cfg.reg_size) \
            if reg and cfg.reg_weight > 0 else None
        r = refine_to_photo(photo, others, ev, seconds=float(cfg.refine_seconds),
                            max_steps=cfg.refine_steps, render_size=cfg.refine_size,
                            reg_cameras=reg_cams, reg_weight=cfg.reg_weight,
                            lr=cfg.refine_lr, device=device)
        photo, others = r.photo, r.others
        info["refinement"] = {"steps": r.steps, "seconds": r.seconds, "backend": r.backend,
                              "photo_loss_before": r.loss_before,
                              "photo_loss_after": r.loss_after}
    if hull is not None:
        info["into_silhouettes"] = hull
    if cfg.correction_lobe and ("deblur" in info or "refinement" in info):
        from .deblur import correction_lobe

        back = _back_colours(photo.means, generated, ev) if cfg.back_lobe else None
        photo = replace(photo, colors=None, sh=correction_lobe(
            pg.gaussians.colors, photo.with_rgb().colors, photo.means, centre, back,
            shape=cfg.correction_lobe_shape))
        info["back_lobe"] = back is not None
        others = others.with_sh(3)
        info["correction_lobe"] = True
    metres = float(cfg.photo_recede)
    if cfg.photo_recede_search and away:
        from .sheet_depth import choose_recede

        t = time.perf_counter()
        # the search renders the model's 128-px views: a coarser sheet decides about as
        # well as a photo's full one, at a fraction of its Gaussians
        r = cfg.photo_recede_search_resolution
        coarse = photo
        if res > r:  # rebuilt, with the same moves into the side silhouettes as the photo's
            coarse = sheet(r).gaussians
            if hull_on:
                coarse = into_side_silhouettes(coarse)[0]
        if others.sh is not None and coarse.sh is None:  # one colour layout to concatenate
            coarse = coarse.with_sh(others.sh_degree)

        def splat_at(m: float) -> Gaussians:
            return Gaussians.cat([recede(coarse, centre, m), others])

        metres, errs = choose_recede(splat_at, g, view_cameras[torch.tensor(away)],
                                     cfg.photo_recede_search, torch_config=raster,
                                     target=seen[0])
        # the photo alone: moving the Gaussians near it along with it kept its picture
        # exactly but lost the gain (docs/faithful_splat.md, item 31)
        photo = recede(photo, centre, metres)
        info["photo_recede_search"] = {"candidates": list(cfg.photo_recede_search),
                                       "errors": {str(k): v for k, v in errs.items()},
                                       "chosen": metres, "sheet_gaussians": len(coarse),
                                       "seconds": time.perf_counter() - t}
    elif metres:  # item 29's fixed recede, the photo alone (docs/faithful_splat.md)
        photo = recede(photo, centre, metres)
    out = Gaussians.cat([photo, others])
    info["opacity_beyond_frame"] = opacity_beyond_frame(out, ev)
    info["seconds"] = time.perf_counter() - t0
    return FaithfulResult(gaussians=out, info=info)
